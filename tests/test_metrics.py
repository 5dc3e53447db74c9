"""Metric functions on tiny cases worked out by hand, and against the references they follow.

Retrieval metrics are checked against pytrec_eval (trec_eval, as BEIR runs it); EM and F1 against
the official SQuAD v2.0 evaluation script's own functions, copied verbatim below.
"""

from __future__ import annotations

import collections
import math
import random
import re
import string

import numpy as np
import pytest

from qa.metrics import (
    exact_match,
    f1_score,
    hit_at_k,
    ndcg_at_k,
    normalize_answer,
    percentiles,
    recall_at_k,
    reciprocal_rank,
)

L3 = math.log2(3)  # discount at rank 2
L4 = math.log2(4)  # discount at rank 3 (= 2)
L5 = math.log2(5)  # discount at rank 4

# --------------------------------------------------------------------------------------------
# nDCG
# --------------------------------------------------------------------------------------------


def test_ndcg_graded_linear_gains():
    # ranked d3 (g0), d1 (g1), d2 (g2); linear gains (trec_eval), discount log2(rank + 1):
    #   DCG  = 0/log2(2) + 1/log2(3) + 2/log2(4) = 0.6309 + 1.0       = 1.6309
    #   IDCG = 2/log2(2) + 1/log2(3)             = 2.0    + 0.6309    = 2.6309
    #   nDCG = 1.6309 / 2.6309                                        = 0.6199
    expected = (1 / L3 + 2 / L4) / (2 + 1 / L3)
    got = ndcg_at_k(["d3", "d1", "d2"], {"d1": 1, "d2": 2})
    assert got == pytest.approx(expected, abs=1e-12)
    assert got == pytest.approx(0.61990, abs=1e-5)


def test_ndcg_gains_are_linear_not_exponential():
    # one doc of grade 3 at rank 2, one of grade 1 at rank 1.
    #   linear:      DCG = 1 + 3/log2(3), IDCG = 3 + 1/log2(3)
    #   exponential: DCG = 1 + 7/log2(3), IDCG = 7 + 1/log2(3)  (what we must NOT compute)
    linear = (1 + 3 / L3) / (3 + 1 / L3)
    exponential = (1 + 7 / L3) / (7 + 1 / L3)
    assert linear != pytest.approx(exponential, abs=1e-3)
    assert ndcg_at_k(["a", "b"], {"a": 1, "b": 3}) == pytest.approx(linear, abs=1e-12)


def test_ndcg_perfect_ranking_is_one():
    assert ndcg_at_k(["d2", "d1", "x"], {"d1": 1, "d2": 2}) == pytest.approx(1.0)


def test_ndcg_unretrieved_relevant_doc_counts_in_ideal():
    # LlamaIndex #17070 trap: the ideal DCG is over ALL judged-relevant docs, not just those
    # that were retrieved. ranked d1, x; qrels d1=1, d2=1 (d2 never retrieved).
    #   DCG  = 1/log2(2)                 = 1
    #   IDCG = 1/log2(2) + 1/log2(3)     = 1.6309   (right: d1 and d2)
    #   IDCG over retrieved relevant ids = 1        (wrong: would give nDCG = 1.0)
    #   nDCG = 1 / 1.6309 = 0.6131
    got = ndcg_at_k(["d1", "x"], {"d1": 1, "d2": 1})
    assert got == pytest.approx(1 / (1 + 1 / L3), abs=1e-12)
    assert got == pytest.approx(0.61315, abs=1e-5)
    assert got < 0.99  # the trap would report a perfect score


def test_ndcg_duplicate_doc_counted_once():
    # ranked x, d1, d1; qrels d1=1, d2=1. Keep the first d1 only -> ranking x, d1.
    #   DCG  = 1/log2(3)                       = 0.6309
    #   IDCG = 1 + 1/log2(3)                   = 1.6309
    #   nDCG = 0.3869
    # Counting d1 twice would give DCG = 1/log2(3) + 1/log2(4) = 1.1309 -> 0.6934.
    got = ndcg_at_k(["x", "d1", "d1"], {"d1": 1, "d2": 1})
    assert got == pytest.approx((1 / L3) / (1 + 1 / L3), abs=1e-12)
    assert got == pytest.approx(0.38685, abs=1e-5)


def test_ndcg_duplicates_never_exceed_one():
    # d1 repeated at every rank: counted twice or more, DCG would exceed IDCG = 1.
    assert ndcg_at_k(["d1", "d1", "d1"], {"d1": 1}) == pytest.approx(1.0)


def test_ndcg_duplicate_does_not_take_a_slot_in_the_cut():
    # ranked d1, d1, d2 with k=2: after de-duplication the top 2 are d1, d2.
    #   DCG = 1 + 1/log2(3) = IDCG -> 1.0
    assert ndcg_at_k(["d1", "d1", "d2"], {"d1": 1, "d2": 1}, k=2) == pytest.approx(1.0)


def test_ndcg_grade_zero_entries_are_not_relevant():
    # qrels d1=0, d2=1: d1 is judged but non-relevant and contributes neither to DCG nor IDCG.
    #   ranked d1, d2: DCG = 0 + 1/log2(3), IDCG = 1  -> 0.6309
    got = ndcg_at_k(["d1", "d2"], {"d1": 0, "d2": 1})
    assert got == pytest.approx(1 / L3, abs=1e-12)
    # all-zero qrels: no relevant docs -> 0
    assert ndcg_at_k(["d1", "d2"], {"d1": 0, "d2": 0}) == 0.0


def test_ndcg_empty_cases():
    assert ndcg_at_k(["d1", "d2"], {}) == 0.0
    assert ndcg_at_k([], {"d1": 1}) == 0.0
    assert ndcg_at_k([], {}) == 0.0


def test_ndcg_cut_at_k_both_sides():
    # 3 relevant docs of grade 1, k = 2.
    # ranked a, x, b, c: DCG@2 = 1 (b at rank 3 is past the cut)
    # IDCG@2 = 1 + 1/log2(3) (ideal list is cut at 2 too, so c's grade doesn't enter)
    qrels = {"a": 1, "b": 1, "c": 1}
    assert ndcg_at_k(["a", "x", "b", "c"], qrels, k=2) == pytest.approx(1 / (1 + 1 / L3))
    # a, b in the top 2 is a perfect nDCG@2 even though c is missed
    assert ndcg_at_k(["a", "b", "x"], qrels, k=2) == pytest.approx(1.0)


def test_ndcg_ideal_uses_highest_grades_first():
    # qrels a=1, b=3, c=2; ranked a, c, b.
    #   DCG  = 1 + 2/log2(3) + 3/log2(4) = 1 + 1.2619 + 1.5 = 3.7619
    #   IDCG = 3 + 2/log2(3) + 1/log2(4) = 3 + 1.2619 + 0.5 = 4.7619
    got = ndcg_at_k(["a", "c", "b"], {"a": 1, "b": 3, "c": 2})
    assert got == pytest.approx((1 + 2 / L3 + 3 / L4) / (3 + 2 / L3 + 1 / L4), abs=1e-12)
    assert got == pytest.approx(0.79000, abs=1e-5)


# --------------------------------------------------------------------------------------------
# Recall, MRR, hit
# --------------------------------------------------------------------------------------------


def test_recall_at_k():
    qrels = {"a": 1, "b": 2, "c": 1, "z": 0}  # 3 relevant (z judged non-relevant)
    ranked = ["a", "x", "b", "y", "z", "c"]
    assert recall_at_k(ranked, qrels, k=1) == pytest.approx(1 / 3)  # a
    assert recall_at_k(ranked, qrels, k=3) == pytest.approx(2 / 3)  # a, b
    assert recall_at_k(ranked, qrels, k=5) == pytest.approx(2 / 3)  # z has grade 0
    assert recall_at_k(ranked, qrels, k=6) == pytest.approx(1.0)  # a, b, c
    assert recall_at_k(ranked, qrels) == pytest.approx(1.0)  # default k=100


def test_recall_duplicates_and_empty():
    # duplicates: a, a, a with k=3 finds 1 of 2; after de-duplication b at position 4 -> rank 2
    assert recall_at_k(["a", "a", "a", "b"], {"a": 1, "b": 1}, k=3) == pytest.approx(1.0)
    assert recall_at_k(["a", "a", "a"], {"a": 1, "b": 1}, k=3) == pytest.approx(0.5)
    assert recall_at_k(["a"], {}) == 0.0
    assert recall_at_k(["a"], {"a": 0}) == 0.0
    assert recall_at_k([], {"a": 1}) == 0.0


def test_reciprocal_rank():
    qrels = {"r": 1, "s": 2}
    assert reciprocal_rank(["r", "x"], qrels) == 1.0
    assert reciprocal_rank(["x", "y", "r", "s"], qrels) == pytest.approx(1 / 3)  # first at 3
    assert reciprocal_rank(["x", "y", "z"], qrels) == 0.0  # none retrieved
    assert reciprocal_rank([], qrels) == 0.0
    assert reciprocal_rank(["r"], {}) == 0.0
    assert reciprocal_rank(["r", "s"], {"r": 0, "s": 1}) == pytest.approx(1 / 2)  # grade 0
    # duplicates count once: x, x, r -> r is at rank 2
    assert reciprocal_rank(["x", "x", "r"], qrels) == pytest.approx(1 / 2)


def test_reciprocal_rank_cut_at_10():
    # MRR@10: first relevant at rank 10 -> 0.1; at rank 11 -> 0 (beyond the cut)
    at_10 = [f"n{i}" for i in range(9)] + ["r"]
    at_11 = [f"n{i}" for i in range(10)] + ["r"]
    assert reciprocal_rank(at_10, {"r": 1}) == pytest.approx(0.1)
    assert reciprocal_rank(at_11, {"r": 1}) == 0.0
    assert reciprocal_rank(at_11, {"r": 1}, k=11) == pytest.approx(1 / 11)
    assert reciprocal_rank(["x", "y", "r"], {"r": 1}, k=2) == 0.0


def test_hit_at_k():
    hits = [False, False, True, False]
    assert hit_at_k(hits, 1) == 0.0
    assert hit_at_k(hits, 2) == 0.0
    assert hit_at_k(hits, 3) == 1.0
    assert hit_at_k(hits, 10) == 1.0  # k beyond the list
    assert hit_at_k([True], 1) == 1.0
    assert hit_at_k([], 5) == 0.0
    assert hit_at_k([False] * 10, 10) == 0.0
    assert isinstance(hit_at_k(hits, 3), float)


# --------------------------------------------------------------------------------------------
# Agreement with pytrec_eval (trec_eval), as BEIR computes nDCG@10, Recall@100, MRR
# --------------------------------------------------------------------------------------------


def _random_collection(seed: int = 1234, n_queries: int = 50):
    rng = random.Random(seed)
    docs = [f"doc{i:04d}" for i in range(400)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(n_queries):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 25))
        grades = {d: rng.choice([0, 0, 1, 1, 2, 3]) for d in judged}
        grades[judged[0]] = rng.randint(1, 3)  # at least one relevant doc per query
        qrels[qid] = grades
        # retrieved: some judged docs plus unjudged ones, unique ids, distinct scores
        pool = set(rng.sample(judged, rng.randint(0, len(judged))))
        pool |= set(rng.sample(docs, rng.randint(5, 150)))
        scores = rng.sample(range(1, 100_000), len(pool))
        run[qid] = {d: s / 1000.0 for d, s in zip(sorted(pool), scores, strict=True)}
    return qrels, run


def test_agrees_with_pytrec_eval():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    qrels, run = _random_collection()
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100", "recip_rank"})
    reference = evaluator.evaluate(run)
    assert set(reference) == set(qrels)
    for qid, scores in run.items():
        assert len(set(scores.values())) == len(scores)  # ordering is unambiguous
        ranked = sorted(scores, key=scores.get, reverse=True)
        ref = reference[qid]
        assert ndcg_at_k(ranked, qrels[qid], k=10) == pytest.approx(ref["ndcg_cut_10"], abs=1e-9)
        assert recall_at_k(ranked, qrels[qid], k=100) == pytest.approx(ref["recall_100"], abs=1e-9)
        # trec_eval's recip_rank is not cut, so compare against the whole ranking
        assert reciprocal_rank(ranked, qrels[qid], k=len(ranked)) == pytest.approx(
            ref["recip_rank"], abs=1e-9
        )


def test_pytrec_eval_collection_is_not_trivial():
    # the random collection exercises the cuts: some runs longer than 100, some first hits
    # beyond rank 10, some partial recall, some nDCG strictly between 0 and 1.
    qrels, run = _random_collection()
    ranked = {q: sorted(s, key=s.get, reverse=True) for q, s in run.items()}
    assert any(len(r) > 100 for r in ranked.values())
    ndcgs = [ndcg_at_k(ranked[q], qrels[q]) for q in run]
    assert any(0 < v < 1 for v in ndcgs) and any(v == 0 for v in ndcgs)
    assert any(0 < recall_at_k(ranked[q], qrels[q]) < 1 for q in run)
    assert any(
        reciprocal_rank(ranked[q], qrels[q], k=10) == 0 < reciprocal_rank(ranked[q], qrels[q], 1000)
        for q in run
    )


# --------------------------------------------------------------------------------------------
# EM / F1 as the official SQuAD v2.0 script computes them
# --------------------------------------------------------------------------------------------


# Verbatim from the official SQuAD v2.0 evaluation script (evaluate-v2.0.py).
def _squad_normalize_answer(s):
    def remove_articles(text):
        regex = re.compile(r"\b(a|an|the)\b", re.UNICODE)
        return re.sub(regex, " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def _squad_get_tokens(s):
    if not s:
        return []
    return _squad_normalize_answer(s).split()


def _squad_compute_exact(a_gold, a_pred):
    return int(_squad_normalize_answer(a_gold) == _squad_normalize_answer(a_pred))


def _squad_compute_f1(a_gold, a_pred):
    gold_toks = _squad_get_tokens(a_gold)
    pred_toks = _squad_get_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def test_normalize_answer():
    assert normalize_answer("The  John Kerry.") == "john kerry"
    assert normalize_answer("  A cat, an Owl & THE dog!  ") == "cat owl dog"
    assert normalize_answer("Theatre anthem") == "theatre anthem"  # articles only as words
    assert normalize_answer("U.S.A.") == "usa"
    assert normalize_answer("rock-n-roll") == "rocknroll"  # punctuation removed, not spaced
    assert normalize_answer("\tnew\nyork ") == "new york"
    assert normalize_answer("the") == ""
    assert normalize_answer("") == ""


_STRINGS = [
    "The  John Kerry.",
    "john kerry",
    "Secretary John Kerry",
    "Kerry, John",
    "the the the",
    "an apple a day",
    "Apple",
    "1,000",
    "1000",
    "Theatre",
    "Denver Broncos",
    "the Denver Broncos!",
    "Broncos",
    "",
    "   ",
    "...",
    "Café Überlin",
    "café überlin",
]


@pytest.mark.parametrize("text", _STRINGS)
def test_normalize_matches_official_script(text):
    assert normalize_answer(text) == _squad_normalize_answer(text)


@pytest.mark.parametrize("pred", _STRINGS)
@pytest.mark.parametrize("gold", [s for s in _STRINGS if _squad_normalize_answer(s)])
def test_em_f1_match_official_script_single_gold(pred, gold):
    assert exact_match(pred, [gold]) == _squad_compute_exact(gold, pred)
    assert f1_score(pred, [gold]) == pytest.approx(_squad_compute_f1(gold, pred), abs=1e-12)


def test_exact_match_examples():
    assert exact_match("The  John Kerry.", ["john kerry"]) == 1.0
    assert exact_match("John Kerry", ["Kerry"]) == 0.0
    assert exact_match("1,000", ["1000"]) == 1.0  # the comma is punctuation
    # max over gold answers
    assert exact_match("Broncos", ["Denver Broncos", "the Broncos", "Denver"]) == 1.0
    assert exact_match("Denver", ["Denver Broncos", "Broncos"]) == 0.0


def test_f1_partial_overlap_by_hand():
    # pred "Secretary John Kerry" -> [secretary, john, kerry]; gold "John Kerry" -> [john, kerry]
    #   common = 2, P = 2/3, R = 2/2 = 1, F1 = 2 * (2/3) * 1 / (2/3 + 1) = (4/3) / (5/3) = 0.8
    assert f1_score("Secretary John Kerry", ["John Kerry"]) == pytest.approx(0.8)
    # pred "the Denver" -> [denver]; gold "Denver Broncos" -> [denver, broncos]
    #   P = 1, R = 1/2, F1 = 2 * 0.5 / 1.5 = 2/3
    assert f1_score("the Denver", ["Denver Broncos"]) == pytest.approx(2 / 3)
    # no overlap
    assert f1_score("Paris", ["London"]) == 0.0
    # repeated tokens: pred "kerry kerry" vs gold "kerry": common = min(2, 1) = 1
    #   P = 1/2, R = 1, F1 = 2/3
    assert f1_score("kerry kerry", ["kerry"]) == pytest.approx(2 / 3)


def test_f1_max_over_golds():
    # vs "John Kerry": 0.8 (above); vs "Secretary of State John Kerry" -> 5 tokens
    #   [secretary, of, state, john, kerry]: common 3, P = 1, R = 3/5, F1 = 1.2/1.6 = 0.75
    # vs "Kerry": common 1, P = 1/3, R = 1, F1 = 0.5 -> max is 0.8
    golds = ["Secretary of State John Kerry", "Kerry", "John Kerry"]
    assert f1_score("Secretary John Kerry", golds[:1]) == pytest.approx(0.75)
    assert f1_score("Secretary John Kerry", golds[1:2]) == pytest.approx(0.5)
    assert f1_score("Secretary John Kerry", golds) == pytest.approx(0.8)


def test_unanswerable():
    # golds [] means unanswerable: right only when there is no prediction
    assert exact_match(None, []) == 1.0
    assert exact_match("", []) == 1.0
    assert f1_score(None, []) == 1.0
    assert f1_score("", []) == 1.0
    assert exact_match("John Kerry", []) == 0.0
    assert f1_score("John Kerry", []) == 0.0


def test_no_prediction_on_answerable_question():
    assert exact_match(None, ["John Kerry"]) == 0.0
    assert f1_score(None, ["John Kerry"]) == 0.0
    assert exact_match("", ["John Kerry", "Kerry"]) == 0.0
    assert f1_score("", ["John Kerry", "Kerry"]) == 0.0


# --------------------------------------------------------------------------------------------
# Percentiles
# --------------------------------------------------------------------------------------------


def test_percentiles_linear_interpolation():
    values = list(range(1, 101))  # 1..100
    # numpy's default "linear": position (n - 1) * p / 100 into the sorted list
    #   p50: 49.5  -> 50 + 0.5  * (51 - 50)  = 50.5
    #   p95: 94.05 -> 95 + 0.05 * (96 - 95)  = 95.05
    #   p99: 98.01 -> 99 + 0.01 * (100 - 99) = 99.01
    got = percentiles(values)
    assert set(got) == {"p50", "p95", "p99"}
    assert got["p50"] == pytest.approx(50.5)
    assert got["p95"] == pytest.approx(95.05)
    assert got["p99"] == pytest.approx(99.01)
    assert got == pytest.approx({f"p{p}": float(np.percentile(values, p)) for p in (50, 95, 99)})


def test_percentiles_small_and_custom_points():
    # [10, 20, 30, 40] unsorted on purpose: p50 at position 1.5 -> 25; p0 = min; p100 = max;
    # p90 at position 2.7 -> 30 + 0.7 * 10 = 37
    got = percentiles([40.0, 10.0, 30.0, 20.0], points=(0, 50, 90, 100))
    assert got == pytest.approx({"p0": 10.0, "p50": 25.0, "p90": 37.0, "p100": 40.0})
    assert percentiles([3.5]) == {"p50": 3.5, "p95": 3.5, "p99": 3.5}
    assert all(isinstance(v, float) for v in got.values())


def test_percentiles_empty_is_nan():
    got = percentiles([])
    assert set(got) == {"p50", "p95", "p99"}
    assert all(math.isnan(v) for v in got.values())
    assert set(percentiles([], points=(90,))) == {"p90"}
