"""Library management for the chat: uploads copied into the index folder, URLs, removal.

Uploads land in ``<index>/uploads/`` under a sanitised name: only the last path component of
whatever name the browser sent, reduced to letters, digits, ``.-_``; the final path is checked
to sit inside that folder, so "../../etc/passwd" or "/abs/path.txt" can never write elsewhere.
Re-uploading a file with the same name replaces its earlier copy (and so its article).
"""

from __future__ import annotations

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
MAX_NAME = 100


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


def safe_name(name: str) -> str:
    """A file name that is safe to create inside the uploads folder, keeping the suffix."""
    base = re.split(r"[\\/]", str(name))[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem)
    stem = re.sub(r"-{2,}", "-", stem).strip("-_.")[:MAX_NAME] or "upload"
    suffix = re.sub(r"[^A-Za-z0-9]+", "", suffix).lower()[:10]
    return f"{stem}.{suffix}" if suffix else stem


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


def store_upload(temp_path: str | Path, original_name: str, index_folder: Path,
                 max_bytes: int = MAX_BYTES) -> Path:
    """Copy an uploaded file into ``<index>/uploads/`` under a sanitised name."""
    temp_path = Path(temp_path)
    check_upload(temp_path, original_name, max_bytes)
    folder = upload_folder(index_folder)
    target = (folder / safe_name(original_name)).resolve()
    if target.parent != folder.resolve():
        raise UploadRefused("unsafe file name")
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
    for item in files:
        path = Path(item if isinstance(item, str | Path) else getattr(item, "path", item))
        label = path.name
        try:
            todo.append((label, str(store_upload(path, label, kb.files, max_bytes))))
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
