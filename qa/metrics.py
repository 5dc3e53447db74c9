"""Retrieval and answer metrics, each defined as its field defines it, so numbers compare.

nDCG, recall and MRR follow trec_eval / pytrec_eval as BEIR runs them (linear gains, ideal DCG
over all judged-relevant documents, a document counted once). EM and F1 follow the official
SQuAD v2 script (lower-case, strip punctuation and articles, max over gold answers; an
unanswerable question is right only when the prediction is "no answer").
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def _unique(ranked: Sequence[str]) -> list[str]:
    """First occurrence of each id: a document retrieved twice counts once."""
    return list(dict.fromkeys(ranked))


def ndcg_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    gains = [qrels.get(doc, 0) for doc in _unique(ranked)[:k]]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains) if g > 0)
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int = 100) -> float:
    relevant = {doc for doc, grade in qrels.items() if grade > 0}
    if not relevant:
        return 0.0
    return len(relevant & set(_unique(ranked)[:k])) / len(relevant)


def reciprocal_rank(ranked: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    for rank, doc in enumerate(_unique(ranked)[:k], 1):
        if qrels.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def hit_at_k(hits: Sequence[bool], k: int) -> float:
    """1.0 when any of the first ``k`` results is a hit."""
    return float(any(hits[:k]))


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    """Whether ``text`` holds one of ``answers`` as whole words, both normalised."""
    norm = f" {normalize_answer(text)} "
    return any(f" {normalize_answer(a)} " in norm for a in answers if normalize_answer(a))


def _f1(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str | None, golds: Sequence[str]) -> float:
    """Max over gold answers; no golds means unanswerable, right only for no prediction."""
    if not golds:
        return float(not prediction)
    return max(float(normalize_answer(prediction or "") == normalize_answer(g)) for g in golds)


def f1_score(prediction: str | None, golds: Sequence[str]) -> float:
    if not golds:
        return float(not prediction)
    return max(_f1(prediction or "", g) for g in golds)


def mean_of(values: Iterable[float | bool | None]) -> float | None:
    """The mean of the values that were measured (None: not applicable to that row)."""
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def percentiles(values: Sequence[float], points: Sequence[int] = (50, 95, 99)) -> dict[str, float]:
    if not values:
        return {f"p{p}": float("nan") for p in points}
    return {f"p{p}": float(np.percentile(values, p)) for p in points}
