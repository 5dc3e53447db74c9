"""What the engine needs from a backend: three small contracts and the rows they return.

A backend stores articles with their chunks and chunk vectors (`ArticleStore`), ranks chunks
for a question's words (`LexicalSearch`) and for a question's vector (`VectorSearch`). The
engine (`qa.ingest`, `qa.search`) talks only to these, so a new backend is one module in
this package that implements `Backend` and one line in `qa.backends.open_backend`.
Chunk ids are integers chosen by the store, stable for a chunk's life and never reused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import ClassVar, Protocol

import numpy as np

from qa.articles import Article
from qa.backends.manifest import Manifest
from qa.chunking import Chunk

Hit = tuple[int, float]  # (chunk id, score: higher is better)
StoredArticle = tuple[Article, Sequence[Chunk], np.ndarray]  # an article, its chunks, vectors
_DAY = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")


def check_day(value: str | None) -> str | None:
    """A publication-date bound: a real YYYY, YYYY-MM or YYYY-MM-DD (not "2026-13-45")."""
    if value is None:
        return None
    try:
        if not _DAY.fullmatch(value):
            raise ValueError
        date.fromisoformat((value + "-01-01")[:10] if len(value) < 10 else value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY, YYYY-MM or YYYY-MM-DD)") from None
    return value


@dataclass(frozen=True)
class Filters:
    """Only articles from these sources (ids, or parts of a source path or URL), published
    within [since, until] (ISO dates, inclusive)."""

    sources: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            try:
                check_day(getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None

    @property
    def active(self) -> bool:
        return bool(self.sources or self.since or self.until)


@dataclass(frozen=True)
class ChunkRow:
    id: int
    article_id: str
    start: int
    end: int
    text: str
    text_hash: str
    title: str
    source: str
    url: str | None
    published: str | None


@dataclass(frozen=True)
class ArticleRow:
    id: str
    source: str
    title: str
    url: str | None
    published: str | None
    metadata: dict
    text: str
    chunks: int
    added_at: str


class ArticleStore(Protocol):
    """Articles and their chunks, the source of truth."""

    def content_hashes(self, article_ids: Sequence[str]) -> dict[str, str]:
        """The stored content hash of each of these articles that is stored."""

    def replace_articles(self, batch: Sequence[StoredArticle]) -> None:
        """Insert or replace these articles with their chunks and vectors, all in one
        transaction: a killed ingest leaves whole articles only."""

    def remove_article(self, article_id: str) -> bool:
        """Delete an article with its chunks; False if there was none."""

    def articles(self, article_id: str | None = None) -> list[ArticleRow]:
        """One article, or all of them in the order they were added."""

    def article_chunks(self, article_id: str) -> list[tuple[int, int, str]]:
        """(start, end, text) of an article's chunks in reading order."""

    def chunks(self, chunk_ids: Sequence[int]) -> dict[int, ChunkRow]:
        """The chunks with these ids that exist, with their article's citation fields."""

    def chunk_vectors(self, chunk_ids: Sequence[int]) -> np.ndarray:
        """The stored vector of each chunk id, in order (float32, one row per id)."""

    def chunk_ids(self, filters: Filters | None = None) -> list[int]:
        """Ids of all chunks, or of the chunks of articles that pass ``filters``."""

    def count_articles(self) -> int: ...

    def count_chunks(self) -> int: ...


class LexicalSearch(Protocol):
    def lexical_search(self, terms: Sequence[str], k: int,
                       allowed_ids: Sequence[int] | None = None) -> list[Hit]:
        """The ``k`` chunks best matching any of ``terms`` (BM25-like), best first."""


class VectorSearch(Protocol):
    def __len__(self) -> int: ...

    def search(self, queries: np.ndarray, k: int,
               allowed_ids: Sequence[int] | None = None) -> list[list[Hit]]:
        """Per query row, the ``k`` chunks of highest inner product, best first."""


class Backend(ArticleStore, LexicalSearch, Protocol):
    """A store with both searches, the manifest that says what built it, and its lifecycle."""

    kind: ClassVar[str]  # recorded in the manifest, e.g. "sqlite+faiss"
    schema_version: ClassVar[int]
    upgradable: ClassVar[tuple[int, ...]]  # older schema versions `open` upgrades in place
    location: str  # a folder or a database URL (without its password)
    vectors: VectorSearch

    def read_manifest(self) -> Manifest | None:
        """What built the index here, or None where there is none yet."""

    def open(self, manifest: Manifest) -> None:
        """Create (or upgrade) the index for ``manifest`` and record it; an index already here
        is first checked against it (`Manifest.check`: `IndexMismatch` saying what to do);
        a database does this under a lock, so two processes creating one cannot race."""

    def refresh(self) -> None:
        """Pick up what other processes committed since (cheap when nothing changed)."""

    def flush(self) -> None:
        """Persist what a run of writes left in memory (caches); nothing to lose if skipped."""

    def size_bytes(self) -> int: ...

    def close(self) -> None: ...
