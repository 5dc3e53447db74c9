"""Fitting the term selector (qa/term_selection.py) on dialogues with human rewrites (CANARD).

Each follow-up is replayed through the rules alone, exactly as `articleqa eval` replays it, and
every candidate word of the earlier turns is labelled by whether the person's rewrite adds it. A
logistic regression (scikit-learn) is scored out of fold, with folds held out by dialogue: the
pooled out-of-fold probabilities pick the threshold (the best F1 of the words the whole
resolution adds), then each fold's model is replayed through the real `Conversation` on its
held-out dialogues, which gives the reported recall and precision. The learning curve repeats
that with a share of each fold's training dialogues. The shipped model is fitted on them all.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from embeddings.encoder import sha256_of
from qa.conversation import Conversation, switches_topic
from qa.datasets import Dialogue, load_dialogues
from qa.dialogue_evaluation import (
    evaluate_rewrite_dialogues,
    replay_rewrites,
    rewrite_summary,
    rewrite_words,
)
from qa.term_selection import CARD, FEATURES, WEIGHTS, TermSelector, candidates

CURVE_SHARES = (0.1, 0.25, 0.5, 1.0)  # of each fold's training dialogues


@dataclass
class SelectorConfig:
    train: list[str]
    out: str = "artifacts/term-selector"
    folds: int = 5
    seed: int = 13
    c: float = 1.0  # inverse strength of the logistic regression's L2 penalty
    thresholds: list[float] = field(
        default_factory=lambda: [round(0.05 * i, 2) for i in range(2, 15)])


@dataclass
class Examples:
    features: np.ndarray  # one row per candidate word
    labels: np.ndarray  # 1: the rewrite adds the word
    dialogue: np.ndarray  # the candidate's dialogue (folds hold whole dialogues out)
    needed: int  # words the rewrites add, over all follow-ups
    rules_right: int  # of those, the words the rules add already
    rules_added: int  # every word the rules add


def build_examples(dialogues: list[Dialogue]) -> Examples:
    """Candidates and labels of every follow-up with a rewrite, replayed through the rules."""
    rows, labels, owners = [], [], []
    needed_total = right = added_total = 0
    for index, dialogue in enumerate(dialogues):
        for number, turn, resolution, earlier, _ in replay_rewrites(
                dialogue, Conversation(selector=None)):
            if number == 1 or not turn.rewrite:
                continue
            needed, added = rewrite_words(turn.question, turn.rewrite, resolution.resolved)
            needed_total += len(needed)
            right += len(needed & added)
            added_total += len(added)
            if switches_topic(turn.question):
                continue  # searched as typed: the selector never sees a topic switch
            for candidate in candidates(turn.question, resolution.resolved, earlier):
                rows.append(candidate.features)
                labels.append(int(candidate.word in needed))
                owners.append(index)
    return Examples(np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES)),
                    np.asarray(labels, dtype=int), np.asarray(owners, dtype=int),
                    needed_total, right, added_total)


def _fit(features: np.ndarray, labels: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=5000).fit(features, labels)


def _selector(model, threshold: float) -> TermSelector:
    return TermSelector([float(w) for w in model.coef_[0]], float(model.intercept_[0]),
                        threshold)


def _scores(right: float, added: float, needed: float) -> dict:
    recall = right / needed if needed else 0.0
    precision = right / added if added else 0.0
    f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
    return {"recall": round(recall, 4), "precision": round(precision, 4), "f1": round(f1, 4)}


def _sweep(examples: Examples, probabilities: np.ndarray, thresholds: list[float]) -> list[dict]:
    """Words the rules plus the selector would add, per threshold, estimated from candidates."""
    rows = []
    for threshold in thresholds:
        chosen = probabilities >= threshold
        right = examples.rules_right + int((chosen & (examples.labels == 1)).sum())
        added = examples.rules_added + int(chosen.sum())
        rows.append({"threshold": threshold, **_scores(right, added, examples.needed)})
    return rows


def _folds(count: int, folds: int, seed: int) -> list[list[int]]:
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return [sorted(order[i::folds]) for i in range(folds)]


def _out_of_fold(dialogues: list[Dialogue], examples: Examples, parts: list[list[int]],
                 threshold: float, c: float, share: float, seed: int) -> dict:
    """Recall / precision of the real resolution on held-out dialogues, each fold's selector
    fitted on ``share`` of the other folds' dialogues."""
    rows = []
    for number, held in enumerate(parts):
        others = [i for part in parts if part is not held for i in part]
        kept = sorted(random.Random(seed + number).sample(others, round(share * len(others))))
        train = np.isin(examples.dialogue, kept)
        selector = _selector(_fit(examples.features[train], examples.labels[train], c),
                             threshold)
        rows += evaluate_rewrite_dialogues([dialogues[i] for i in held],
                                           selector=selector)["rows"]
    summary = rewrite_summary(rows, "added")
    return {"dialogues": round(share * len(dialogues) * (len(parts) - 1) / len(parts)),
            **_scores(summary["words_added_right"], summary["words_added"],
                      summary["words_needed"])}


def train_selector(config: SelectorConfig, progress: bool = True) -> dict:
    """Fit, score out of fold, and write the weights and their card into ``config.out``."""
    started = time.perf_counter()
    dialogues, files = [], []
    for path in config.train:
        loaded = load_dialogues(path).dialogues
        dialogues += loaded
        files.append({"path": str(path), "sha256": sha256_of(Path(path)),
                      "dialogues": len(loaded)})
    examples = build_examples(dialogues)
    parts = _folds(len(dialogues), config.folds, config.seed)
    probabilities = np.zeros(len(examples.labels))
    for held in parts:
        test = np.isin(examples.dialogue, held)
        model = _fit(examples.features[~test], examples.labels[~test], config.c)
        probabilities[test] = model.predict_proba(examples.features[test])[:, 1]
    sweep = _sweep(examples, probabilities, config.thresholds)
    threshold = max(sweep, key=lambda row: row["f1"])["threshold"]
    curve = []
    for share in CURVE_SHARES:
        curve.append(_out_of_fold(dialogues, examples, parts, threshold, config.c, share,
                                  config.seed))
        if progress:
            print(f"  {curve[-1]['dialogues']} training dialogues per fold: "
                  f"recall {curve[-1]['recall']}, precision {curve[-1]['precision']}")
    rules = rewrite_summary(evaluate_rewrite_dialogues(dialogues, selector=None)["rows"],
                            "added")
    final = _fit(examples.features, examples.labels, config.c)

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = {"features": list(FEATURES), "weights": [round(float(w), 6) for w in final.coef_[0]],
               "bias": round(float(final.intercept_[0]), 6)}
    (out / WEIGHTS).write_text(json.dumps(weights, indent=1) + "\n")
    import sklearn

    card = {
        "model": "logistic regression over candidate words of the earlier turns",
        "weights_sha256": sha256_of(out / WEIGHTS), "threshold": threshold,
        "training": {"config": asdict(config), "files": files, "follow_ups": rules["follow_ups"],
                     "candidates": int(len(examples.labels)),
                     "positives": int(examples.labels.sum()),
                     "scikit_learn": sklearn.__version__,
                     "seconds": round(time.perf_counter() - started, 1)},
        "metrics": {"rules_only": _scores(rules["words_added_right"], rules["words_added"],
                                          rules["words_needed"]),
                    "out_of_fold": curve[-1], "threshold_sweep": sweep,
                    "learning_curve": curve},
    }
    (out / CARD).write_text(json.dumps(card, indent=1) + "\n")
    _plot(curve, card["metrics"]["rules_only"], out / "learning-curve.png")
    return card


def _plot(curve: list[dict], rules: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    sizes = [row["dialogues"] for row in curve]
    for measure, marker in (("recall", "o"), ("precision", "s"), ("f1", "^")):
        line = ax.plot(sizes, [row[measure] for row in curve], marker=marker, label=measure)
        ax.axhline(rules[measure], color=line[0].get_color(), linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("training dialogues per fold (dotted: the rules alone)")
    ax.set_ylabel("rewrite words, held-out folds")
    ax.set_title("Term selector: learning curve")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
