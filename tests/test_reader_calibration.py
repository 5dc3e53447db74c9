"""Fitting when the reader abstains: logistic confidence, threshold, rank prior, folds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from qa.reader import Calibration
from qa.reader_calibration import (
    Asked,
    cross_validate,
    fit,
    fit_enough,
    fit_logistic,
    outcome,
)


def test_logistic_fit_recovers_a_known_curve():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 3, 20_000)
    y = (rng.random(x.size) < 1 / (1 + np.exp(-(0.8 * x - 1.0)))).astype(float)
    slope, bias = fit_logistic(x, y)
    assert abs(slope - 0.8) < 0.05 and abs(bias + 1.0) < 0.08


def _asked(n: int, seed: int = 0) -> list[Asked]:
    """Answerable questions with a high margin are right; unanswerable ones have low margins;
    the retrieval's first passage holds the answer more often than the reader's favourite."""
    rng = np.random.default_rng(seed)
    asked = []
    for i in range(n):
        if i % 2:
            margin = rng.normal(4, 2)
            asked.append(Asked(f"a{i % 40}", True, [(5.0, margin, margin > 3), (5.5, margin,
                                                                                False)]))
        else:
            asked.append(Asked(f"a{i % 40}", False, [(2.0, rng.normal(-2, 2), False)]))
    return asked


def test_fit_keeps_nine_tenths_of_the_right_answers_and_learns_the_rank_prior():
    asked = _asked(400)
    calibration = fit(asked)
    assert calibration.rank_weight > 0  # the first passage's span beats a 0.5-higher score
    assert calibration.slope > 0 and 0 < calibration.threshold < 1
    result = outcome(asked, calibration)
    assert 0.89 <= result["exact_kept"] <= 0.95 and result["no_answer_recall"] > 0.9
    assert result["em_answerable"] <= result["em_answerable_answering_all"]


def test_folds_hold_out_whole_articles_and_report_every_measure():
    report = cross_validate(_asked(400), folds=5)
    assert set(report) == {"no_answer_recall", "exact_kept", "em_answerable",
                           "em_answerable_answering_all", "read_first_only"}
    assert report["exact_kept"] > 0.8 and report["no_answer_recall"] > 0.8


def test_the_rest_is_read_unless_the_first_passages_settle_the_answer():
    """A strong first span settles the answer; a weak one can lose to the fourth passage,
    so the fitted score sits above every weak first span that would lose."""
    calibration = Calibration(slope=1.0, bias=0.0, threshold=0.5, rank_weight=1.0)
    asked = []
    for i in range(200):
        first = 6.0 + i % 5  # 6 .. 10
        later = 9.0 if i % 2 else 2.0  # after its prior 9 - ln 4 = 7.6: it beats 6 and 7
        asked.append(Asked(f"a{i}", True, [(first, 3.0, True), (1.0, 0.0, False),
                                          (1.0, 0.0, False), (later, 3.0, False)]))
    asked.append(Asked("none", False, [(0.0, -5.0, False)] * 4))
    enough = fit_enough(asked, calibration, tolerance=0.0)
    assert enough == 8.0
    settled = replace(calibration, enough=enough)
    assert outcome(asked, settled)["read_first_only"] == 120 / 201  # first spans of 8, 9, 10
    assert outcome(asked, settled)["exact_kept"] == outcome(asked, calibration)["exact_kept"]
    assert fit_enough(asked, calibration, tolerance=0.5) == 0.0  # the unanswerable one too
