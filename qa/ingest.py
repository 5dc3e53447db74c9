"""Ingest: load, clean, chunk, embed and store articles, batch by batch, reporting each one.

Articles stream through: each batch of about ``batch_chunks`` chunks is embedded on a worker
thread while the next one is read and chunked, then written as one backend transaction, so
memory holds a few batches whatever the corpus size, the encoder never waits for the chunker,
and a killed ingest keeps the batches before it and loses those in flight, never part of an
article.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from embeddings import Encoder
from qa.articles import MAX_BYTES, Article, Refused, iter_articles
from qa.backends.base import Backend
from qa.chunking import Chunk, ChunkSettings, chunk_text
from qa.results import IngestReport

BATCH_CHUNKS = 1024
LOOKAHEAD = 256  # articles whose stored content hashes are fetched in one query
TITLE_TOKENS = 32  # at most this much of a headline is embedded with each chunk


def _windows(articles: Iterable[Article], size: int) -> Iterator[list[Article]]:
    window: list[Article] = []
    for article in articles:
        window.append(article)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def read_articles(inputs: Iterable[str | Path], report: IngestReport,
                  max_bytes: int = MAX_BYTES) -> Iterator[Article]:
    """The articles of files, folders and URLs; each one refused goes into ``report``."""
    for item in iter_articles(inputs, max_bytes):
        if isinstance(item, Refused):
            report.failed.append((item.source, item.reason))
        else:
            report.notes.extend((item.source, note) for note in item.notes)
            yield item


Batch = list[tuple[Article, list[Chunk]]]  # chunked articles, embedded and stored together


@dataclass
class Ingester:
    backend: Backend
    encoder: Encoder
    chunking: ChunkSettings
    embed_title: bool = True  # each chunk is embedded under its headline, for context
    batch_chunks: int = BATCH_CHUNKS

    def add(self, inputs: Iterable[str | Path], progress: bool = True,
            max_bytes: int = MAX_BYTES) -> IngestReport:
        """Files, folders and URLs: every one is stored or reported with its reason."""
        report = IngestReport()
        return self.add_articles(read_articles(inputs, report, max_bytes), progress, report)

    def add_articles(self, articles: Iterable[Article], progress: bool = True,
                     report: IngestReport | None = None) -> IngestReport:
        """Unchanged articles are skipped, edited ones replace their old chunks; when a source
        comes twice, its last copy wins.

        Streams: while one batch is embedded (on a thread: the encoder frees the GIL), the
        next is read and chunked here, then the first is written from this thread, the only
        one that touches the backend. Memory holds two or three batches (and a line of report
        per article), whatever the corpus size.
        """
        report = report or IngestReport()
        stored = False
        in_flight: tuple[Batch, Future] | None = None
        with (tqdm(desc="Indexing", unit=" chunk", disable=not progress) as bar,
              ThreadPoolExecutor(1, thread_name_prefix="embed") as embedder):
            for batch in self.plan(articles, report):
                embedding = embedder.submit(self.embed, batch)
                if in_flight:
                    bar.update(self.write(in_flight[0], in_flight[1].result()))
                in_flight = (batch, embedding)
            if in_flight:
                bar.update(self.write(in_flight[0], in_flight[1].result()))
                stored = True
        if stored:
            self.backend.flush()
        return report

    def plan(self, articles: Iterable[Article], report: IngestReport) -> Iterator[Batch]:
        """The batches (about ``batch_chunks`` chunks each) that `store` must write for these
        articles: unchanged ones are skipped, a later copy of a source replaces an earlier
        one. Each article's result goes into ``report`` once the articles are exhausted.

        Planning is apart from storing so that a cluster can chunk on one worker and embed
        on another (`qa.cluster`); here, a batch embeds while the next is planned.
        """
        existed: dict[str, bool] = {}  # stored before this run?
        planned: dict[str, str] = {}  # content hash this run stores, by article id
        results: dict[str, tuple[str, str, str]] = {}  # id -> (source, result, reason)
        pending: dict[str, tuple[Article, list[Chunk]]] = {}

        def release() -> Batch:
            batch = list(pending.values())
            pending.clear()
            for article, _ in batch:
                planned[article.id] = article.content_hash
                results[article.id] = (article.source,
                                       "updated" if existed[article.id] else "added", "")
            return batch

        for window in _windows(articles, LOOKAHEAD):
            stored = self.backend.content_hashes([a.id for a in window if a.id not in planned])
            for article in window:
                existed.setdefault(article.id, article.id in stored)
                pending.pop(article.id, None)  # an earlier copy not yet released
                if planned.get(article.id, stored.get(article.id)) == article.content_hash:
                    results.setdefault(article.id, (article.source, "unchanged", ""))
                    continue
                try:
                    chunks = self.chunk(article)
                except Exception as exc:  # noqa: BLE001 - one article never ends a batch
                    results[article.id] = (article.source, "failed",
                                           f"could not be chunked: {exc}")
                    continue
                if not chunks:
                    results[article.id] = (article.source, "failed", "no text to index")
                    continue
                pending[article.id] = (article, chunks)
                if sum(len(c) for _, c in pending.values()) >= self.batch_chunks:
                    yield release()
        if pending:
            yield release()
        for source, result, reason in results.values():
            if result == "failed":
                report.failed.append((source, reason))
            else:
                getattr(report, result).append(source)

    def store(self, batch: Batch) -> int:
        """Embed a batch and write it in one backend transaction; returns its chunk count."""
        return self.write(batch, self.embed(batch))

    def embed(self, batch: Batch) -> np.ndarray:
        return self.encoder.encode(
            [text for a, chunks in batch for text in self.passage_inputs(a, chunks)])

    def write(self, batch: Batch, vectors: np.ndarray) -> int:
        """Write an embedded batch in one backend transaction; returns its chunk count."""
        bounds = np.cumsum([0, *(len(chunks) for _, chunks in batch)])
        self.backend.replace_articles(
            [(a, chunks, vectors[bounds[i]:bounds[i + 1]]) for i, (a, chunks) in enumerate(batch)])
        return len(vectors)

    def chunk(self, article: Article) -> list[Chunk]:
        prefix = self._title_prefix(article.title)
        reserved = self.encoder.count_tokens([prefix])[0] + 1 if prefix else 0
        return chunk_text(article.text, self.encoder.count_tokens, self.encoder.token_windows,
                          self.chunking, reserved_tokens=reserved)

    def _title_prefix(self, title: str) -> str:
        if not self.embed_title or not title.strip():
            return ""
        return title[:self.encoder.token_windows(title, TITLE_TOKENS)[0][1]]

    def passage_inputs(self, article: Article, chunks: Sequence[Chunk]) -> list[str]:
        """What the encoder sees for each chunk: the headline gives every chunk its context."""
        prefix = self._title_prefix(article.title)
        return [f"{prefix}\n{chunk.text}" if prefix else chunk.text for chunk in chunks]
