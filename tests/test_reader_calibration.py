"""Fitting when the reader abstains: logistic confidence, threshold, rank prior, folds."""

from __future__ import annotations

import numpy as np

from qa.reader import Calibration, Unmatched, unmatched
from qa.reader_calibration import Asked, cross_validate, fit, fit_logistic, outcome

NONE_MISSING = Unmatched(0, 0, 0)


def test_logistic_fit_recovers_a_known_model():
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.normal(0, 3, 20_000), rng.integers(0, 3, 20_000)])
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-(x @ [0.8, -1.5] - 1.0)))).astype(float)
    weights, bias = fit_logistic(x, y)
    assert np.allclose(weights, [0.8, -1.5], atol=0.08) and abs(bias + 1.0) < 0.1


def test_unmatched_counts_the_names_numbers_and_terms_a_passage_never_mentions():
    passage = "In 1998 the council of Norrbridge voted to close the harbour."
    assert unmatched("When did Norrbridge close the harbour?", passage) == NONE_MISSING
    assert unmatched("When did Havelund close the harbour in 2004?", passage) == (1, 1, 2)
    assert unmatched("Who reopened the harbour?", passage) == (0, 0, 1)  # "Who": first word


def test_a_missing_name_lowers_the_confidence():
    calibration = Calibration(slope=1.0, bias=0.0, unmatched=[-2.0, -1.0, 0.0])  # card's list
    assert calibration.confidence(1.0, Unmatched(1, 0, 1)) < calibration.confidence(1.0)
    assert calibration.confidence(1.0) == Calibration(1.0, 0.0).confidence(1.0)


def _asked(n: int, seed: int = 0) -> list[Asked]:
    """Answerable questions with a high margin are right; unanswerable ones have low margins,
    and half of them name something their passage lacks; the retrieval's first passage holds
    the answer more often than the reader's favourite."""
    rng = np.random.default_rng(seed)
    asked = []
    for i in range(n):
        if i % 2:
            margin = rng.normal(4, 2)
            asked.append(Asked(f"a{i % 40}", True, [(5.0, margin, NONE_MISSING, margin > 3),
                                                    (5.5, margin, NONE_MISSING, False)]))
        else:
            missing = Unmatched(1, 0, 1) if i % 4 else NONE_MISSING
            asked.append(Asked(f"a{i % 40}", False, [(2.0, rng.normal(0, 2), missing, False)]))
    return asked


def test_fit_keeps_nine_tenths_of_the_right_answers_and_learns_the_rank_prior():
    asked = _asked(400)
    calibration = fit(asked)
    assert calibration.rank_weight > 0  # the first passage's span beats a 0.5-higher score
    assert calibration.slope > 0 and 0 < calibration.threshold < 1
    assert calibration.unmatched[0] + calibration.unmatched[2] < 0  # a missing name counts against
    result = outcome(asked, calibration)
    assert 0.89 <= result["exact_kept"] <= 0.95 and result["no_answer_recall"] > 0.9
    assert result["em_answerable"] <= result["em_answerable_answering_all"]


def test_folds_hold_out_whole_articles_and_report_every_measure():
    report = cross_validate(_asked(400), folds=5)
    assert set(report) == {"no_answer_recall", "exact_kept", "em_answerable",
                           "em_answerable_answering_all"}
    assert report["exact_kept"] > 0.8 and report["no_answer_recall"] > 0.8
