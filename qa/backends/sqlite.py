"""SQLite store of articles, chunks and their vectors, with FTS5 for BM25.

The embedded backend's source of truth. Every ingest batch is one transaction, so a killed
ingest leaves whole articles or none. Chunk vectors live here too (float32 blobs); the FAISS
file is a cache of them (see ``qa.backends.embedded``). Chunk ids are AUTOINCREMENT row ids,
never reused. An FTS5 table holds each chunk's text with its article's title (a title's words
are evidence for every chunk).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from qa.backends.base import ArticleRow, ChunkRow, Filters, Hit, StoredArticle
from qa.backends.manifest import IndexMismatch

SCHEMA_VERSION = 4
# Opened in place: v2 indexed chunk text alone for BM25 (the titles are added); v2 and v3 kept
# an index-time spaCy analysis per article for the old heuristic reader (it is dropped).
UPGRADABLE = (2, 3)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    content_hash TEXT NOT NULL,
    title TEXT NOT NULL,
    url TEXT,
    published TEXT,
    metadata TEXT NOT NULL,
    text TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    start_char INTEGER NOT NULL,
    end_char INTEGER NOT NULL,
    text TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_article ON chunks(article_id);
"""

_FULL_TEXT = """
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, text, tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, title, text) VALUES
        (new.id, (SELECT title FROM articles WHERE id = new.article_id), new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_fts_delete AFTER DELETE ON chunks BEGIN
    DELETE FROM chunks_fts WHERE rowid = old.id;
END;
"""

_TITLES_FROM_V2 = f"""
DROP TRIGGER chunks_fts_insert;
DROP TRIGGER chunks_fts_delete;
DROP TABLE chunks_fts;
{_FULL_TEXT}
INSERT INTO chunks_fts(rowid, title, text)
    SELECT c.id, a.title, c.text FROM chunks c JOIN articles a ON a.id = c.article_id;
"""
_UPGRADE_TO_V4 = f"""
DROP TABLE IF EXISTS analyses;
UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema_version';
COMMIT;
"""


def text_hash(text: str) -> str:
    """Whitespace- and case-insensitive hash: copies of one passage collapse to one."""
    return hashlib.sha1(" ".join(text.lower().split()).encode()).hexdigest()


class SQLiteStore:
    """Articles and chunks in one SQLite file (WAL); `connect` opens or creates it."""

    def __init__(self, path: str | Path, dimension: int):
        self.path = Path(path)
        self.dimension = dimension
        self.db: sqlite3.Connection | None = None

    def connect(self, existing: bool = False, advice: str = "") -> None:
        """Open the database, or create it. An ``existing`` one must already be ours: it is
        read at once (schema, meta), so a damaged file, one truncated (SQLite compares the
        page count in its header with the file's size on the first read) or another program's
        database is refused here, with ``advice``, rather than failing on a later query. (A
        full ``PRAGMA quick_check`` would read every page: 0.27 s per 400 MB, warm.)"""
        with self.refusing_damage(advice):
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            if existing and self.db.execute(
                    "SELECT 1 FROM meta WHERE key = 'schema_version'").fetchone() is None:
                raise sqlite3.DatabaseError("no schema_version in its meta table")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(_SCHEMA)
            self.db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?), ('generation', '0')",
                (str(SCHEMA_VERSION),),
            )
            if self.stored_schema_version in UPGRADABLE:
                self._upgrade()
            self.db.executescript(_FULL_TEXT)

    @contextmanager
    def refusing_damage(self, advice: str = "") -> Iterator[None]:
        """SQLite's errors as one line naming the file, closing the connection."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            self.close()
            what = ("a directory, not a database file" if self.path.is_dir() else
                    f"damaged or not an ArticleQA database (SQLite: {exc})")
            raise IndexMismatch(f"{self.path} is {what}" + (f"; {advice}" if advice else "")
                                ) from exc

    def _upgrade(self) -> None:
        """Bring an older index to this schema in one transaction; vectors are untouched."""
        titles = _TITLES_FROM_V2 if self.stored_schema_version == 2 else ""
        try:
            self.db.executescript(f"BEGIN IMMEDIATE;\n{titles}{_UPGRADE_TO_V4}")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self.db is not None:
            self.db.close()

    def _meta(self, key: str) -> str:
        return self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    def built_with(self, settings: dict) -> dict:
        """What the index was built with (dimension, chunking, ...) as its database records
        it: ``settings``, recorded now where nothing is yet (a new index, or one from before
        this record; the first of two processes creating an index at once wins)."""
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('built_with', ?)",
                        (json.dumps(settings, sort_keys=True),))
        return json.loads(self._meta("built_with"))

    def vector_dimension(self) -> int | None:
        """The length of a stored vector (float32), None with no chunks."""
        row = self.db.execute("SELECT length(vector) FROM chunks LIMIT 1").fetchone()
        return None if row is None else row[0] // 4

    @property
    def stored_schema_version(self) -> int:
        return int(self._meta("schema_version"))

    @property
    def generation(self) -> int:
        """Bumped by every committed change: tells whether the FAISS cache is current."""
        return int(self._meta("generation"))

    def content_hashes(self, article_ids: Sequence[str]) -> dict[str, str]:
        return dict(self._rows_by_id(
            "SELECT id, content_hash FROM articles WHERE id IN ({marks})", article_ids))

    def _rows_by_id(self, sql: str, ids: Sequence[str | int], *params) -> Iterator[tuple]:
        """``sql`` over ``ids`` in parts, each within SQLite's limit on bound variables."""
        for start in range(0, len(ids), 500):
            part = list(ids[start:start + 500])
            yield from self.db.execute(sql.format(marks=",".join("?" * len(part))),
                                       [*part, *params])

    def replace_articles(self, batch: Sequence[StoredArticle]) -> None:
        """Insert or replace articles with their chunks and vectors in one transaction."""
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._transaction():
            for article, chunks, vectors in batch:
                self._delete(article.id)
                self.db.execute(
                    "INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (article.id, article.source, article.content_hash, article.title,
                     article.url, article.published, json.dumps(article.metadata),
                     article.text, now),
                )
                for ordinal, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True)):
                    self.db.execute(
                        "INSERT INTO chunks (article_id, ordinal, start_char, end_char, text,"
                        " text_hash, vector) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (article.id, ordinal, chunk.start, chunk.end, chunk.text,
                         text_hash(chunk.text), np.asarray(vector, np.float32).tobytes()),
                    )

    def remove_article(self, article_id: str) -> bool:
        if not self.content_hashes([article_id]):
            return False
        with self._transaction():
            self._delete(article_id)
        return True

    def _delete(self, article_id: str) -> None:
        self.db.execute("DELETE FROM articles WHERE id = ?", (article_id,))

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads that see one committed state, whatever other processes commit meanwhile."""
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        self.db.execute("COMMIT")

    def lexical_search(self, terms: Sequence[str], k: int,
                       allowed_ids: Sequence[int] | None = None) -> list[Hit]:
        """FTS5's BM25 over chunk text and title, any of the terms (phrase-quoted)."""
        if not terms:
            return []
        match = " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
        where = ""
        if allowed_ids is not None:
            where = f" AND rowid IN ({','.join(str(int(i)) for i in allowed_ids) or 'NULL'})"
        rows = self.db.execute(
            f"SELECT rowid, bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ?{where}"
            " ORDER BY s LIMIT ?", (match, k))
        return [(rowid, -score) for rowid, score in rows]

    def chunk_ids(self, filters: Filters | None = None) -> list[int]:
        clauses, args = [], []
        if filters and filters.sources:
            clauses.append("(" + " OR ".join(
                "a.id = ? OR instr(a.source, ?) > 0" for _ in filters.sources) + ")")
            args += [value for source in filters.sources for value in (source, source)]
        if filters and filters.since:
            clauses.append("a.published >= ?")
            args.append(filters.since)
        if filters and filters.until:
            clauses.append("a.published <= ?")
            args.append(filters.until)
        if not clauses:
            return [r[0] for r in self.db.execute("SELECT id FROM chunks")]
        return [r[0] for r in self.db.execute(
            "SELECT c.id FROM chunks c JOIN articles a ON a.id = c.article_id WHERE "
            + " AND ".join(clauses), args)]

    def chunk_vectors(self, chunk_ids: Sequence[int]) -> np.ndarray:
        rows = self._rows_by_id("SELECT id, vector FROM chunks WHERE id IN ({marks})",
                                [int(i) for i in chunk_ids])
        order = {cid: pos for pos, cid in enumerate(int(i) for i in chunk_ids)}
        out = np.zeros((len(chunk_ids), self.dimension), np.float32)
        for cid, blob in rows:
            out[order[cid]] = np.frombuffer(blob, np.float32)
        return out

    def chunks(self, chunk_ids: Sequence[int]) -> dict[int, ChunkRow]:
        ids = [int(i) for i in chunk_ids]
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            "SELECT c.id, c.article_id, c.start_char, c.end_char, c.text, c.text_hash,"
            " a.title, a.source, a.url, a.published FROM chunks c"
            f" JOIN articles a ON a.id = c.article_id WHERE c.id IN ({marks})", ids)
        return {row[0]: ChunkRow(*row) for row in rows}

    def article_chunks(self, article_id: str) -> list[tuple[int, int, str]]:
        return self.db.execute(
            "SELECT start_char, end_char, text FROM chunks WHERE article_id = ? ORDER BY ordinal",
            (article_id,)).fetchall()

    def articles(self, article_id: str | None = None) -> list[ArticleRow]:
        where, args = ("WHERE a.id = ?", (article_id,)) if article_id else ("", ())
        rows = self.db.execute(
            "SELECT a.id, a.source, a.title, a.url, a.published, a.metadata, a.text,"
            " (SELECT COUNT(*) FROM chunks c WHERE c.article_id = a.id), a.added_at"
            f" FROM articles a {where} ORDER BY a.added_at, a.source", args)
        return [ArticleRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8])
                for r in rows]

    def count_articles(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM articles").fetchone()[0]

    def count_chunks(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
