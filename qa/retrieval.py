"""Ranking arithmetic over (chunk id, score) lists: query terms, fusion, copies collapsed.

Plain functions, in the style of sentence-transformers' ``util.semantic_search``: the caller
owns the backend. Fusion returns new scores and never overwrites its inputs.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from qa.backends.base import Hit
from qa.words import STOP_WORDS

RRF_K = 60
_WORD = re.compile(r"\w+", re.UNICODE)


def query_terms(question: str) -> list[str]:
    """The question's content words, once each (all its words if it has only stop words)."""
    words = _WORD.findall(question.lower())
    return list(dict.fromkeys(w for w in words if w not in STOP_WORDS)) or list(
        dict.fromkeys(words))


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
