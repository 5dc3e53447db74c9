"""The server backend: PostgreSQL + pgvector, shared by any number of servers and ingests.

Everything lives in three tables (``articleqa_meta`` holds the manifest; ``articleqa_articles``;
``articleqa_chunks`` with each chunk's vector, HNSW-indexed, and its words, GIN-indexed), so
every query reads the database itself: there is no cache to refresh, and an article another
process committed is found at once. One database holds one index.

Needs the ``[postgres]`` extra (psycopg 3 and pgvector's Python package) and pgvector >= 0.8
on the server (iterative index scans); ``articleqa db start`` runs a local server with both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timezone
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from qa.backends.base import ArticleRow, ChunkRow, Filters, Hit, StoredArticle
from qa.backends.manifest import Manifest
from qa.backends.sqlite import text_hash

try:
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb
except ImportError:  # the extra is optional: say how to add it when a URL is opened
    psycopg = None

KIND = "postgresql+pgvector"
META, ARTICLES, CHUNKS = "articleqa_meta", "articleqa_articles", "articleqa_chunks"
LOCKS = 0x41514100  # advisory lock class of ArticleQA ("AQA"): its own key, and per article
EXACT_UP_TO = 20_000  # filtered vector searches over at most this many chunks are exact
MAX_EF_SEARCH = 1000  # pgvector's upper bound
BM25_K1, BM25_B = 1.2, 0.75  # the usual BM25 constants (SQLite FTS5 uses the same)
STATS_SECONDS = 30.0  # corpus size and mean chunk length are re-counted at most this often

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {META} (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS {ARTICLES} (
    id text PRIMARY KEY,
    source text NOT NULL UNIQUE,
    content_hash text NOT NULL,
    title text NOT NULL,
    url text,
    published text,
    metadata jsonb NOT NULL,
    text text NOT NULL,
    added_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {CHUNKS} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    article_id text NOT NULL REFERENCES {ARTICLES}(id) ON DELETE CASCADE,
    ordinal integer NOT NULL,
    start_char integer NOT NULL,
    end_char integer NOT NULL,
    text text NOT NULL,
    text_hash text NOT NULL,
    embedding vector({{dimension}}) NOT NULL,
    words tsvector NOT NULL
);
CREATE INDEX IF NOT EXISTS {CHUNKS}_article ON {CHUNKS} (article_id, ordinal);
CREATE INDEX IF NOT EXISTS {CHUNKS}_words ON {CHUNKS} USING gin (words);
CREATE INDEX IF NOT EXISTS {CHUNKS}_embedding ON {CHUNKS} USING hnsw (embedding vector_ip_ops);
"""
# A title's words are evidence for every chunk of its article, weighted above the text's.
_INSERT_CHUNK = f"""
INSERT INTO {CHUNKS} (article_id, ordinal, start_char, end_char, text, text_hash, embedding,
                      words)
VALUES (%(article_id)s, %(ordinal)s, %(start)s, %(end)s, %(text)s, %(hash)s, %(vector)s,
        setweight(to_tsvector('english', %(title)s), 'A')
        || setweight(to_tsvector('english', %(text)s), 'B'))
"""
# Exact: the distance to every allowed chunk (by primary key), then the best k. MATERIALIZED
# keeps the planner from answering from the HNSW index, which would drop filtered-out rows.
_EXACT = f"""
WITH c AS MATERIALIZED (
    SELECT id, embedding <#> %(query)s AS d FROM {CHUNKS} WHERE id = ANY(%(ids)s::bigint[]))
SELECT id, -d FROM c ORDER BY d, id LIMIT %(k)s
"""
# Approximate: HNSW with an iterative scan, whose relaxed order the outer query sorts again;
# "d + 0" because PostgreSQL 17+ would otherwise trust the CTE's order and skip the sort.
_APPROXIMATE = f"""
WITH c AS MATERIALIZED (
    SELECT id, embedding <#> %(query)s AS d FROM {CHUNKS} {{where}} ORDER BY d LIMIT %(k)s)
SELECT id, -d FROM c ORDER BY d + 0, id
"""


# BM25 in SQL: PostgreSQL's own ranking (ts_rank) has no inverse document frequency, which
# cost 0.16 nDCG@10 on SciFact against SQLite's BM25. Each query lexeme's document frequency
# comes from the GIN index; the chunks holding any of them are scored on their own term
# frequencies (a title's words count in every chunk), length = distinct lexemes. Only the
# query's lexemes are unnested: re-weighted to D (titles are A, text B) and filtered on it.
_BM25 = f"""
WITH terms AS (
    SELECT t.lexeme, ln(1 + (greatest(%(n)s, d.df) - d.df + 0.5) / (d.df + 0.5)) AS idf
    FROM (SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %(text)s))) AS t
    CROSS JOIN LATERAL (SELECT count(*) AS df FROM {CHUNKS}
                        WHERE words @@ quote_literal(t.lexeme)::tsquery) AS d
), matched AS (
    SELECT c.id, length(c.words) AS dl, u.lexeme, cardinality(u.positions) AS tf
    FROM {CHUNKS} c CROSS JOIN LATERAL unnest(ts_filter(
        setweight(c.words, 'D', (SELECT array_agg(lexeme) FROM terms)), '{{{{d}}}}')) AS u
    WHERE c.words @@ (SELECT string_agg(quote_literal(lexeme), ' | ')::tsquery FROM terms){{where}}
)
SELECT m.id, sum(t.idf * m.tf * ({BM25_K1} + 1)
                 / (m.tf + {BM25_K1} * (1 - {BM25_B} + {BM25_B} * m.dl / %(avgdl)s))) AS score
FROM matched m JOIN terms t USING (lexeme)
GROUP BY m.id ORDER BY score DESC, m.id LIMIT %(k)s
"""


def without_password(url: str) -> str:
    """``url`` with no password (in its user part or its query): safe to show and log."""
    parts = urlsplit(url)
    user, at, host = parts.netloc.rpartition("@")
    netloc = user.split(":", 1)[0] + at + host
    query = "&".join(p for p in parts.query.split("&") if not p.startswith("password="))
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class PostgresBackend:
    """`Backend` on one PostgreSQL database (a ``postgresql://`` URL), via one connection.

    The connection is in autocommit mode and every write is one explicit transaction, so a
    failed statement never leaves it inside an aborted transaction. A lock serialises the
    threads of one process (a chat server), so no thread's statement runs inside another's
    transaction; other processes get their own connections and PostgreSQL's own isolation.
    """

    kind: ClassVar[str] = KIND
    schema_version: ClassVar[int] = 1
    upgradable: ClassVar[tuple[int, ...]] = ()

    def __init__(self, url: str):
        if psycopg is None:
            raise RuntimeError(
                "PostgreSQL support needs psycopg and pgvector: pip install 'articleqa[postgres]'")
        self.url = url
        self.location = without_password(url)
        self.dimension = 0
        self.vectors = PgVectors(self)
        self._lock = threading.RLock()
        self._opened = False
        self._stats: tuple[float, int, float] | None = None  # (when, chunks, mean length)
        self._connect()

    def _connect(self) -> None:
        try:
            self.conn = psycopg.connect(self.url, autocommit=True, application_name="articleqa")
        except psycopg.Error as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise RuntimeError(
                f"cannot connect to PostgreSQL at {self.location}: {reason}") from None
        if self._opened:
            register_vector(self.conn)

    @contextmanager
    def _cursor(self) -> Iterator[psycopg.Cursor]:
        """A cursor held by this thread alone. Once a call found the connection broken (the
        database restarted), the next one reconnects: a long-running server recovers."""
        with self._lock:
            if self.conn.broken:
                self._connect()
            with self.conn.cursor() as cur:
                yield cur

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor]:
        """A cursor inside one transaction: committed at the end, rolled back on any error."""
        with self._cursor() as cur, self.conn.transaction():
            yield cur

    # --- manifest and lifecycle ------------------------------------------------------

    def read_manifest(self) -> Manifest | None:
        with self._cursor() as cur:
            if cur.execute("SELECT to_regclass(%s)", (META,)).fetchone()[0] is None:
                return None
            return self._stored_manifest(cur)

    def _stored_manifest(self, cur: psycopg.Cursor) -> Manifest | None:
        row = cur.execute(f"SELECT value FROM {META} WHERE key = 'manifest'").fetchone()
        return Manifest.from_json(row[0], f"{self.location} (table {META})") if row else None

    def open(self, manifest: Manifest) -> None:
        """Create the extension, tables and indexes if missing, and record ``manifest``.

        Under an advisory lock, so two processes opening a fresh database at once do not race
        on CREATE; the manifest is checked again under it, so the loser of such a race cannot
        overwrite the winner's with another model's.
        """
        self.dimension = manifest.dimension
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s::bigint)", (LOCKS,))
            self._create_vector_extension(cur)
            cur.execute(_SCHEMA.format(dimension=int(manifest.dimension)))
            existing = self._stored_manifest(cur)
            if existing is not None:
                existing.check(manifest, self.location, self.upgradable)
            cur.execute(f"INSERT INTO {META} VALUES ('manifest', %s) ON CONFLICT (key) DO UPDATE"
                        " SET value = excluded.value", (manifest.to_json(),))
        register_vector(self.conn)
        self._opened = True

    def _create_vector_extension(self, cur: psycopg.Cursor) -> None:
        """pgvector >= 0.8 (iterative index scans), created if it is not there yet: an
        administrator may have created it for a user who could not."""
        query = "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        if cur.execute(query).fetchone() is None:
            if not cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
                               ).fetchone():
                raise RuntimeError(
                    f"the PostgreSQL server at {self.location} has no pgvector extension: "
                    "install pgvector >= 0.8 on it (https://github.com/pgvector/pgvector), "
                    "or run a local server that has it with `articleqa db start`")
            try:
                cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.errors.InsufficientPrivilege:
                raise RuntimeError(
                    f"this user may not create the pgvector extension in {self.location}: ask "
                    "the database owner or a superuser to run CREATE EXTENSION vector; in it"
                    ) from None
        version = cur.execute(query).fetchone()[0]
        if tuple(int(part) for part in version.split(".")[:2]) < (0, 8):
            raise RuntimeError(
                f"{self.location} has pgvector {version}; ArticleQA needs 0.8 or later: install "
                "it on the server, then run ALTER EXTENSION vector UPDATE; in the database")

    def refresh(self) -> None:
        """Nothing to do: every query reads the database."""

    def flush(self) -> None:
        """Nothing to do: every write is committed when it returns."""

    def size_bytes(self) -> int:
        with self._cursor() as cur:
            return int(cur.execute(
                "SELECT coalesce(sum(pg_total_relation_size(to_regclass(t))), 0)"
                " FROM unnest(%s::text[]) AS t", ([META, ARTICLES, CHUNKS],)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    # --- articles and chunks ---------------------------------------------------------

    def content_hashes(self, article_ids: Sequence[str]) -> dict[str, str]:
        with self._cursor() as cur:
            return dict(cur.execute(f"SELECT id, content_hash FROM {ARTICLES} WHERE id = ANY(%s)",
                                    (list(article_ids),)))

    @staticmethod
    def _lock_articles(cur: psycopg.Cursor, article_ids: Sequence[str]) -> None:
        """Serialise writers of one article till commit (a row lock cannot: the row may not
        exist yet), taken in one sorted order so that two batches never deadlock."""
        cur.execute("SELECT pg_advisory_xact_lock(%s, k) FROM (SELECT DISTINCT hashtext(id) AS k"
                    " FROM unnest(%s::text[]) AS id) AS keys ORDER BY k",
                    (LOCKS, list(article_ids)))

    def replace_articles(self, batch: Sequence[StoredArticle]) -> None:
        """Delete and insert the batch's articles with their chunks in one transaction; an
        article given twice keeps its last version, as if replaced twice."""
        batch = list({article.id: (article, chunks, vectors)
                      for article, chunks, vectors in batch}.values())
        chunk_rows = [
            {"article_id": article.id, "ordinal": ordinal, "start": chunk.start, "end": chunk.end,
             "text": chunk.text, "hash": text_hash(chunk.text), "title": article.title,
             "vector": np.asarray(vector, np.float32)}
            for article, chunks, vectors in batch
            for ordinal, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True))]
        ids = [article.id for article, _, _ in batch]
        if not ids:
            return
        with self._transaction() as cur:
            self._lock_articles(cur, ids)
            cur.execute(f"DELETE FROM {ARTICLES} WHERE id = ANY(%s)", (ids,))
            cur.executemany(
                f"INSERT INTO {ARTICLES} (id, source, content_hash, title, url, published,"
                " metadata, text) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [(a.id, a.source, a.content_hash, a.title, a.url, a.published, Jsonb(a.metadata),
                  a.text) for a, _, _ in batch])
            cur.executemany(_INSERT_CHUNK, chunk_rows)  # pipelined: one round trip
        self._stats = None

    def remove_article(self, article_id: str) -> bool:
        with self._transaction() as cur:
            self._lock_articles(cur, [article_id])
            cur.execute(f"DELETE FROM {ARTICLES} WHERE id = %s", (article_id,))
            removed = cur.rowcount > 0
        self._stats = None
        return removed

    def articles(self, article_id: str | None = None) -> list[ArticleRow]:
        where, args = ("WHERE a.id = %s", (article_id,)) if article_id else ("", ())
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT a.id, a.source, a.title, a.url, a.published, a.metadata, a.text,"
                f" (SELECT count(*) FROM {CHUNKS} c WHERE c.article_id = a.id), a.added_at"
                f" FROM {ARTICLES} a {where} ORDER BY a.added_at, a.source", args).fetchall()
        return [ArticleRow(*row[:8], row[8].astimezone(timezone.utc).isoformat(timespec="seconds"))
                for row in rows]

    def article_chunks(self, article_id: str) -> list[tuple[int, int, str]]:
        with self._cursor() as cur:
            return cur.execute(f"SELECT start_char, end_char, text FROM {CHUNKS}"
                               " WHERE article_id = %s ORDER BY ordinal", (article_id,)).fetchall()

    def chunks(self, chunk_ids: Sequence[int]) -> dict[int, ChunkRow]:
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT c.id, c.article_id, c.start_char, c.end_char, c.text, c.text_hash,"
                f" a.title, a.source, a.url, a.published FROM {CHUNKS} c"
                f" JOIN {ARTICLES} a ON a.id = c.article_id WHERE c.id = ANY(%s::bigint[])",
                ([int(i) for i in chunk_ids],))
            return {row[0]: ChunkRow(*row) for row in rows}

    def chunk_vectors(self, chunk_ids: Sequence[int]) -> np.ndarray:
        ids = [int(i) for i in chunk_ids]
        out = np.zeros((len(ids), self.dimension), np.float32)
        with self._cursor() as cur:
            vectors = dict(cur.execute(f"SELECT id, embedding FROM {CHUNKS}"
                                       " WHERE id = ANY(%s::bigint[])", (ids,)))
        for row, cid in enumerate(ids):
            if cid in vectors:
                out[row] = vectors[cid].to_numpy()
        return out

    def chunk_ids(self, filters: Filters | None = None) -> list[int]:
        """A source matches an article id exactly or any part of the article's source; dates
        compare as ISO strings, both ends inclusive (as in the embedded backend)."""
        clauses, args = [], []
        if filters and filters.sources:
            clauses.append("(a.id = ANY(%s) OR EXISTS (SELECT FROM unnest(%s::text[]) AS s"
                           " WHERE strpos(a.source, s) > 0))")
            args += [list(filters.sources)] * 2
        if filters and filters.since:
            clauses.append("a.published >= %s")
            args.append(filters.since)
        if filters and filters.until:
            clauses.append("a.published <= %s")
            args.append(filters.until)
        where = " AND ".join(clauses) or "TRUE"
        with self._cursor() as cur:
            return [row[0] for row in cur.execute(
                f"SELECT c.id FROM {CHUNKS} c JOIN {ARTICLES} a ON a.id = c.article_id"
                f" WHERE {where} ORDER BY c.id", args)]

    def count_articles(self) -> int:
        with self._cursor() as cur:
            return cur.execute(f"SELECT count(*) FROM {ARTICLES}").fetchone()[0]

    def count_chunks(self) -> int:
        with self._cursor() as cur:
            return cur.execute(f"SELECT count(*) FROM {CHUNKS}").fetchone()[0]

    # --- lexical search --------------------------------------------------------------

    def lexical_search(self, terms: Sequence[str], k: int,
                       allowed_ids: Sequence[int] | None = None) -> list[Hit]:
        """BM25 over the chunks holding any of ``terms`` (see ``_BM25``). The terms go through
        the 'english' text-search configuration as data, never as query syntax, so odd input
        cannot fail: "o'brien" is the lexemes o and brien, "c++" is c, stop words drop out."""
        text = " ".join(terms)
        if not text.strip() or k <= 0 or (allowed_ids is not None and not len(allowed_ids)):
            return []
        ids = None if allowed_ids is None else [int(i) for i in allowed_ids]
        where = "" if ids is None else " AND c.id = ANY(%(ids)s::bigint[])"
        chunks, mean_length = self._corpus_stats()
        with self._cursor() as cur:
            return [(cid, float(score)) for cid, score in cur.execute(
                _BM25.format(where=where),
                {"text": text, "k": k, "ids": ids, "n": chunks, "avgdl": mean_length})]

    def _corpus_stats(self) -> tuple[int, float]:
        """(chunks, mean distinct lexemes per chunk) for BM25, re-counted after this process
        writes or every ``STATS_SECONDS``: other processes' ingests shift them only slowly."""
        if self._stats is None or time.monotonic() - self._stats[0] > STATS_SECONDS:
            with self._cursor() as cur:
                count, mean = cur.execute(
                    f"SELECT count(*), avg(length(words)) FROM {CHUNKS}").fetchone()
            self._stats = (time.monotonic(), int(count), float(mean or 1.0))
        return self._stats[1], self._stats[2]


class PgVectors:
    """`VectorSearch` over the chunks' HNSW index (inner product; vectors are unit length, so
    it is their cosine). pgvector's ``<#>`` is the negative inner product, hence ``-d``."""

    def __init__(self, backend: PostgresBackend):
        self.backend = backend

    def __len__(self) -> int:
        return self.backend.count_chunks()

    def search(self, queries: np.ndarray, k: int,
               allowed_ids: Sequence[int] | None = None) -> list[list[Hit]]:
        """Per query row, the ``k`` chunks of highest inner product among ``allowed_ids``.

        Unfiltered, and filtered to many chunks: HNSW with ef_search = 2k (40 to 1000) and
        pgvector 0.8's relaxed iterative scan, which walks on until k rows pass the filter (a
        plain HNSW scan filters its ef_search candidates and returns too few), re-sorted.
        Filtered to at most `EXACT_UP_TO` chunks: the exact distance to each of them, which
        is then both cheaper and right, where an iterative scan through a mostly filtered-out
        graph may stop at its tuple limit with too few. An iterative scan that still comes
        back short is redone exactly.
        """
        ids = None if allowed_ids is None else [int(i) for i in allowed_ids]
        if k <= 0 or ids == []:
            return [[] for _ in queries]
        return [self._search(np.asarray(query, np.float32), k, ids) for query in queries]

    def _search(self, query: np.ndarray, k: int, ids: list[int] | None) -> list[Hit]:
        args = {"query": query, "k": k, "ids": ids}
        with self.backend._transaction() as cur:  # SET LOCAL lasts till its end
            if ids is not None and len(ids) <= EXACT_UP_TO:
                return cur.execute(_EXACT, args).fetchall()
            cur.execute("SELECT set_config('hnsw.ef_search', %s, true),"
                        " set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                        (str(min(MAX_EF_SEARCH, max(40, 2 * k))),))
            where = "" if ids is None else "WHERE id = ANY(%(ids)s::bigint[])"
            hits = cur.execute(_APPROXIMATE.format(where=where), args).fetchall()
            if ids is not None and len(hits) < min(k, len(ids)):
                hits = cur.execute(_EXACT, args).fetchall()
            return hits
