"""The `ArticleQA` facade: an index you add articles to and ask questions of.

It only wires the stages together: `qa.backends` (where the index lives: a folder, or a
PostgreSQL database), `qa.ingest` (articles in), `qa.search` (passages out) and `qa.reader`
(the answer in them). Results and their JSON form are in `qa.results`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from embeddings import Encoder
from qa.articles import MAX_BYTES, Article, source_id
from qa.backends import DEFAULT_INDEX, INDEX_ENV, Filters, files_folder, open_backend
from qa.backends.base import ArticleRow
from qa.backends.manifest import TEXT_ONLY, TITLE_AND_TEXT, Manifest
from qa.chunking import Chunk, ChunkSettings
from qa.ingest import BATCH_CHUNKS, Ingester
from qa.optional_models import Reranker
from qa.reader import NeuralReader, Reader, load_reader
from qa.results import Answer, IngestReport, Passage
from qa.search import SearchContext, Searcher, check_question

if TYPE_CHECKING:
    from qa.conversation import Chat

MAX_K = 100
READ_PASSAGES = 5  # the reader looks for the answer in this many top passages

__all__ = ["DEFAULT_INDEX", "INDEX_ENV", "MAX_K", "Answer", "ArticleQA", "IngestReport",
           "Passage", "check_question"]


class ArticleQA:
    """Open or create the index at ``path``: a folder (embedded SQLite + FAISS, the default)
    or a ``postgresql://`` URL (a PostgreSQL + pgvector server several processes share).
    Without ``path``, ``$ARTICLEQA_INDEX``, else ``./articleqa-index``.

    ``encoder`` shares one loaded model; ``embed_title`` (default on) embeds each chunk with
    its article's headline. ``threshold`` is the reader's confidence below which it answers
    "no answer" (by default the one fitted with the reader's weights). ``reranker`` (a
    CrossEncoder name or folder) re-orders the best passages; ``qa_model`` (a `train-reader`
    output folder, a transformers extractive-QA name or folder, or any `Reader`) replaces the
    built-in reader. Both are loaded offline only: a missing one is an error that says how to
    add it. The reader loads on the first question, so ingest never pays for it.
    ``retrieval`` is the default search mode; ``batch_chunks`` how many chunks are embedded
    and committed together (smaller batches lose less work when an ingest is interrupted).
    ``encoder_backend`` ("torch" or "onnx", see `Encoder`) embeds a new index; an existing
    one opens with the backend that embedded it, and refuses the other.
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
        encoder_backend: str | None = None,
    ):
        self.backend = open_backend(path)
        self.location = self.backend.location
        self.files = files_folder(self.location)  # chat uploads are copied here
        existing = self.backend.read_manifest()
        self.encoder = encoder or Encoder(
            model or (existing.model if existing else None),
            backend=encoder_backend or (existing.encoder_backend if existing else None))
        if chunking is None:
            chunking = (ChunkSettings(**existing.chunking) if existing
                        else ChunkSettings(max_tokens=self.encoder.max_tokens))
        if embed_title is None:
            embed_title = existing is None or existing.passage_format == TITLE_AND_TEXT
        self.manifest = Manifest(
            backend=self.backend.kind, schema_version=self.backend.schema_version,
            model=self.encoder.name, model_sha256=self.encoder.checksum,
            dimension=self.encoder.dimension, chunking=chunking.as_dict(),
            passage_format=TITLE_AND_TEXT if embed_title else TEXT_ONLY,
            encoder_backend=self.encoder.backend)
        self.backend.open(self.manifest)  # refuses an index built any other way
        self.ingester = Ingester(self.backend, self.encoder, chunking, embed_title, batch_chunks)
        reranker = Reranker(reranker) if isinstance(reranker, str) else reranker
        self.searcher = Searcher(self.backend, self.encoder, retrieval, reranker)
        self._reader = load_reader(qa_model, threshold) if isinstance(qa_model, str) else qa_model
        if self._reader is not None and threshold is not None:
            self._reader.threshold = threshold
        self.threshold = threshold

    # --- ingest -------------------------------------------------------------------------

    def add(self, inputs: str | Path | Iterable[str | Path], progress: bool = True,
            max_bytes: int = MAX_BYTES, cluster: str | None = None,
            workers: int | None = None) -> IngestReport:
        """Load, clean, chunk, embed and store files, folders and URLs; report each one.

        ``cluster`` (``"local"`` or a Dask scheduler address; PostgreSQL indexes only) spreads
        the work over that cluster's workers (`qa.cluster`); ``workers`` sizes a local one.
        """
        inputs = [inputs] if isinstance(inputs, str | Path) else inputs
        if workers is not None and cluster != "local":
            raise ValueError("--workers is for --cluster local (a running cluster has its own)")
        if cluster:
            from qa import cluster as on_cluster  # needs the [cluster] extra

            return on_cluster.add(self, inputs, cluster, workers, progress, max_bytes)
        return self.ingester.add(inputs, progress, max_bytes)

    def add_articles(self, articles: Iterable[Article], progress: bool = True,
                     report: IngestReport | None = None) -> IngestReport:
        """Store articles: unchanged ones are skipped, edited ones replace their old chunks."""
        return self.ingester.add_articles(articles, progress, report)

    def chunk(self, article: Article) -> list[Chunk]:
        return self.ingester.chunk(article)

    # --- questions ------------------------------------------------------------------------

    def search(self, question: str, k: int, filters: Filters | None = None,
               mode: str | None = None, context: SearchContext | None = None
               ) -> tuple[list[Passage], dict[str, float]]:
        """The ``k`` best distinct passages and each stage's time (ms); see `Searcher`."""
        return self.searcher.search(question, k, filters, mode, context)

    def ask(self, question: str, k: int = 5, sources: Sequence[str] = (),
            since: str | None = None, until: str | None = None,
            context: SearchContext | None = None) -> Answer:
        """Ranked, cited passages and the answer span, or "no answer" (``text`` None).

        ``sources`` (ids or parts of sources) and ISO ``since`` / ``until`` (inclusive) limit
        which articles are searched; ``context`` is a follow-up's conversation so far
        (`kb.conversation()` passes it).
        """
        question = check_question(question)
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")
        passages, timings = self.search(question, k, Filters(tuple(sources), since, until),
                                        context=context)
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

    def conversation(self, history: Iterable[dict] = ()) -> Chat:
        """Follow-up questions: ``chat = kb.conversation()``, then each
        ``resolution, answer = chat.ask(question, k=5, sources=..., since=..., until=...)``
        resolves the question against the turns so far ("where was he speaking?" -> "where
        was John Kerry speaking?", listed in ``resolution.changes``), asks it and records the
        turn. ``history`` (``[{"question", "answer"}]``, at most 20) continues a conversation
        held elsewhere."""
        from qa.conversation import Chat

        return Chat(self, history)

    @property
    def reader(self) -> Reader:
        """The reader answering questions: a `qa_model` if one was given, else ours."""
        if self._reader is None:
            self._reader = NeuralReader(threshold=self.threshold)
        return self._reader

    # --- library --------------------------------------------------------------------------

    def remove(self, article_id: str) -> bool:
        """Delete an article (by id or by source) with its chunks and vectors."""
        removed = any(self.backend.remove_article(candidate)
                      for candidate in (article_id, source_id(article_id)))
        self.backend.flush()
        return removed

    def articles(self) -> list[ArticleRow]:
        return self.backend.articles()

    def article(self, article_id: str) -> ArticleRow | None:
        found = self.backend.articles(article_id)
        return found[0] if found else None

    def __len__(self) -> int:
        return self.backend.count_articles()

    def info(self) -> dict:
        self.backend.refresh()
        return {
            "index": self.location,
            **asdict(self.manifest),
            "articles": len(self),
            "chunks": self.backend.count_chunks(),
            "vectors": len(self.backend.vectors),
            "bytes_on_disk": self.backend.size_bytes(),
        }

    def close(self) -> None:
        self.backend.close()
