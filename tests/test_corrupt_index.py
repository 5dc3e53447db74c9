"""Corrupt or missing index files (issue 16): a damaged vector cache is rebuilt from SQLite;
a damaged or missing database or manifest, or a manifest edited to disagree with the
database, is refused with one line naming the file and what to do: never a traceback, never
a silently empty index."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from qa import ArticleQA
from qa.backends.embedded import MANIFEST_FILE, STORE_FILE
from qa.backends.manifest import IndexMismatch
from tests.conftest import ROOT, SAMPLES

QUESTION = "How many power banks were recalled?"
RESTORE = ("restore it from a backup", "index the sources again into a new folder")


def top(kb: ArticleQA, mode: str = "dense") -> list[tuple[str, int, int]]:
    return [(p.source, p.start, p.end) for p in kb.search(QUESTION, 5, mode=mode)[0]]


@pytest.fixture(scope="module")
def built(tmp_path_factory, encoder) -> tuple[Path, list]:
    """One index of the samples, and its dense top 5 for the question, built once."""
    folder = tmp_path_factory.mktemp("built") / "index"
    kb = ArticleQA(folder, encoder=encoder)
    kb.add(SAMPLES, progress=False)
    expected = top(kb)
    kb.close()
    return folder, expected


@pytest.fixture
def index(built, tmp_path) -> Path:
    """A copy of the built index to damage."""
    folder = tmp_path / "index"
    shutil.copytree(built[0], folder)
    assert not list(folder.glob("*-wal"))  # closed: everything is in the database file
    return folder


def refused(folder: Path, encoder, *words: str) -> str:
    with pytest.raises(IndexMismatch) as error:
        ArticleQA(folder, encoder=encoder)
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message
    return message


def edit_manifest(folder: Path, **changes) -> None:
    path = folder / MANIFEST_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


# --- the vector cache: rebuilt -------------------------------------------------------------

@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "directory"])
def test_a_damaged_vector_cache_is_rebuilt_from_sqlite(index, built, encoder, damage):
    [cache] = index.glob("vectors-*.faiss")
    data = cache.read_bytes()
    if damage == "garbage":
        cache.write_bytes(bytes(range(256)) * 40)
    elif damage == "truncated":
        cache.write_bytes(data[:len(data) // 2])
    elif damage == "empty":
        cache.write_bytes(b"")
    else:
        cache.unlink()
        cache.mkdir()
        (cache / "not-mine.txt").write_text("kept")
    kb = ArticleQA(index, encoder=encoder)
    assert len(kb.backend.vectors) == kb.backend.count_chunks() > 0
    assert top(kb) == built[1]
    assert kb.ask(QUESTION).text
    kb.close()
    if damage != "directory":
        assert cache.read_bytes() == data  # saved again, as it was
    else:
        assert (cache / "not-mine.txt").read_text() == "kept"


# --- the database: refused -----------------------------------------------------------------

@pytest.mark.parametrize("damage", ["garbage", "truncated", "text", "directory", "empty",
                                    "foreign"])
def test_a_damaged_database_is_refused_naming_it(index, encoder, damage):
    store = index / STORE_FILE
    data = store.read_bytes()
    caches = {p.name: p.read_bytes() for p in index.glob("vectors-*.faiss")}
    if damage == "garbage":
        store.write_bytes(bytes(range(256)) * 64)
    elif damage == "truncated":
        store.write_bytes(data[:len(data) // 2])
    elif damage == "text":
        store.write_text("these are my notes, not a database\n" * 50)
    elif damage == "directory":
        store.unlink()
        store.mkdir()
    elif damage == "empty":
        store.write_bytes(b"")
    else:  # another program's SQLite database
        store.unlink()
        other = sqlite3.connect(store)
        other.execute("CREATE TABLE notes (text TEXT)")
        other.commit()
        other.close()
    refused(index, encoder, str(store), *RESTORE)
    assert {p.name: p.read_bytes() for p in index.glob("vectors-*.faiss")} == caches
    if damage == "foreign":  # left as it was: no tables of ours added
        tables = {r[0] for r in sqlite3.connect(store).execute("SELECT name FROM sqlite_master")}
        assert tables == {"notes"}


def test_a_manifest_without_its_database_is_refused_not_opened_empty(index, encoder):
    store = index / STORE_FILE
    caches = {p.name: p.read_bytes() for p in index.glob("vectors-*.faiss")}
    store.unlink()
    message = refused(index, encoder, str(store), "missing", *RESTORE)
    assert MANIFEST_FILE in message
    assert not store.exists()  # no empty database made in its place
    assert {p.name: p.read_bytes() for p in index.glob("vectors-*.faiss")} == caches


@pytest.mark.parametrize("fresh", ["absent", "empty folder"])
def test_a_new_folder_still_becomes_an_index(tmp_path, encoder, fresh):
    folder = tmp_path / "new"
    if fresh == "empty folder":
        folder.mkdir()
    kb = ArticleQA(folder, encoder=encoder)
    assert len(kb) == 0 and (folder / MANIFEST_FILE).is_file() and (folder / STORE_FILE).exists()
    kb.close()
    ArticleQA(folder, encoder=encoder).close()  # and opens again


# --- the manifest: refused -----------------------------------------------------------------

@pytest.mark.parametrize("damage", ["binary", "directory", "array", "string", "no model",
                                    "bad chunking", "not json"])
def test_a_damaged_manifest_is_refused_naming_it(index, encoder, damage):
    path = index / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    if damage == "binary":
        path.write_bytes(bytes(range(256)))
    elif damage == "directory":
        path.unlink()
        path.mkdir()
    elif damage == "array":
        path.write_text("[1, 2]")
    elif damage == "string":
        path.write_text('"manifest"')
    elif damage == "no model":
        del manifest["model"]
        path.write_text(json.dumps(manifest))
    elif damage == "bad chunking":
        path.write_text(json.dumps({**manifest, "chunking": {"words_per_chunk": 5}}))
    else:
        path.write_text("{model: all-MiniLM")
    refused(index, encoder, str(path), "manifest", *RESTORE)


# --- a hand-edited manifest that disagrees with the database: refused ----------------------

def test_an_edited_dimension_is_refused(index, encoder):
    edit_manifest(index, dimension=encoder.dimension * 2)
    refused(index, encoder, str(index / MANIFEST_FILE), "dimension",
            f"{encoder.dimension}", "restore")


def test_an_edited_dimension_of_an_empty_index_is_refused(tmp_path, encoder):
    folder = tmp_path / "index"
    ArticleQA(folder, encoder=encoder).close()
    edit_manifest(folder, dimension=encoder.dimension + 1)
    refused(folder, encoder, str(folder / MANIFEST_FILE), "dimension", "restore")


def test_an_edited_chunking_is_refused(index, encoder):
    chunking = json.loads((index / MANIFEST_FILE).read_text())["chunking"]
    edit_manifest(index, chunking={**chunking, "target_tokens": chunking["target_tokens"] + 40})
    refused(index, encoder, str(index / MANIFEST_FILE), "chunking",
            f"'target_tokens': {chunking['target_tokens']}", "restore")


def test_an_index_from_before_the_record_gets_it_on_open(index, built, encoder):
    db = sqlite3.connect(index / STORE_FILE)
    db.execute("DELETE FROM meta WHERE key = 'built_with'")
    db.commit()
    db.close()
    kb = ArticleQA(index, encoder=encoder)  # opens as before, and records what built it
    assert top(kb) == built[1]
    kb.close()
    chunking = json.loads((index / MANIFEST_FILE).read_text())["chunking"]
    edit_manifest(index, chunking={**chunking, "overlap_sentences": 3})
    refused(index, encoder, str(index / MANIFEST_FILE), "chunking")


# --- the same through the CLI: exit 2, one line, no traceback ------------------------------

def articleqa(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("articleqa")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "qa.cli"]
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": path})  # this tree's qa


@pytest.mark.parametrize("damage", ["database", "manifest directory"])
def test_cli_says_what_is_wrong_in_one_line(index, damage):
    if damage == "database":
        damaged = index / STORE_FILE
        damaged.write_bytes(bytes(range(256)) * 64)
    else:
        damaged = index / MANIFEST_FILE
        damaged.unlink()
        damaged.mkdir()
    result = articleqa("ask", QUESTION, "--index", str(index))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("articleqa: error: ") and str(damaged) in line
    assert RESTORE[0] in line
