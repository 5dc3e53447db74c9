"""Candidate passages for a question: dense and BM25 neighbours, fused, copies collapsed.

Plain functions over ids and scores, in the style of sentence-transformers'
``util.semantic_search``: the caller owns the index and the store. Fusion returns new scores
and never overwrites the inputs, which the confidence still needs.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

import faiss
import numpy as np

from embeddings import VectorIndex
from qa.words import STOP_WORDS

Hit = tuple[int, float]
RRF_K = 60
_WORD = re.compile(r"\w+", re.UNICODE)


def dense_candidates(index: VectorIndex, query: np.ndarray, n: int,
                     allowed: Sequence[int] | None = None) -> list[Hit]:
    """The ``n`` chunks nearest to the query vector, best first, as (chunk id, cosine)."""
    if allowed is not None:
        if not len(allowed):
            return []
        selector = faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
        scores, ids = index.search(query, n, faiss.SearchParameters(sel=selector))
    else:
        scores, ids = index.search(query, n)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]


def lexical_query(question: str) -> str | None:
    """An FTS5 MATCH expression: the question's content words, any of them (BM25 ranks)."""
    words = [w for w in _WORD.findall(question.lower()) if w not in STOP_WORDS]
    words = list(dict.fromkeys(words)) or list(dict.fromkeys(_WORD.findall(question.lower())))
    return " OR ".join(f'"{w}"' for w in words) or None


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Hit]], k: int = RRF_K) -> list[Hit]:
    """Sum of 1 / (k + rank) over the rankings each id appears in, best first."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (chunk_id, _) in enumerate(ranking, 1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda item: -item[1])


def weighted_fusion(dense: Sequence[Hit], lexical: Sequence[Hit], alpha: float = 0.5
                    ) -> list[Hit]:
    """``alpha`` x min-max-normalised dense score + (1 - ``alpha``) x normalised BM25 score."""
    def normalised(hits: Sequence[Hit]) -> dict[int, float]:
        if not hits:
            return {}
        scores = np.array([s for _, s in hits])
        span = float(scores.max() - scores.min()) or 1.0
        return {cid: (s - float(scores.min())) / span for cid, s in hits}

    d, b = normalised(dense), normalised(lexical)
    fused = {cid: alpha * d.get(cid, 0.0) + (1 - alpha) * b.get(cid, 0.0) for cid in {*d, *b}}
    return sorted(fused.items(), key=lambda item: -item[1])


def _shingles(text: str, size: int = 4) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i:i + size]) for i in range(max(1, len(words) - size + 1))}


def collapse_copies(hits: Sequence[Hit], text_of: Callable[[int], str], k: int,
                    threshold: float = 0.8) -> list[Hit]:
    """The first ``k`` hits that are not copies of an earlier one.

    A copy is a passage whose word 4-grams overlap an earlier kept passage's by ``threshold``
    (Jaccard) or more: the same wire story under two sources, lightly edited, counts once.
    Scores are kept as they are.
    """
    kept: list[Hit] = []
    sizes: list[int] = []
    postings: dict[tuple[str, ...], list[int]] = {}  # 4-gram -> kept passages holding it
    for chunk_id, score in hits:
        grams = _shingles(text_of(chunk_id))
        shared = Counter(i for gram in grams for i in postings.get(gram, ()))
        if any(n / (len(grams) + sizes[i] - n) >= threshold for i, n in shared.items()):
            continue
        for gram in grams:
            postings.setdefault(gram, []).append(len(kept))
        kept.append((chunk_id, score))
        sizes.append(len(grams))
        if len(kept) == k:
            break
    return kept
