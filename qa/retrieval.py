"""Candidate passages for a question: dense nearest neighbours, copies collapsed.

Plain functions over ids and scores, in the style of sentence-transformers'
``util.semantic_search``: the caller owns the index and the store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from embeddings import VectorIndex

Hit = tuple[int, float]


def dense_candidates(index: VectorIndex, query: np.ndarray, n: int) -> list[Hit]:
    """The ``n`` chunks nearest to the query vector, best first, as (chunk id, cosine)."""
    scores, ids = index.search(query, n)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]


def collapse_copies(hits: Sequence[Hit], key: Callable[[int], str], k: int) -> list[Hit]:
    """The first ``k`` hits whose ``key`` (e.g. normalised text hash) was not seen before.

    Input scores are kept as they are; only later copies of the same passage drop out, so a
    story syndicated under two sources counts once.
    """
    seen: set[str] = set()
    kept: list[Hit] = []
    for chunk_id, score in hits:
        if (mark := key(chunk_id)) not in seen:
            seen.add(mark)
            kept.append((chunk_id, score))
            if len(kept) == k:
                break
    return kept
