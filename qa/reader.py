"""Readers: the question and its top passages in, the answer span (or "no answer") out.

``Reader`` is the one contract every reader implements: the built-in ``NeuralReader`` (our own
span model, trained by `articleqa train-reader`, shipped in ``qa/models/reader/``) and a
user-supplied transformers QA model (``qa.optional_models.ExtractiveReader``).

The neural reader reads every passage, in windows as long as those it was trained on, in one
batched forward pass, takes the best span over them (never across a paragraph break), and
turns its margin over the no-answer score into a calibrated confidence that the span is
exactly right (fitted on SQuAD 2.0 folds held out by article); below its threshold it
abstains. When the first two passages hold a span strong enough, the rest are not read.
A "who" answer loses its titles ("US Secretary of State John Kerry" -> "John Kerry"). The
passage holding the answer goes first (the reader as re-ranker), and a pronoun answer inside a
quote's sentence ("he said") becomes the speaker the passage names.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from qa.spans import OnnxWindows, SpanScore, score_windows, verified_card, weights_sha256
from qa.words import REPORTING_VERBS, TITLES, content_words

if TYPE_CHECKING:
    from qa.results import Passage

MODEL_FOLDER = Path(__file__).with_name("models") / "reader"
READ_FIRST = 2  # passages read before deciding whether the rest can change the answer
SPEAKER_PRONOUNS = {"he", "she", "they", "him", "her", "them", "i", "we"}
_NAME = re.compile(r"\b[A-Z][\w'’-]*(?:[ \t]+(?:[A-Z][\w'’-]*|de|van|von|al|bin))*")


@dataclass(frozen=True)
class Reading:
    text: str | None  # None: no answer
    confidence: float  # estimated probability that the span is exactly right
    passage: int | None = None  # index into the passages given
    start: int = 0  # offsets in the article text
    end: int = 0
    candidates: tuple[tuple[str, float], ...] = ()  # best span of each passage read,
    # best first


class Reader(Protocol):
    """Question + ranked passages -> answer span with article offsets and confidence."""

    name: str  # what reports and the chat call it
    threshold: float  # confidence below which it answers "no answer"

    def read(self, question: str, passages: Sequence[Passage]) -> Reading: ...


@dataclass(frozen=True)
class Calibration:
    """How the reader turns span scores into an answer: the span with the highest score less
    ``rank_weight`` * ln(retrieval rank) wins (retrieval's ranking as a prior); its confidence
    is sigmoid(slope * margin + bias); it answers when the confidence reaches ``threshold``.
    When a span of the first `READ_FIRST` passages scores ``enough`` after its rank prior, the
    other passages are not read (fitted so that this changes very few answers; None: always
    read them all)."""

    slope: float = 1.0
    bias: float = 0.0
    threshold: float = 0.5
    rank_weight: float = 0.0
    enough: float | None = None

    def confidence(self, margin: float) -> float:
        return 1.0 / (1.0 + math.exp(-(self.slope * margin + self.bias)))

    def prior_score(self, rank: int, span: SpanScore) -> float:
        """The span's score less the prior against the passage's retrieval rank (0-based)."""
        return span.score - self.rank_weight * math.log1p(rank)

    def ranked(self, spans: Sequence[SpanScore | None]) -> list[tuple[int, SpanScore]]:
        """(passage index, span) for every passage with a span, the winner first."""
        found = [(i, s) for i, s in enumerate(spans) if s is not None]
        return sorted(found, key=lambda pair: -self.prior_score(*pair))

    def settled(self, first: Sequence[SpanScore | None]) -> bool:
        """Whether the spans of the first passages answer without reading the rest."""
        return self.enough is not None and any(
            s is not None and self.prior_score(i, s) >= self.enough for i, s in enumerate(first))


def _export(folder: str, dest: Path) -> None:
    from qa.span_model import export_onnx  # torch, only to build the int8 model

    export_onnx(folder, dest)


@lru_cache(maxsize=2)
def _load(folder: str):
    """The int8 ONNX model (built from the verified weights on first use), tokenizer and card,
    once per process. Answering needs neither torch's model nor its quantisation."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    from embeddings.encoder import load_tokenizer
    from embeddings.onnx_int8 import int8_model, parallel_runs

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    card, base = verified_card(Path(folder))
    path = int8_model(folder, weights_sha256(card), _export, "reader")
    return OnnxWindows(path, parallel_runs()), load_tokenizer(base), card


class NeuralReader:
    """Our trained span reader (``folder``: a `train-reader` output, default the shipped one)."""

    def __init__(self, folder: str | Path | None = None, threshold: float | None = None):
        self.folder = Path(folder or MODEL_FOLDER)
        self.forward, self.tokenizer, card = _load(str(self.folder))
        self.calibration = Calibration(**card.get("calibration", {}))
        # windows as long as the ones it was trained on read best (measured on tuning data)
        self.window = card["max_length"], card["training"]["config"]["stride"]
        self.threshold = self.calibration.threshold if threshold is None else threshold
        self.name = f"neural reader ({self.folder})"

    def spans(self, question: str, passages: Sequence[Passage]) -> list[SpanScore | None]:
        """Each passage's best span (None for one without text)."""
        return score_windows(self.forward, self.tokenizer, question,
                             [p.text for p in passages], *self.window)

    def read(self, question: str, passages: Sequence[Passage]) -> Reading:
        spans = self.spans(question, passages[:READ_FIRST])
        if not self.calibration.settled(spans):
            spans += self.spans(question, passages[READ_FIRST:])
        found = self.calibration.ranked(spans)
        if not found:
            return Reading(None, 0.0)
        considered = tuple((passages[i].text[s.start:s.end],
                            round(self.calibration.confidence(s.margin), 4)) for i, s in found)
        index, span = found[0]
        confidence = self.calibration.confidence(span.margin)
        if confidence < self.threshold or span.end <= span.start:
            return Reading(None, confidence, candidates=considered)
        passage = passages[index]
        start, end = person_name(question, passage.text, span.start, span.end)
        start, end = speaker_for_pronoun(passage.text, start, end)
        return Reading(passage.text[start:end], confidence, index, passage.start + start,
                       passage.start + end, considered)


def load_reader(name_or_path: str, threshold: float | None = None) -> Reader:
    """A `train-reader` output folder (it holds ``reader.json``) as a `NeuralReader`; any other
    name or folder as a transformers extractive-QA model, loaded offline."""
    if (Path(name_or_path) / "reader.json").is_file():
        return NeuralReader(name_or_path, threshold)
    from qa.optional_models import ExtractiveReader

    return ExtractiveReader(name_or_path, threshold)


_TITLE_WORDS = TITLES | {"of", "the", "foreign", "former", "deputy", "vice", "us", "u.s.", "uk",
                         "eu"}  # "US Secretary of State", "former Prime Minister"
_WHO = re.compile(r"^\W*(?:who|whom)\b", re.IGNORECASE)


def person_name(question: str, text: str, start: int, end: int) -> tuple[int, int]:
    """A "who" answer is a name: it loses the titles before it ("US Secretary of State John
    Kerry" -> "John Kerry"), and a span that runs on past a name into a clause ("John Kerry
    has offered ...") is cut after the name. Any other span stays as it is."""
    if not _WHO.match(question):
        return start, end
    words = list(re.finditer(r"\S+", text[start:end]))
    first = 0
    while (first < len(words) - 1 and words[first].group().lower().strip(",")
           in _TITLE_WORDS):
        first += 1
    if first and not any(m.group().lower().strip(",") in TITLES for m in words[:first]):
        first = 0
    if not words or not words[first].group()[:1].isupper():
        return start, end
    last = first
    while (last + 1 < len(words) and words[last + 1].group()[:1].isupper()
           and not words[last].group().endswith((",", ";", ":"))):
        last += 1
    if len(words) - last > 2:  # a clause follows the name
        end = start + words[last].end()
        while text[end - 1] in ",;:.":
            end -= 1
    return start + words[first].start(), end


def speaker_for_pronoun(text: str, start: int, end: int) -> tuple[int, int]:
    """A pronoun answer ("he") in a sentence that reports speech becomes the nearest name
    before it in ``text`` (the speaker the passage introduced); any other span stays."""
    if text[start:end].lower() not in SPEAKER_PRONOUNS:
        return start, end
    before = text.rfind(". ", 0, start)
    sentence_start = 0 if before < 0 else before + 2
    sentence_end = text.find(". ", end)
    sentence = text[sentence_start:len(text) if sentence_end < 0 else sentence_end]
    if REPORTING_VERBS.isdisjoint(content_words(sentence)):
        return start, end
    names = [m for m in _NAME.finditer(text, 0, start)
             if m.start() != sentence_start and " " in m.group()]
    if not names:
        return start, end
    return names[-1].start(), names[-1].end()
