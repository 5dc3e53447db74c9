"""Ingest: load, clean, chunk, embed and store articles, batch by batch, reporting each one.

Each batch of about ``batch_chunks`` chunks is one backend transaction: a killed ingest keeps
the batches before it and loses the one in flight, never part of an article.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
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
TITLE_TOKENS = 32  # at most this much of a headline is embedded with each chunk


def _batches(items: Sequence[tuple[Article, list[Chunk]]], size: int
             ) -> Iterator[list[tuple[Article, list[Chunk]]]]:
    batch, count = [], 0
    for item in items:
        batch.append(item)
        count += len(item[1])
        if count >= size:
            yield batch
            batch, count = [], 0
    if batch:
        yield batch


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
        articles = []
        for item in tqdm(iter_articles(inputs, max_bytes), desc="Reading", unit=" article",
                         disable=not progress):
            if isinstance(item, Refused):
                report.failed.append((item.source, item.reason))
            else:
                articles.append(item)
                report.notes.extend((item.source, note) for note in item.notes)
        return self.add_articles(articles, progress=progress, report=report)

    def add_articles(self, articles: Iterable[Article], progress: bool = True,
                     report: IngestReport | None = None) -> IngestReport:
        """Unchanged articles are skipped, edited ones replace their old chunks."""
        report = report or IngestReport()
        latest = {article.id: article for article in articles}  # the last copy of a source wins
        known = self.backend.content_hashes(list(latest))
        todo: list[tuple[Article, list[Chunk]]] = []
        for article in latest.values():
            if known.get(article.id) == article.content_hash:
                report.unchanged.append(article.source)
                continue
            try:
                chunks = self.chunk(article)
            except Exception as exc:  # noqa: BLE001 - one article's failure never ends a batch
                report.failed.append((article.source, f"could not be chunked: {exc}"))
                continue
            if chunks:
                todo.append((article, chunks))
            else:
                report.failed.append((article.source, "no text to index"))
        total = sum(len(chunks) for _, chunks in todo)
        with tqdm(total=total, desc="Embedding", unit=" chunk",
                  disable=not (progress and total)) as bar:  # no bar for nothing to do
            for batch in _batches(todo, self.batch_chunks):
                inputs = [text for a, chunks in batch for text in self.passage_inputs(a, chunks)]
                vectors = self.encoder.encode(inputs)
                bounds = np.cumsum([0, *(len(chunks) for _, chunks in batch)])
                self.backend.replace_articles(
                    [(a, chunks, vectors[bounds[i]:bounds[i + 1]])
                     for i, (a, chunks) in enumerate(batch)])
                for article, _ in batch:
                    (report.updated if article.id in known else report.added).append(
                        article.source)
                bar.update(len(inputs))
        if todo:
            self.backend.flush()
        return report

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
