"""What a follow-up leaves unsaid: a learned choice of words from the conversation so far.

A person's standalone form of "did he have any influences?" is "did Bob Newhart have any
influences?"; of "who else played there?", "besides Bullet for My Valentine, who else played at
the Camden Rocks festival?". The rules in qa/conversation.py replace pronouns; this adds what
they cannot name. Every content word of the earlier turns (their questions, answers and the
headlines they were answered from) is a candidate, described by a few explainable features
(where and how recently it was seen, capitalised or not, what the new question lacks); a
logistic regression fitted on CANARD's human rewrites (`articleqa train-term-selector`,
qa/term_selection_training.py) scores each, and those at or above its threshold are added to
the resolved question as the phrases they were seen in ("+ Bob Newhart").

The weights, threshold and training record are in qa/models/term-selector/ (sha256-checked at
load, like the reader).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from embeddings.encoder import sha256_of
from qa.words import STOP_WORDS, WORD, term, term_tokens, terms

if TYPE_CHECKING:
    from qa.conversation import Turn

SELECTOR_DIR = Path(__file__).parent / "models" / "term-selector"
CARD, WEIGHTS = "term-selector.json", "weights.json"
MAX_PHRASES = 4  # at most this many phrases join one question

PERSON = {"he", "him", "his", "she", "her", "hers", "himself", "herself"}
THING = {"it", "its", "this", "that"}
GROUP = {"they", "them", "their", "theirs"}
ELSE = {"else", "other", "another", "besides", "also"}
YES_NO = {"did", "does", "do", "was", "were", "is", "are", "has", "had", "have", "can", "could",
          "will", "would"}

_SOURCES = ("in_headline", "in_first_question", "in_last_question", "in_last_answer",
            "in_older_question", "in_older_answer")
# pairs whose product is a feature too: a headline's word matters when the question says "he"
INTERACTIONS = (
    ("in_headline", "asks_he_she"), ("in_headline", "asks_it_this"), ("in_headline", "asks_they"),
    ("capitalised", "asks_he_she"), ("in_last_answer", "asks_it_this"),
    ("in_first_question", "asks_it_this"), ("in_headline", "capitalised"),
    ("in_last_answer", "asks_else"),
)
FEATURES = (
    *_SOURCES, "log_count", "capitalised", "recency", "number", "word_length", "asks_he_she",
    "asks_it_this", "asks_they", "question_brevity", "question_names", "first_follow_up",
    "source_overlap", "near_question_word", "position", "known_referent", "asks_else", "yes_no",
    *(f"{a}*{b}" for a, b in INTERACTIONS),
)

class SelectorWeightsError(RuntimeError):
    """The term selector's files are missing or do not match their recorded checksum."""


@dataclass
class Candidate:
    word: str
    features: list[float]


def _thread(turns: Sequence[Turn]) -> Sequence[Turn]:
    """The turns since the conversation last switched topic (a question naming its own
    subject): what came before is another thread."""
    from qa.conversation import switches_topic

    start = next((n for n in range(len(turns) - 1, 0, -1)
                  if switches_topic(turns[n].question)), 0)
    return turns[start:]


def _sources(turns: Sequence[Turn]) -> list[tuple[str, str, int]]:
    """(text, kind, turns ago) of everything the current thread has said, newest last."""
    from qa.conversation import named_spans

    turns = _thread(turns)
    n = len(turns)
    out = []
    for number, turn in enumerate(turns):
        ago = n - number
        names = " ".join(span for span, _ in named_spans(turn.title))
        if names:  # a headline's names: "Frank Zappa", "Kestrel Ridge" (not "find", "new")
            out.append((names, "in_headline", ago))
        asked = ("in_first_question" if number == 0
                 else "in_last_question" if ago == 1 else "in_older_question")
        out.append((turn.question, asked, ago))
        if turn.answer:
            out.append((turn.answer, "in_last_answer" if ago == 1 else "in_older_answer", ago))
    return out


def candidates(question: str, resolved: str, turns: Sequence[Turn]) -> list[Candidate]:
    """Every content word the current thread has said (`_sources`) that ``resolved`` does not
    already hold, with its features (named in `FEATURES`)."""
    from qa.conversation import named_spans

    asked, present = terms(question), terms(resolved)
    lowered = {w.lower() for w in WORD.findall(question)}
    seen: dict[str, dict[str, float]] = {}
    for text, kind, ago in _sources(turns):
        words = term_tokens(text)
        overlap = len(asked & {w for w, _, _ in words})
        for position, (word, token, index) in enumerate(words):
            if word in present:
                continue
            info = seen.setdefault(word, {"count": 0, "ago": 99, "position": 1.0})
            info[kind] = 1.0
            info["count"] += 1
            info["ago"] = min(info["ago"], ago)
            # capitalised where it is not a sentence's first word (a headline's names are)
            if token[:1].isupper() and (index > 0 or kind == "in_headline"):
                info["capitalised"] = 1.0
            info["source_overlap"] = max(info.get("source_overlap", 0.0), min(overlap, 4) / 4)
            near = {w for w, _, i in words if abs(i - index) <= 3}
            if near & asked:
                info["near_question_word"] = 1.0
            info["position"] = min(info["position"], position / max(1, len(words)))
    last = turns[-1] if turns else None
    referents = set(" ".join(filter(None, [last.person, last.thing, *last.topic])).lower()
                    .split()) if last else set()
    question_level = {
        "asks_he_she": float(bool(lowered & PERSON)),
        "asks_it_this": float(bool(lowered & THING)),
        "asks_they": float(bool(lowered & GROUP)),
        "question_brevity": 1 / (1 + len(asked)),
        "question_names": float(bool(named_spans(question))),
        "first_follow_up": float(len(turns) == 1),
        "asks_else": float(bool(lowered & ELSE)),
        "yes_no": float(question.split()[0].lower() in YES_NO) if question.split() else 0.0,
    }
    out = []
    for word, info in seen.items():
        values = {**question_level, **{k: info.get(k, 0.0) for k in _SOURCES},
                  "log_count": math.log1p(info["count"]),
                  "capitalised": info.get("capitalised", 0.0),
                  "recency": 1 / (1 + info["ago"]), "number": float(word.isdigit()),
                  "word_length": min(len(word), 12) / 12,
                  "source_overlap": info["source_overlap"],
                  "near_question_word": info.get("near_question_word", 0.0),
                  "position": info["position"],
                  "known_referent": float(word in referents)}
        values.update({f"{a}*{b}": values[a] * values[b] for a, b in INTERACTIONS})
        out.append(Candidate(word, [values[name] for name in FEATURES]))
    return out


def phrases(words: set[str], turns: Sequence[Turn]) -> list[str]:
    """The chosen words as they were written, adjacent ones joined into one phrase ("Mothers
    of Invention"), headlines and the newest turns first."""
    texts = [t for turn in reversed(_thread(turns))
             for t in (turn.title, turn.answer, turn.question) if t]
    found: list[str] = []
    left = set(words)
    for text in texts:
        run: list[str] = []
        pending: list[str] = []  # stop words inside a phrase ("of")
        for match in WORD.finditer(text):
            token = match.group()
            word = term(token)
            if word in left:
                run += pending + [token.removesuffix("'s")]
                pending = []
                left.discard(word)
            elif run and word in STOP_WORDS and len(pending) < 2 and word not in ELSE:
                pending.append(token)
            else:
                if run:
                    found.append(" ".join(run))
                run, pending = [], []
        if run:
            found.append(" ".join(run))
        if not left:
            break
    return found


class TermSelector:
    """A fitted logistic regression over `candidates`' features."""

    def __init__(self, weights: Sequence[float], bias: float, threshold: float):
        if len(weights) != len(FEATURES):
            raise SelectorWeightsError(f"the term selector has {len(weights)} weights for "
                                       f"{len(FEATURES)} features; retrain it")
        self.weights, self.bias, self.threshold = list(weights), bias, threshold
        self.card: dict = {}  # its training record and metrics, when loaded from a folder

    @classmethod
    def load(cls, folder: Path = SELECTOR_DIR) -> TermSelector:
        card_path, weights_path = folder / CARD, folder / WEIGHTS
        for path in (card_path, weights_path):
            if not path.exists():
                raise SelectorWeightsError(f"{path} is missing; restore it (git checkout "
                                           f"{folder}) or retrain (articleqa train-term-selector)")
        card = json.loads(card_path.read_text())
        actual = sha256_of(weights_path)
        if actual != card["weights_sha256"]:
            raise SelectorWeightsError(f"{weights_path} has sha256 {actual}, expected "
                                       f"{card['weights_sha256']}: restore it (git checkout "
                                       f"{folder}) or retrain")
        model = json.loads(weights_path.read_text())
        if model["features"] != list(FEATURES):
            raise SelectorWeightsError(f"{weights_path} was fitted on other features; retrain "
                                       "it (articleqa train-term-selector)")
        selector = cls(model["weights"], model["bias"], card["threshold"])
        selector.card = card
        return selector

    def probability(self, candidate: Candidate) -> float:
        z = self.bias + sum(w * x for w, x in zip(self.weights, candidate.features, strict=True))
        return 1 / (1 + math.exp(-z))

    def select(self, question: str, resolved: str, turns: Sequence[Turn]) -> list[str]:
        """The phrases of the conversation so far that ``resolved`` should add."""
        chosen = {c.word for c in candidates(question, resolved, turns)
                  if self.probability(c) >= self.threshold}
        return phrases(chosen, turns)[:MAX_PHRASES] if chosen else []


@cache
def packaged_selector() -> TermSelector:
    """The selector shipped in qa/models/term-selector/, loaded once."""
    return TermSelector.load()
