"""Fit the reader's span scorer and confidence (``qa/reader_weights.json``) on SQuAD-style data.

The weights must come from questions the evaluation does not report on: ``--exclude`` drops
every training question whose paragraph also appears in another dataset (the SQuAD 2.0 dev
sample shares 53 paragraphs with XQuAD). The script prints k-fold held-out numbers (folds by
article) so that what the fitted reader does on unseen articles is known before it ships.

    python scripts/fit_reader.py ../shared/data/squad2-dev-500/squad2-dev-500.json \\
        --exclude ../shared/data/xquad-en/xquad.en.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from tqdm import tqdm

from embeddings import Encoder
from qa.api import READ_PASSAGES
from qa.datasets import load_dataset
from qa.evaluation import ANSWER_K, open_index
from qa.metrics import exact_match
from qa.reading import (
    CONFIDENCE_FEATURES,
    SPAN_FEATURES,
    WEIGHTS_FILE,
    LinearModel,
    candidates,
    confidence_signals,
    feature_matrix,
)

L2 = 0.1  # ridge penalty per weight: a few hundred questions must not be memorised
KEEP = 0.9  # share of the right answers the threshold may not give up


@dataclass
class Example:
    group: str  # the gold article (folds never split one), or the question for unanswerable
    answerable: bool
    features: list[dict[str, float]]  # one per candidate span
    correct: np.ndarray  # bool per candidate: exact match with a gold answer


def collect(train: Path, exclude: list[Path], cache: Path) -> list[Example]:
    dataset = load_dataset(train)
    held_out = {p.strip() for path in exclude for a in load_dataset(path).articles
                for p in a.text.split("\n\n")}
    kb, _ = open_index(dataset, "hybrid", cache, Encoder())
    texts = {a.source: a.text for a in dataset.articles}
    examples = []
    for query in tqdm(dataset.queries, unit=" question", desc="Reading"):
        gold = next(iter(query.relevant), query.id)
        if query.answerable and any(p.strip() in held_out
                                    for p in texts[gold].split("\n\n")):
            continue
        passages, _ = kb.search(query.question, k=ANSWER_K)
        evidence = kb.evidence(passages[:READ_PASSAGES]) or []
        found = candidates(query.question, kb.encoder.encode_query(query.question), evidence)
        if not found:
            continue
        correct = np.array([exact_match(evidence[c.passage].text[c.start:c.end], query.answers)
                            for c in found], bool) if query.answerable else np.zeros(len(found))
        examples.append(Example(gold, query.answerable, [c.features for c in found], correct))
    kb.close()
    return examples


def fit_span(examples: list[Example]) -> LinearModel:
    """Softmax over each question's candidates, maximising the probability of the right ones."""
    groups = [(feature_matrix(e.features, SPAN_FEATURES), e.correct.astype(bool))
              for e in examples if e.correct.any()]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = L2 * w @ w, 2 * L2 * w
        for x, right in groups:
            s = x @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            q = p * right / p[right].sum()  # the posterior over the right candidates
            total -= np.log(p[right].sum())
            grad -= (q - p) @ x
        return total / len(groups), grad / len(groups)

    w = minimize(loss, np.zeros(len(SPAN_FEATURES)), jac=True, method="L-BFGS-B").x
    return LinearModel(SPAN_FEATURES, w, 0.0)


def _signals(examples: list[Example], span: LinearModel) -> tuple[np.ndarray, np.ndarray]:
    """Each question's confidence signals, and whether its best span is right."""
    rows, right = [], []
    for e in examples:
        scores = span.scores(e.features)
        rows.append(confidence_signals(e.features, scores))
        right.append(bool(e.correct[int(np.argmax(scores))]))
    return feature_matrix(rows, CONFIDENCE_FEATURES), np.array(right)


def fit_confidence(examples: list[Example], span: LinearModel) -> LinearModel:
    """Logistic regression: is the best span exactly right? (never, when there is no answer)."""
    x, y = _signals(examples, span)
    y = y.astype(np.float64)
    x = np.hstack([x, np.ones((len(x), 1))])

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w
        p = 1 / (1 + np.exp(-z))
        eps = 1e-12
        penalty = L2 * w[:-1] @ w[:-1]
        value = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)) + penalty
        grad = x.T @ (p - y) / len(y) + 2 * L2 * np.append(w[:-1], 0.0)
        return value, grad

    w = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x
    return LinearModel(CONFIDENCE_FEATURES, w[:-1], float(w[-1]))


def held_out(examples: list[Example], folds: int) -> tuple[np.ndarray, np.ndarray]:
    """Each question's confidence from weights fitted without its article, and whether its
    best span was right: what the reader does on articles it never saw."""
    groups = sorted({e.group for e in examples})
    fold_of = {g: i % folds for i, g in enumerate(np.random.default_rng(0).permutation(groups))}
    confidence, right = np.zeros(len(examples)), np.zeros(len(examples), bool)
    for fold in range(folds):
        test = [i for i, e in enumerate(examples) if fold_of[e.group] == fold]
        train = [e for e in examples if fold_of[e.group] != fold]
        span = fit_span(train)
        model = fit_confidence(train, span)
        x, y = _signals([examples[i] for i in test], span)
        confidence[test] = 1 / (1 + np.exp(-(x @ model.weights + model.intercept)))
        right[test] = y
    return confidence, right


def choose_threshold(confidence: np.ndarray, right: np.ndarray, answerable: np.ndarray,
                     keep: float = KEEP) -> float:
    """The highest threshold that still keeps ``keep`` of the right answers: abstain as often
    as possible on what the articles do not answer, at a bounded cost in right answers."""
    wanted = keep * right[answerable].sum()
    passing = [t for t in np.unique(confidence)
               if (right & answerable & (confidence >= t)).sum() >= wanted]
    return float(max(passing, default=0.0))


def report(confidence: np.ndarray, right: np.ndarray, answerable: np.ndarray,
           threshold: float) -> dict[str, float]:
    answered = confidence >= threshold
    return {"em_answerable": right[answerable].mean(),
            "em_answerable_at_threshold": (right & answered)[answerable].mean(),
            "no_answer_recall": (~answered[~answerable]).mean() if (~answerable).any() else 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", type=Path, help="SQuAD v1.1/v2.0 JSON to fit on")
    parser.add_argument("--exclude", type=Path, action="append", default=[],
                        help="a dataset whose paragraphs must not be trained on (repeatable)")
    parser.add_argument("--cache", type=Path, default=Path(".articleqa-cache"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    args = parser.parse_args()

    examples = collect(args.train, args.exclude, args.cache)
    answerable = sum(e.answerable for e in examples)
    print(f"{len(examples)} questions ({answerable} answerable, "
          f"{sum(e.correct.any() for e in examples)} with a right candidate)")
    confidence, right = held_out(examples, args.folds)
    answerable = np.array([e.answerable for e in examples])
    threshold = choose_threshold(confidence, right, answerable)
    print(f"held out ({args.folds} folds by article), threshold {threshold:.3f}:",
          json.dumps({k: round(float(v), 3)
                      for k, v in report(confidence, right, answerable, threshold).items()}))
    span = fit_span(examples)
    args.out.write_text(json.dumps({
        "fitted_on": args.train.name, "excluded": [p.name for p in args.exclude],
        "questions": len(examples), "threshold": round(threshold, 4),
        "span": span.to_dict(), "confidence": fit_confidence(examples, span).to_dict(),
    }, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
