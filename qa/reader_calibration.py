"""When the reader should say "no answer": its confidence, fitted on SQuAD 2.0 questions.

Each question is asked as a user would (retrieval over all the data set's articles, the reader
over the top passages), answerable or not. A logistic curve maps the best span's margin over
the no-answer score to the probability that the span is exactly right; the threshold is the
highest confidence that still keeps ``keep`` (90%) of the exact answers. Last, the score at
which a span of the first passages is taken without reading the rest: the lowest that changes
at most ``tolerance`` (1 in 200) of the answers. Folds held out by article say what all that
does on articles the fit never saw; the final fit uses every question. Never fit on the data
sets that are reported (XQuAD, the seed questions).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from qa.metrics import exact_match
from qa.reader import READ_FIRST, Calibration, NeuralReader
from qa.spans import SpanScore

KEEP = 0.9  # share of the exact answers the threshold keeps (it gives up at most 10%)
TOLERANCE = 0.005  # share of the answers that reading only the first passages may change
RANK_WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)


@dataclass
class Asked:
    group: str  # the article (folds never split one)
    answerable: bool
    spans: list[tuple[float, float, bool]]  # per passage read, in rank order: the best
    # span's score, its margin over no answer, whether it matches a gold answer

    def best(self, calibration: Calibration) -> tuple[float, bool]:
        """(margin, exact) of the span the reader answers with, from the passages it reads
        under ``calibration``."""
        _, margin, exact = self._winner(calibration)
        return margin, exact

    def read(self, calibration: Calibration) -> list[tuple[float, float, bool]]:
        first = self.spans[:READ_FIRST]
        return first if calibration.settled([_score(span) for span in first]) else self.spans

    def answer(self, calibration: Calibration) -> int | None:
        """The passage the reader answers from (None: "no answer")."""
        index, margin, _ = self._winner(calibration)
        return index if calibration.confidence(margin) >= calibration.threshold else None

    def _winner(self, calibration: Calibration) -> tuple[int | None, float, bool]:
        """(passage index, margin, exact) of the winning span of the passages read."""
        spans = self.read(calibration)
        ranked = calibration.ranked([_score(span) for span in spans])
        if not ranked:
            return None, -1e3, False
        index = ranked[0][0]
        _, margin, exact = spans[index]
        return index, margin, exact


def _score(span: tuple[float, float, bool]) -> SpanScore:
    score, margin, _ = span
    return SpanScore(0, 1, score, score - margin)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> tuple[float, float]:
    """(slope, bias) of P(y | x) = sigmoid(slope x + bias), by Newton's method."""
    design = np.stack([x, np.ones_like(x)], 1)
    w = np.zeros(2)
    for _ in range(50):
        p = 1 / (1 + np.exp(-(design @ w)))
        grad = design.T @ (p - y) + l2 * w
        hess = (design * (p * (1 - p))[:, None]).T @ design + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(w[0]), float(w[1])


def fit(asked: Sequence[Asked], keep: float = KEEP) -> Calibration:
    """The rank weight with the most exact answers, then the confidence curve, the threshold
    that keeps ``keep`` of them, and the score that settles an answer early (`fit_enough`)."""
    weight = max(RANK_WEIGHTS, key=lambda w: (
        sum(a.best(Calibration(rank_weight=w))[1] for a in asked), -w))
    chosen = [a.best(Calibration(rank_weight=weight)) for a in asked]
    x = np.array([margin for margin, _ in chosen])
    y = np.array([exact for _, exact in chosen], float)
    slope, bias = fit_logistic(x, y)
    calibration = Calibration(slope, bias, 0.0, weight)
    right = sorted((calibration.confidence(m) for m, exact in chosen if exact), reverse=True)
    if not right:
        return calibration
    kept = right[max(0, int(np.ceil(keep * len(right))) - 1)]  # the keep-th best right answer
    calibration = Calibration(slope, bias, round(kept - 1e-6, 6), weight)
    return replace(calibration, enough=fit_enough(asked, calibration))


def fit_enough(asked: Sequence[Asked], calibration: Calibration,
               tolerance: float = TOLERANCE) -> float | None:
    """The lowest score at which a span of the first passages is taken without reading the
    rest, such that this changes at most ``tolerance`` of the answers (None: none is)."""
    settle = []  # (the first passages' best score after the prior, whether the answer changes)
    for a in asked:
        if len(a.spans) <= READ_FIRST:
            continue  # nothing left to skip
        first = [_score(span) for span in a.spans[:READ_FIRST]]
        alone = Asked(a.group, a.answerable, a.spans[:READ_FIRST])
        settle.append((max(calibration.prior_score(i, s) for i, s in enumerate(first)),
                       alone.answer(calibration) != a.answer(calibration)))
    enough, changed = None, 0
    for score, changes in sorted(settle, reverse=True):
        changed += changes
        if changed > tolerance * len(asked):
            break
        enough = score
    return None if enough is None else math.floor(enough * 1e4) / 1e4  # never above it


def outcome(asked: Sequence[Asked], calibration: Calibration) -> dict[str, float]:
    """At the calibration's threshold: "no answer" recall, the share of exact answers kept,
    and EM on the answerable questions (with and without abstaining)."""
    chosen = [a.best(calibration) for a in asked]
    answered = [calibration.confidence(m) >= calibration.threshold for m, _ in chosen]
    rows = list(zip(asked, chosen, answered, strict=True))
    return {
        "no_answer_recall": float(np.mean([not ans for a, _, ans in rows if not a.answerable])),
        "exact_kept": float(np.mean([ans for _, (_, exact), ans in rows if exact])),
        "em_answerable": float(np.mean([exact and ans for a, (_, exact), ans in rows
                                        if a.answerable])),
        "em_answerable_answering_all": float(np.mean([exact for a, (_, exact), _ in rows
                                                      if a.answerable])),
        "read_first_only": float(np.mean([len(a.read(calibration)) < len(a.spans)
                                          for a in asked])),
    }


def cross_validate(asked: Sequence[Asked], folds: int = 5, keep: float = KEEP) -> dict:
    groups = sorted({a.group for a in asked})
    fold_of = {g: i % folds for i, g in enumerate(np.random.default_rng(0).permutation(groups))}
    results = []
    for fold in range(folds):
        train = [a for a in asked if fold_of[a.group] != fold]
        test = [a for a in asked if fold_of[a.group] == fold]
        results.append(outcome(test, fit(train, keep)))
    return {key: round(float(np.mean([r[key] for r in results])), 4) for key in results[0]}


def ask_all(dataset_path: Path, reader: NeuralReader, cache: Path,
            exclude: Sequence[Path] = (), progress: bool = True) -> list[Asked]:
    """Every question of the data set asked over its articles, except those about a paragraph
    of an ``exclude`` data set (the SQuAD 2.0 sample shares 53 paragraphs with XQuAD)."""
    from embeddings import Encoder
    from qa.api import READ_PASSAGES
    from qa.datasets import load_dataset
    from qa.evaluation import ANSWER_K, open_index

    dataset = load_dataset(dataset_path)
    reported = {paragraph.strip() for path in exclude for article in load_dataset(path).articles
                for paragraph in article.text.split("\n\n")}
    kb, _ = open_index(dataset, "hybrid", cache, Encoder(), progress=progress)
    article_of = {}
    for article in dataset.articles:
        for paragraph in article.text.split("\n\n"):
            article_of[paragraph] = article.source
    asked = []
    for query in tqdm(dataset.queries, desc="Asking", unit=" question", disable=not progress):
        if (query.context or "").strip() in reported:
            continue
        passages, _ = kb.search(query.question, k=ANSWER_K)
        passages = passages[:READ_PASSAGES]
        spans = [(s.score, s.margin, query.answerable and bool(
                  exact_match(p.text[s.start:s.end], query.answers)))
                 for p, s in zip(passages, reader.spans(query.question, passages), strict=True)]
        asked.append(Asked(article_of.get(query.context, query.id), query.answerable, spans))
    kb.close()
    return asked


def calibrate(dataset_path: Path, folder: Path, cache: Path, exclude: Sequence[Path] = (),
              folds: int = 5, keep: float = KEEP, progress: bool = True) -> dict:
    """Fit the calibration of the reader in ``folder`` and record it in its card."""
    reader = NeuralReader(folder)
    asked = ask_all(dataset_path, reader, cache, exclude, progress)
    held_out = cross_validate(asked, folds, keep)
    calibration = fit(asked, keep)
    card_path = folder / "reader.json"
    card = json.loads(card_path.read_text())
    card["calibration"] = asdict(calibration)
    card["calibration_fit"] = {"data": dataset_path.name, "questions": len(asked),
                               "excluded_paragraphs_of": [p.name for p in exclude],
                               "keep": keep, "folds": folds, "held_out": held_out,
                               "all": outcome(asked, calibration)}
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return card["calibration_fit"] | {"calibration": asdict(calibration)}
