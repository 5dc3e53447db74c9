"""Search: a question to its ``k`` best distinct passages, dense and lexical, fused.

Hybrid search (the default) fuses the backend's vector and lexical rankings by reciprocal
rank; copies of one passage collapse to one; an optional CrossEncoder re-orders the best.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from embeddings import Encoder
from qa.backends.base import Backend, Filters
from qa.optional_models import Reranker
from qa.results import Passage
from qa.retrieval import collapse_copies, query_terms, reciprocal_rank_fusion, weighted_fusion

MAX_QUESTION_CHARS = 2000
RETRIEVAL_MODES = ("hybrid", "hybrid-weighted", "dense", "bm25")
RERANK_DEPTH = 20  # passages a CrossEncoder re-orders (its score becomes the passage score)
# How much a conversation's context counts in a follow-up's search (chosen on QuAC's first 300
# dialogues, checked on the other 700; docs/BENCHMARKS.md "Follow-ups").
CONTEXT_WEIGHT = 0.5  # of the context's vector, added to the question's
SOURCE_PRIOR = 0.01  # fused-score bonus for a chunk of an article the conversation was about


@dataclass(frozen=True)
class SearchContext:
    """What a conversation has established, searched with a follow-up: the earlier turns'
    words (blended into the dense query, added to the lexical terms) and how often each
    article was the one the earlier turns read from (its chunks get a share of a bonus)."""

    text: str = ""
    sources: tuple[tuple[str, int], ...] = ()


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


@dataclass
class Searcher:
    backend: Backend
    encoder: Encoder
    mode: str = "hybrid"
    reranker: Reranker | None = None

    def search(self, question: str, k: int, filters: Filters | None = None,
               mode: str | None = None, context: SearchContext | None = None
               ) -> tuple[list[Passage], dict[str, float]]:
        """The ``k`` best distinct passages and how long each stage took (ms).

        ``mode`` is hybrid (dense + lexical, reciprocal rank fusion), hybrid-weighted, dense or
        bm25. Any depth is allowed (evaluation ranks 100 documents). ``context`` (a follow-up's
        conversation so far) joins both queries and favours the articles it was about.
        """
        question = check_question(question)
        mode = mode or self.mode
        if mode not in RETRIEVAL_MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}; choose from {RETRIEVAL_MODES}")
        self.backend.refresh()
        started = time.perf_counter()
        query, terms = self.encoder.encode_query(question), query_terms(question)
        searched_with = query
        if context and context.text:
            blended = query + CONTEXT_WEIGHT * self.encoder.encode_query(context.text)
            searched_with = blended / np.linalg.norm(blended)
            terms += [t for t in dict.fromkeys(query_terms(context.text)) if t not in terms]
        encoded = time.perf_counter()
        allowed = self.backend.chunk_ids(filters) if filters and filters.active else None
        depth = max(4 * k, 50)
        dense = (self.backend.vectors.search(searched_with[None], depth, allowed)[0]
                 if mode != "bm25" else [])
        lexical = (self.backend.lexical_search(terms, depth, allowed)
                   if mode != "dense" else [])
        if mode in ("dense", "bm25"):
            fused = dense or lexical
        elif mode == "hybrid-weighted":
            fused = weighted_fusion(dense, lexical)
        else:
            fused = reciprocal_rank_fusion([dense, lexical])
        rows = self.backend.chunks([chunk_id for chunk_id, _ in fused[:depth]])
        fused = [(cid, score) for cid, score in fused[:depth] if cid in rows]
        if context and context.sources:
            seen = dict(context.sources)
            total = sum(seen.values())
            fused = sorted(((cid, score + SOURCE_PRIOR * seen.get(rows[cid].source, 0) / total)
                            for cid, score in fused), key=lambda pair: -pair[1])
        kept = collapse_copies(fused, lambda cid: rows[cid].text,
                               max(k, RERANK_DEPTH) if self.reranker else k)
        if self.reranker:
            order = self.reranker.scores(question, [rows[cid].text for cid, _ in kept])
            kept = [(cid, float(score)) for (cid, _), score in
                    sorted(zip(kept, order, strict=True), key=lambda pair: -pair[1])][:k]
        cosines = self.backend.chunk_vectors([cid for cid, _ in kept]) @ query
        lexical_scores = dict(lexical)
        passages = [
            Passage(rank=rank, score=round(score, 4), text=rows[cid].text,
                    article_id=rows[cid].article_id, title=rows[cid].title,
                    source=rows[cid].source, start=rows[cid].start, end=rows[cid].end,
                    url=rows[cid].url, published=rows[cid].published, chunk_id=cid,
                    dense_score=round(float(cosine), 4),
                    bm25_score=round(lexical_scores.get(cid, 0.0), 4))
            for rank, ((cid, score), cosine) in enumerate(zip(kept, cosines, strict=True), 1)
        ]
        searched = time.perf_counter()
        return passages, {"encode": 1000 * (encoded - started),
                          "search": 1000 * (searched - encoded)}
