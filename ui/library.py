"""Library management for the chat: uploads copied into the index folder, URLs, removal.

Uploads land in ``<index>/uploads/`` under a sanitised name (``safe_name``): only the last path
component of whatever name the browser sent, NFC-normalised, keeping Unicode letters, digits
and ``_-.`` (other characters become ``-``), capped in characters and UTF-8 bytes. A name that
had to change gets a short hash of the original appended, so distinct names never share a
stored file. The final path is checked to sit inside that folder, so "../../etc/passwd" or
"/abs/path.txt" can never write elsewhere. Re-uploading a file with the same name replaces its
earlier copy (and so its article); two files in one upload that would share a stored file are
refused rather than one silently replacing the other.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from qa.articles import MAX_BYTES, is_url

UPLOAD_DIR = "uploads"
ALLOWED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".json", ".jsonl")
MAX_FILES = 50
MAX_URLS = 20
MAX_NAME = 100  # characters in the stem
MAX_NAME_BYTES = 200  # UTF-8 bytes in the whole name; file systems allow 255
MAX_SUFFIX = 10
HASH_CHARS = 8
_SUFFIX = re.compile(rf"[A-Za-z0-9]{{1,{MAX_SUFFIX}}}")


class UploadRefused(ValueError):
    """A file that is not accepted; the message says why, for the user."""


@dataclass
class Row:
    file: str
    article: str
    result: str  # added / updated / unchanged / failed / note
    detail: str = ""

    def as_list(self) -> list[str]:
        return [self.file, self.article, self.result, self.detail]


HEADERS = ["file", "article", "result", "detail"]


def _keep(char: str, previous_kept: bool) -> bool:
    """Letters and digits of any script, ``_-.``; combining marks after a kept character
    (Devanagari vowel signs, Thai tone marks: not ``isalnum`` but part of the letters)."""
    if char.isalnum() or char in "_-.":
        return True
    return previous_kept and unicodedata.category(char).startswith("M")


def _clean(text: str) -> str:
    """Runs of anything not kept (separators, controls, spaces, punctuation) become ``-``."""
    out: list[str] = []
    kept = replaced = False
    for char in text:
        kept = _keep(char, kept)
        if kept and not (char == "-" and replaced):
            out.append(char)
            replaced = False
        elif not kept and (not out or out[-1] != "-"):
            out.append("-")
            replaced = True
    return "".join(out)


def _truncate(text: str, chars: int, max_bytes: int) -> str:
    text = text[:chars]
    while len(text.encode()) > max_bytes:
        text = text[:-1]
    return text


def safe_name(name: str) -> str:
    """A file name that is safe to create inside the uploads folder, keeping the suffix.

    Distinct names give distinct results and the same name always the same one: a name that
    sanitising changed (a path dropped, characters replaced, the suffix lowercased, the stem
    shortened) gets ``-<8 hex of sha1(original)>`` appended to its stem. Canonically equivalent
    spellings (NFC/NFD) count as the same name. Never hidden, never ``.``/``..``, at most
    ``MAX_NAME_BYTES`` bytes.
    """
    original = unicodedata.normalize("NFC", str(name))
    base = re.split(r"[\\/]", original)[-1]
    stem, dot, suffix = base.rpartition(".")
    if not (dot and _SUFFIX.fullmatch(suffix)):
        stem, suffix = base, ""  # no suffix, or "a.t xt" / "файл.текст": all stem
    suffix = suffix.lower()
    tail = f".{suffix}" if suffix else ""
    budget = MAX_NAME_BYTES - len(tail.encode()) - HASH_CHARS - 1
    stem = _truncate(_clean(stem).strip(".-"), MAX_NAME, budget).strip(".-") or "upload"
    result = stem + tail
    if result != original:
        digest = hashlib.sha1(original.encode("utf-8", "surrogatepass")).hexdigest()
        result = f"{stem}-{digest[:HASH_CHARS]}{tail}"
    return result


def check_upload(path: Path, name: str, max_bytes: int = MAX_BYTES) -> None:
    suffix = Path(name).suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        raise UploadRefused(
            f"unsupported type {suffix or '(no extension)'}; accepted: "
            + ", ".join(ALLOWED_SUFFIXES))
    size = path.stat().st_size
    if size > max_bytes:
        raise UploadRefused(f"{size / 2**20:.1f} MiB is over the {max_bytes / 2**20:.0f} MiB "
                            "limit per file")
    if size == 0:
        raise UploadRefused("the file is empty")


def upload_folder(index_folder: Path) -> Path:
    folder = Path(index_folder) / UPLOAD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    root = Path(index_folder).resolve()
    if not folder.resolve().is_relative_to(root):
        raise UploadRefused(f"{folder} points outside the index folder; refusing to write")
    return folder


def upload_target(original_name: str, index_folder: Path) -> Path:
    """Where an upload called ``original_name`` is stored: always inside the uploads folder."""
    folder = upload_folder(index_folder)
    target = (folder / safe_name(original_name)).resolve()
    if target.parent != folder.resolve():
        raise UploadRefused("unsafe file name")
    return target


def store_upload(temp_path: str | Path, original_name: str, index_folder: Path,
                 max_bytes: int = MAX_BYTES, target: Path | None = None) -> Path:
    """Copy an uploaded file into ``<index>/uploads/`` under a sanitised name."""
    temp_path = Path(temp_path)
    check_upload(temp_path, original_name, max_bytes)
    target = target or upload_target(original_name, index_folder)
    if target.is_symlink():
        target.unlink()
    shutil.copyfile(temp_path, target)
    return target


def _rows(report, label: str, target: str) -> list[Row]:
    def article(source: str) -> str:
        return "" if source == target or Path(source).name == Path(target).name else source

    rows = []
    for result, sources in (("added", report.added), ("updated", report.updated),
                            ("unchanged", report.unchanged)):
        rows += [Row(label, article(s), result) for s in sources]
    rows += [Row(label, article(s), "failed", reason) for s, reason in report.failed]
    rows += [Row(label, article(s), "note", note) for s, note in report.notes]
    return rows


def add_items(kb, files: Sequence[str | Path] | None, urls_text: str | None,
              max_bytes: int = MAX_BYTES,
              progress: Callable[[int, int, str], None] | None = None) -> list[Row]:
    """Copy and index uploads, fetch and index URLs; one or more result rows per item."""
    rows: list[Row] = []
    todo: list[tuple[str, str]] = []  # (label, path or URL)
    files = list(files or [])
    if len(files) > MAX_FILES:
        rows += [Row(Path(str(f)).name, "", "failed", f"more than {MAX_FILES} files at once; "
                     "upload the rest separately") for f in files[MAX_FILES:]]
        files = files[:MAX_FILES]
    stored: dict[Path, str] = {}  # target -> the label of the upload stored there this call
    for item in files:
        path = Path(item if isinstance(item, str | Path) else getattr(item, "path", item))
        label = path.name
        try:
            target = upload_target(label, kb.files)
            if target in stored:  # storing it would replace an upload reported above
                raise UploadRefused(f"same stored name as {stored[target]} in this upload; "
                                    "rename it or upload it separately")
            todo.append((label, str(store_upload(path, label, kb.files, max_bytes, target))))
            stored[target] = label
        except (UploadRefused, OSError) as exc:
            rows.append(Row(label, "", "failed", str(exc)))
    urls = [u.strip() for u in (urls_text or "").splitlines() if u.strip()]
    for number, url in enumerate(urls):
        if number >= MAX_URLS:
            rows.append(Row(url, "", "failed", f"more than {MAX_URLS} URLs at once"))
        elif not is_url(url):
            rows.append(Row(url, "", "failed", "not an http(s):// URL"))
        else:
            todo.append((url, url))
    for number, (label, target) in enumerate(todo):
        if progress:
            progress(number, len(todo), label)
        try:
            report = kb.add([target], progress=False, max_bytes=max_bytes)
        except (ValueError, OSError, RuntimeError) as exc:
            rows.append(Row(label, "", "failed", str(exc)))
            continue
        rows += _rows(report, label, target) or [Row(label, "", "failed", "nothing to index")]
    if progress and todo:
        progress(len(todo), len(todo), "done")
    return rows


def summary(rows: Iterable[Row]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.result] = counts.get(row.result, 0) + 1
    order = ("added", "updated", "unchanged", "failed")
    return ", ".join(f"{counts.get(k, 0)} {k}" for k in order)


def article_rows(kb) -> list[list]:
    return [[a.id, a.title, a.published or "", a.source, a.chunks] for a in kb.articles()]


ARTICLE_HEADERS = ["id", "title", "published", "source", "passages"]
