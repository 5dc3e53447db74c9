"""Articles in: files, folders and URLs to clean `Article`s, with a reason for every one refused.

Loading never stops at a bad item: each input yields articles or a `Refused(source, reason)`,
so one broken file (or one broken JSONL line) costs only itself.
"""

from __future__ import annotations

import errno
import hashlib
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import trafilatura
from charset_normalizer import from_bytes

from qa.cleaning import clean_text, markdown_to_text, normalise, parse_date

TEXT_SUFFIXES = {".txt", ".text"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
JSON_SUFFIXES = {".json"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
SUPPORTED_SUFFIXES = (
    TEXT_SUFFIXES | MARKDOWN_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES | JSONL_SUFFIXES
)
MAX_BYTES = 10 * 1024 * 1024
URL_TIMEOUT = 15.0
_BINARY_MAGIC = {
    b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
    b"%PDF": "a PDF document", b"PK\x03\x04": "a ZIP archive", b"\x1f\x8b": "a gzip archive",
}
_WESTERN = "cp1252"
TEXT_FIELDS = ("text", "content", "body", "article", "maintext", "description")
_HTML_TAG = re.compile(r"<(?:p|div|br|article|span|a|h[1-6])\b[^>]*>", re.IGNORECASE)
_HTML_PAGE = re.compile(r"<(?:html|body)\b", re.IGNORECASE)
_NAVIGATION = ["//nav", "//*[@role='navigation']"]  # pruned before trafilatura's fallbacks see it
DATE_FIELDS = ("published", "date", "published_at", "publishedAt", "pubDate", "datetime")
_RECORD_FIELDS = {*TEXT_FIELDS, *DATE_FIELDS, "title", "url", "link", "id", "_id"}


def source_id(source: str) -> str:
    """An article's id: stable for its source, so an edited article keeps its id."""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


@dataclass
class Article:
    """One article. Its identity is ``source``; ``content_hash`` says whether it changed."""

    source: str
    text: str
    title: str = ""
    url: str | None = None
    published: str | None = None
    metadata: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return source_id(self.source)

    @property
    def content_hash(self) -> str:
        payload = json.dumps([self.title, self.text, self.url, self.published, self.metadata])
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class Refused:
    """An input that gave no article, and why."""

    source: str
    reason: str


class LoadError(ValueError):
    """The reason a single input cannot become an article."""


def decode(data: bytes, notes: list[str]) -> str:
    """Bytes to text: UTF-8 when it is, else the detected encoding, which is noted."""
    if not data.strip():
        raise LoadError("empty file")
    for magic, kind in _BINARY_MAGIC.items():
        if data.startswith(magic):
            raise LoadError(f"binary file ({kind}), not text")
    if b"\x00" in data[:8192]:
        raise LoadError("binary file (contains NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    text, encoding = _legacy_decode(data)
    notes.append(f"not UTF-8: decoded as {encoding}")
    return text


def _legacy_decode(data: bytes) -> tuple[str, str]:
    """The detected encoding; cp1252 (Western, a superset of Latin-1) wins a tie, as on the web.

    Short Western text decodes as cleanly in cp1250 ("crème" -> "crčme"), so the detector's own
    order between equally good guesses must not decide.
    """
    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise LoadError("not text in any known encoding")
    for match in matches:
        tied = (match.chaos, match.coherence) == (best.chaos, best.coherence)
        if tied and _WESTERN in match.could_be_from_charset:
            return data.decode(_WESTERN), _WESTERN
    return str(best), best.encoding


def _require_text(article: Article) -> Article:
    if not article.text.strip():
        raise LoadError("no article text left after cleaning")
    return article


def from_plain_text(raw: str, source: str, markdown: bool = False, **known) -> Article:
    fields: dict[str, str] = {}
    if markdown:
        raw, fields = markdown_to_text(raw)
    cleaned = clean_text(raw)
    return _require_text(Article(
        source=source,
        text=cleaned.text,
        title=fields.get("title") or cleaned.title or Path(source).stem,
        published=parse_date(fields.get("date", "")) or cleaned.published,
        **known,
    ))


def from_html(raw: str, source: str, url: str | None = None, **known) -> Article:
    """Main text through trafilatura; menus, asides, scripts and footers stay behind."""
    doc = trafilatura.bare_extraction(
        raw, url=url, with_metadata=True, include_comments=False, include_tables=True,
        favor_precision=True, prune_xpath=_NAVIGATION,
    )
    if doc is None or not (doc.text or "").strip():
        raise LoadError("no article text found in the HTML (only scripts, menus or markup)")
    title = normalise(doc.title or "")
    text = clean_text(doc.text, find_header=False).text
    first, _, rest = text.partition("\n")
    if title and first.strip() == title:  # the headline is metadata, not a passage
        text = rest.strip()
    return _require_text(Article(
        source=source,
        text=text,
        title=title or Path(source).stem,
        url=url or doc.url,
        published=doc.date,
        **known,
    ))


def from_record(record: object, source: str, file: str) -> Article:
    """A JSON object with a title and text (or content/body/...) found at ``source``.

    Its identity is its URL, else its own id within ``file``, else where it was found.
    """
    if not isinstance(record, dict):
        raise LoadError(f"expected a JSON object, got {type(record).__name__}")
    text = next((record[k] for k in TEXT_FIELDS if isinstance(record.get(k), str)), None)
    if not text or not text.strip():
        raise LoadError(f"record has no text (looked for {', '.join(TEXT_FIELDS)})")
    record_id = record.get("id", record.get("_id"))
    url = record.get("url") or record.get("link")
    identity = url or (f"{file}#{record_id}" if record_id is not None else source)
    known = {
        "url": url,
        "metadata": {"file": file} | {
            k: v for k, v in record.items()
            if k not in _RECORD_FIELDS and isinstance(v, str | int | float | bool)},
    }
    if _HTML_TAG.search(text):  # a fragment needs a page around it for trafilatura to read it
        page = text if _HTML_PAGE.search(text) else f"<html><body><div>{text}</div></body></html>"
        article = from_html(page, identity, **known)
    else:
        cleaned = clean_text(text, find_header=False)
        article = _require_text(Article(source=identity, text=cleaned.text, **known))
    article.title = normalise(str(record.get("title") or "")) or article.title
    dates = (parse_date(str(record[k])[:10]) for k in DATE_FIELDS if record.get(k))
    article.published = next((d for d in dates if d), article.published)
    return article


def _where(exc: json.JSONDecodeError, lines: bool) -> str:
    """"Expecting value at line 3 column 5"; a message that already ends in "at" (e.g.
    "Unterminated string starting at") takes the place without a second "at"."""
    place = f"line {exc.lineno} column {exc.colno}" if lines else f"column {exc.colno}"
    return f"{exc.msg} {place}" if exc.msg.endswith(" at") else f"{exc.msg} at {place}"


def _records(raw: str, path: str, lines: bool) -> Iterator[Article | Refused]:
    if lines:
        for number, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                yield from_record(json.loads(line), where, path)
            except json.JSONDecodeError as exc:
                yield Refused(where, f"invalid JSON: {_where(exc, lines=False)}")
            except LoadError as exc:
                yield Refused(where, str(exc))
        return
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        yield Refused(path, f"invalid JSON: {_where(exc, lines=True)}")
        return
    if isinstance(data, dict) and isinstance(data.get("articles"), list):
        items = data["articles"]
    else:
        items = data if isinstance(data, list) else [data]
    for number, item in enumerate(items):
        where = path if len(items) == 1 else f"{path}[{number}]"
        try:
            yield from_record(item, where, path)
        except LoadError as exc:
            yield Refused(where, str(exc))


def _parse(raw: str, source: str, kind: str, url: str | None = None) -> Iterator[Article | Refused]:
    if kind in JSON_SUFFIXES | JSONL_SUFFIXES:
        yield from _records(raw, source, lines=kind in JSONL_SUFFIXES)
    elif kind in HTML_SUFFIXES:
        yield from_html(raw, source, url=url)
    else:
        yield from_plain_text(raw, source, markdown=kind in MARKDOWN_SUFFIXES, url=url)


def load_file(path: Path, max_bytes: int = MAX_BYTES) -> Iterator[Article | Refused]:
    source = str(path)
    try:
        suffix = path.suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            raise LoadError(f"unsupported file type {suffix or '(none)'!r}; supported: "
                            + ", ".join(sorted(SUPPORTED_SUFFIXES)))
        if path.is_symlink():
            try:
                path.stat()
            except OSError as exc:
                raise LoadError("symbolic link loop: the link leads back to itself"
                                if exc.errno == errno.ELOOP
                                else "broken symbolic link: its target does not exist") from None
        if not path.is_file():
            raise LoadError("not a regular file")
        size = path.stat().st_size
        if size > max_bytes:
            raise LoadError(f"file too large: {size / 2**20:.1f} MiB, limit "
                            f"{max_bytes / 2**20:.0f} MiB (raise it with --max-mb)")
        notes: list[str] = []
        raw = decode(path.read_bytes(), notes)
        for item in _parse(raw, source, suffix):
            if isinstance(item, Article):
                item.notes.extend(notes)
            yield item
    except LoadError as exc:
        yield Refused(source, str(exc))
    except OSError as exc:
        yield Refused(source, f"cannot read: {exc.strerror or exc}")


def _decode_declared(data: bytes, charset: str | None, notes: list[str]) -> str:
    """Bytes in the charset the server declared; a missing or unknown one is detected instead."""
    if charset:
        try:
            return data.decode(charset, errors="replace")
        except LookupError:
            notes.append(f"the server declared an unknown charset {charset!r}")
    return decode(data, notes)


def load_url(url: str, max_bytes: int = MAX_BYTES, timeout: float = URL_TIMEOUT
             ) -> Iterator[Article | Refused]:
    request = urllib.request.Request(url, headers={"User-Agent": "ArticleQA/0.1"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(max_bytes + 1)
            content_type = response.headers.get_content_type()
            charset = response.headers.get_content_charset()
        if len(data) > max_bytes:
            raise LoadError(f"page larger than {max_bytes / 2**20:.0f} MiB")
        notes: list[str] = []
        raw = _decode_declared(data, charset, notes)
        kind = next((s for s in SUPPORTED_SUFFIXES if url.lower().split("?")[0].endswith(s)),
                    ".html" if "html" in content_type else ".json" if "json" in content_type
                    else ".txt")
        for item in _parse(raw, url, kind, url=url):
            if isinstance(item, Article):
                item.notes.extend(notes)
            yield item
    except LoadError as exc:
        yield Refused(url, str(exc))
    except urllib.error.HTTPError as exc:
        yield Refused(url, f"HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        yield Refused(url, f"cannot fetch: {reason}")


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def source_units(inputs: Iterable[str | Path]) -> Iterator[str | Path | Refused]:
    """What the inputs name, one loadable unit at a time: a URL (str) or a file (Path); folders
    are walked (recursively, hidden entries skipped). A cluster ingest spreads these units over
    its workers, so it must see the same ones, in the same order, as `iter_articles`."""
    for item in inputs:
        if isinstance(item, str) and is_url(item):
            yield item
            continue
        path = Path(item)
        if path.is_dir():
            files = [
                child for child in sorted(path.rglob("*"))
                if child.suffix.lower() in SUPPORTED_SUFFIXES and not child.is_dir()
                and not any(p.startswith(".") for p in child.relative_to(path).parts)
            ]
            if not files:
                yield Refused(str(path), "folder holds no supported files ("
                              + ", ".join(sorted(SUPPORTED_SUFFIXES)) + ")")
            yield from files
        elif path.exists() or path.is_symlink():
            yield path
        else:
            yield Refused(str(item), "no such file, folder or URL")


def iter_articles(inputs: Iterable[str | Path], max_bytes: int = MAX_BYTES
                  ) -> Iterator[Article | Refused]:
    """Everything the inputs hold: files, folders (recursively, hidden entries skipped), URLs."""
    for unit in source_units(inputs):
        if isinstance(unit, Refused):
            yield unit
        elif isinstance(unit, str):
            yield from load_url(unit, max_bytes)
        else:
            yield from load_file(unit, max_bytes)
