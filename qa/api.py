"""The `ArticleQA` facade: an index folder you add articles to and ask questions of.

An index folder holds ``manifest.json`` (what built it), ``articles.sqlite3`` (articles,
chunks, vectors; the source of truth) and ``vectors-<generation>.faiss`` (the search cache,
rebuilt from SQLite whenever it lags behind, e.g. after an ingest was killed).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from embeddings import Encoder, VectorIndex
from qa.articles import MAX_BYTES, Article, Refused, iter_articles, source_id
from qa.chunking import Chunk, ChunkSettings, chunk_text
from qa.manifest import TEXT_ONLY, TITLE_AND_TEXT, IndexMismatch, Manifest
from qa.optional_models import Reranker
from qa.reader import NeuralReader, Reader, load_reader
from qa.retrieval import (
    collapse_copies,
    dense_candidates,
    lexical_query,
    reciprocal_rank_fusion,
    weighted_fusion,
)
from qa.store import Store

INDEX_ENV = "ARTICLEQA_INDEX"
DEFAULT_INDEX = "articleqa-index"
STORE_FILE = "articles.sqlite3"
MAX_QUESTION_CHARS = 2000
MAX_K = 100
BATCH_CHUNKS = 1024
TITLE_TOKENS = 32
READ_PASSAGES = 5  # the reader looks for the answer in this many top passages
RERANK_DEPTH = 20  # passages a CrossEncoder re-orders (its score becomes the passage score)


def index_folder(path: str | Path | None = None) -> Path:
    """``path``, else ``$ARTICLEQA_INDEX``, else ``./articleqa-index``."""
    return Path(path or os.environ.get(INDEX_ENV) or DEFAULT_INDEX)


RETRIEVAL_MODES = ("hybrid", "hybrid-weighted", "dense", "bm25")


@dataclass(frozen=True)
class Filters:
    """Only articles from these sources (ids or sources), published within [since, until]."""

    sources: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.sources or self.since or self.until)

    def as_args(self) -> tuple:
        for day in (self.since, self.until):
            if day is not None and not re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?", day):
                raise ValueError(f"dates are YYYY[-MM[-DD]], got {day!r}")
        return self.sources, self.since, self.until


@dataclass
class Passage:
    rank: int
    score: float
    text: str
    article_id: str
    title: str
    source: str
    start: int
    end: int
    url: str | None = None
    published: str | None = None
    chunk_id: int = 0
    dense_score: float = 0.0  # cosine of question and passage
    bm25_score: float = 0.0  # 0 when BM25 did not retrieve it
    answer_span: tuple[int, int] | None = None  # offsets of the answer inside ``text``


@dataclass
class Answer:
    question: str
    text: str | None  # None: no answer (confidence below the reader's threshold)
    confidence: float
    passages: list[Passage]
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage
    candidates: list[tuple[str, float]] = field(default_factory=list)  # spans the reader weighed

    def to_dict(self) -> dict:
        """The `articleqa ask --json` contract."""
        keys = ("rank", "score", "text", "article_id", "title", "source", "start", "end")
        return {
            "answer": self.text,
            "confidence": self.confidence,
            "passages": [{key: getattr(p, key) for key in keys} for p in self.passages],
        }


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict:
        return asdict(self)


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


class ArticleQA:
    """Open or create the index in ``path``; pass ``encoder`` to share one loaded model.

    ``embed_title`` (default on) embeds each chunk with its article's headline for context.
    ``threshold`` is the reader's confidence below which it answers "no answer" (by default
    the one fitted with the reader's weights).
    ``reranker`` (a CrossEncoder name or folder) re-orders the best passages; ``qa_model`` (a
    `train-reader` output folder, a transformers extractive-QA name or folder, or any `Reader`)
    replaces the built-in neural reader. Both are optional and loaded offline only: a missing
    one is an error that says how to add it. The reader loads on the first question, so ingest
    never pays for it.
    ``retrieval`` is the default search mode (see `search`).
    ``batch_chunks`` is how many chunks are embedded and committed together: larger batches
    encode a little faster, smaller ones lose less work when an ingest is interrupted.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        model: str | None = None,
        chunking: ChunkSettings | None = None,
        embed_title: bool | None = None,
        encoder: Encoder | None = None,
        batch_chunks: int = BATCH_CHUNKS,
        retrieval: str = "hybrid",
        threshold: float | None = None,
        reranker: str | Reranker | None = None,
        qa_model: str | Reader | None = None,
    ):
        self.folder = index_folder(path)
        self.batch_chunks = batch_chunks
        self.retrieval = retrieval
        self.reranker = Reranker(reranker) if isinstance(reranker, str) else reranker
        self._reader = load_reader(qa_model, threshold) if isinstance(qa_model, str) else qa_model
        if self._reader is not None and threshold is not None:
            self._reader.threshold = threshold
        self.threshold = threshold
        if self.folder.exists() and not self.folder.is_dir():
            raise IndexMismatch(f"{self.folder} is a file, not an index folder")
        existing = Manifest.read(self.folder)
        if existing is None and self.folder.is_dir() and any(self.folder.iterdir()):
            raise IndexMismatch(
                f"{self.folder} is not empty and holds no ArticleQA index (no manifest.json); "
                "choose another --index folder")
        self.encoder = encoder or Encoder(model or (existing.model if existing else None))
        if chunking is None:
            chunking = (ChunkSettings(**existing.chunking) if existing
                        else ChunkSettings(max_tokens=self.encoder.max_tokens))
        self.chunking = chunking
        if embed_title is None:
            embed_title = existing is None or existing.passage_format == TITLE_AND_TEXT
        self.embed_title = embed_title
        self.manifest = Manifest(
            model=self.encoder.name, model_sha256=self.encoder.checksum,
            dimension=self.encoder.dimension, chunking=chunking.as_dict(),
            passage_format=TITLE_AND_TEXT if embed_title else TEXT_ONLY,
        )
        if existing:
            existing.check(self.manifest, self.folder)
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.manifest.write(self.folder)
        self.store = Store(self.folder / STORE_FILE)
        if existing and existing.schema_version != self.manifest.schema_version:
            self.manifest.write(self.folder)  # the store upgraded itself in place
        self._load_vectors()

    # --- the vector cache -------------------------------------------------------------

    def _vector_files(self) -> list[Path]:
        return sorted(self.folder.glob("vectors-*.faiss"))

    def _vector_file(self, generation: int) -> Path:
        return self.folder / f"vectors-{generation:010d}.faiss"

    def _load_vectors(self) -> None:
        """Load the FAISS cache for the store's generation, patching it from SQLite if stale."""
        self.generation = self.store.generation
        current = self._vector_file(self.generation)
        files = self._vector_files()
        if current in files:
            self.vectors = VectorIndex.load(current)
            return
        self.vectors = (VectorIndex.load(files[-1]) if files
                        else VectorIndex(self.manifest.dimension))
        stored, cached = self.store.chunk_ids(), self.vectors.ids()
        self.vectors.remove(np.setdiff1d(cached, stored))
        missing = np.setdiff1d(stored, cached)
        for start in range(0, len(missing), 10_000):
            part = missing[start:start + 10_000]
            self.vectors.add(part, self.store.vectors(part, self.manifest.dimension))
        self._save_vectors()

    def _save_vectors(self) -> None:
        self.generation = self.store.generation
        self.vectors.save(self._vector_file(self.generation))
        for old in self._vector_files():
            if old != self._vector_file(self.generation):
                old.unlink(missing_ok=True)

    def _refresh(self) -> None:
        """Pick up changes another process committed (e.g. a CLI ingest beside the chat)."""
        if self.store.generation != self.generation:
            self._load_vectors()

    # --- ingest -------------------------------------------------------------------------

    def add(self, inputs: str | Path | Iterable[str | Path], progress: bool = True,
            max_bytes: int = MAX_BYTES) -> IngestReport:
        """Load, clean, chunk, embed and store files, folders and URLs; report each one."""
        if isinstance(inputs, str | Path):
            inputs = [inputs]
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
        """Store articles: unchanged ones are skipped, edited ones replace their old chunks.

        Each batch of about ``batch_chunks`` chunks is one transaction: a killed ingest keeps
        the batches before it and loses the one in flight, never part of an article.
        """
        report = report or IngestReport()
        latest = {article.id: article for article in articles}  # the last copy of a source wins
        known = self.store.content_hashes(list(latest))
        todo: list[tuple[Article, list[Chunk]]] = []
        for article in latest.values():
            if known.get(article.id) == article.content_hash:
                report.unchanged.append(article.source)
            elif chunks := self.chunk(article):
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
                removed, added = self.store.replace_articles(
                    (a, chunks, vectors[bounds[i]:bounds[i + 1]])
                    for i, (a, chunks) in enumerate(batch))
                self.vectors.remove(np.asarray(removed, np.int64))
                self.vectors.add(np.asarray(added, np.int64), vectors)
                for article, _ in batch:
                    (report.updated if article.id in known else report.added).append(
                        article.source)
                bar.update(len(inputs))
        if todo:
            self._save_vectors()
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

    # --- questions ------------------------------------------------------------------------

    def search(self, question: str, k: int, filters: Filters | None = None,
               mode: str | None = None) -> tuple[list[Passage], dict[str, float]]:
        """The ``k`` best distinct passages and how long each stage took (ms).

        ``mode`` is hybrid (dense + BM25, reciprocal rank fusion; the default), hybrid-weighted,
        dense or bm25. Any depth is allowed (evaluation ranks 100 documents); `ask` is the
        bounded public form.
        """
        question = check_question(question)
        mode = mode or self.retrieval
        if mode not in RETRIEVAL_MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}; choose from {RETRIEVAL_MODES}")
        self._refresh()
        started = time.perf_counter()
        query = self.encoder.encode_query(question)
        encoded = time.perf_counter()
        allowed = self.store.chunk_ids_where(*filters.as_args()) if filters else None
        depth = max(4 * k, 50)
        dense = dense_candidates(self.vectors, query, depth, allowed) if mode != "bm25" else []
        match = lexical_query(question)
        lexical = self.store.bm25(match, depth, allowed) if mode != "dense" and match else []
        if mode == "dense" or mode == "bm25":
            fused = dense or lexical
        elif mode == "hybrid-weighted":
            fused = weighted_fusion(dense, lexical)
        else:
            fused = reciprocal_rank_fusion([dense, lexical])
        rows = self.store.chunks([chunk_id for chunk_id, _ in fused[:depth]])
        fused = [(cid, score) for cid, score in fused[:depth] if cid in rows]
        kept = collapse_copies(fused, lambda cid: rows[cid].text,
                               max(k, RERANK_DEPTH) if self.reranker else k)
        if self.reranker:
            order = self.reranker.scores(question, [rows[cid].text for cid, _ in kept])
            kept = [(cid, float(score)) for (cid, _), score in
                    sorted(zip(kept, order, strict=True), key=lambda pair: -pair[1])][:k]
        bm25_scores = dict(lexical)
        passages = [
            Passage(rank=rank, score=round(score, 4), text=rows[cid].text,
                    article_id=rows[cid].article_id, title=rows[cid].title,
                    source=rows[cid].source, start=rows[cid].start, end=rows[cid].end,
                    url=rows[cid].url, published=rows[cid].published, chunk_id=cid,
                    dense_score=round(float(self.vectors.vector(cid) @ query), 4),
                    bm25_score=round(bm25_scores.get(cid, 0.0), 4))
            for rank, (cid, score) in enumerate(kept, 1)
        ]
        searched = time.perf_counter()
        return passages, {"encode": 1000 * (encoded - started),
                          "search": 1000 * (searched - encoded)}

    def ask(self, question: str, k: int = 5, sources: Sequence[str] = (),
            since: str | None = None, until: str | None = None) -> Answer:
        """Ranked, cited passages and the answer span, or "no answer" (``text`` None).

        ``sources`` (ids or parts of sources) and ISO ``since`` / ``until`` (inclusive) limit
        which articles are searched.
        """
        question = check_question(question)
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")
        filters = Filters(tuple(sources), since, until)
        passages, timings = self.search(question, k, filters if filters.active else None)
        started = time.perf_counter()
        reading = self.reader.read(question, passages[:READ_PASSAGES])
        if reading.passage is not None:
            passage = passages[reading.passage]
            passage.answer_span = (reading.start - passage.start, reading.end - passage.start)
            passages.insert(0, passages.pop(reading.passage))  # the reader re-ranks: its
            for rank, p in enumerate(passages, 1):  # evidence goes first
                p.rank = rank
        timings["read"] = 1000 * (time.perf_counter() - started)
        return Answer(question=question, text=reading.text,
                      confidence=round(reading.confidence, 4), passages=passages,
                      timings=timings, candidates=list(reading.candidates))

    @property
    def reader(self) -> Reader:
        """The reader answering questions: a `qa_model` if one was given, else ours."""
        if self._reader is None:
            self._reader = NeuralReader(threshold=self.threshold)
        return self._reader

    # --- library --------------------------------------------------------------------------

    def remove(self, article_id: str) -> bool:
        """Delete an article (by id or by source) with its chunks and vectors."""
        for candidate in (article_id, source_id(article_id)):
            if self.store.articles(candidate):
                self.vectors.remove(np.asarray(self.store.remove_article(candidate), np.int64))
                self._save_vectors()
                return True
        return False

    def articles(self) -> list:
        return self.store.articles()

    def article(self, article_id: str):
        found = self.store.articles(article_id)
        return found[0] if found else None

    def __len__(self) -> int:
        return self.store.count_articles()

    def info(self) -> dict:
        size = sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())
        return {
            "index": str(self.folder),
            **asdict(self.manifest),
            "articles": len(self),
            "chunks": self.store.count_chunks(),
            "vectors": len(self.vectors),
            "bytes_on_disk": size,
        }

    def close(self) -> None:
        self.store.close()


def check_question(question: object) -> str:
    """A question must be non-empty text of reasonable length; say which rule failed."""
    if not isinstance(question, str):
        raise TypeError(f"question must be a string, got {type(question).__name__}")
    question = " ".join(question.split())
    if not question:
        raise ValueError("question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise ValueError(
            f"question is {len(question):,} characters; the limit is {MAX_QUESTION_CHARS:,}. "
            "Ask about one thing at a time.")
    return question
