"""Answer extraction without a QA model: typed candidate spans scored against the question.

The question's wh-word says what type of answer it wants (who -> a person or organisation,
how many -> a number...). Candidates are the entities and noun phrases found at index time in
the retrieved passages; each is scored by how well its sentence fits the question (cosine of
index-time sentence vectors), how close it sits to the question's words, whether its type
fits, and, for "who said ..." questions, whether it is the quoted speaker. A candidate made
of the question's own words is never the answer. The confidence is a logistic blend of
signals that mean something on their own (sentence fit, BM25, type match, margin over the
runner-up), not of a fused rank; below the threshold the reader says "no answer".
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from spacy.lang.en.stop_words import STOP_WORDS

from qa.analysis import NUMERIC_LABELS, REPORTING_VERBS, Analysis

DEFAULT_THRESHOLD = 0.5
_WORD = re.compile(r"[\w']+")
PERSON = {"PERSON": 1.0, "ORG": 0.35, "NORP": 0.3, "GPE": 0.1}
_TYPE_RULES: list[tuple[re.Pattern, dict[str, float]]] = [
    (re.compile(r"\bhow (many|much) (percent|per cent)|\bwhat (percentage|percent|share)"),
     {"PERCENT": 1.0, "CARDINAL": 0.5}),
    (re.compile(r"\bhow much\b.*\b(cost|pay|paid|worth|money|spend|spent|price|fund|budget|"
                r"euros?|dollars?|pounds?)"), {"MONEY": 1.0, "CARDINAL": 0.5}),
    (re.compile(r"\bhow many\b"), {"CARDINAL": 1.0, "QUANTITY": 0.8, "MONEY": 0.3}),
    (re.compile(r"\bhow much\b"), {"MONEY": 0.8, "QUANTITY": 1.0, "CARDINAL": 0.7,
                                   "PERCENT": 0.6}),
    (re.compile(r"\bhow (long|soon)\b"), {"DATE": 1.0, "TIME": 1.0, "QUANTITY": 0.5}),
    (re.compile(r"\bhow (high|tall|far|deep|big|large|heavy|fast|wide)\b"),
     {"QUANTITY": 1.0, "CARDINAL": 0.6}),
    (re.compile(r"\bhow old\b"), {"DATE": 1.0, "CARDINAL": 0.8}),
    (re.compile(r"\b(when|what (year|date|day|month|time|century|decade)|which (year|date|day|"
                r"month|century))\b"), {"DATE": 1.0, "TIME": 0.8}),
    (re.compile(r"\b(where|what|which)( \w+){0,2} (city|town|village|country|nation|state|"
                r"province|region|capital|place|district)\b"),
     {"GPE": 1.0, "LOC": 0.8, "FAC": 0.5}),
    (re.compile(r"\bwhere\b"), {"GPE": 1.0, "LOC": 1.0, "FAC": 0.8, "ORG": 0.4}),
    (re.compile(r"\b(what|which)( \w+){0,2} (group|organi[sz]ation|company|firm|agency|party|"
                r"union|team|club|band|university|newspaper|network|institution|body|militia)\b"),
     {"ORG": 1.0, "NORP": 0.4}),
    (re.compile(r"\b(what|which) (nationality|religion|ethnic)"), {"NORP": 1.0}),
    (re.compile(r"\bwhat (name|nickname|term|title)\b|\b(called|known as|named)\b"),
     {"QUOTE": 1.0, "NP": 0.6, "ORG": 0.5, "PERSON": 0.4, "EVENT": 0.8, "WORK_OF_ART": 0.8}),
    (re.compile(r"\b(what|which) (river|mountain|sea|lake|ocean|island)\b"),
     {"LOC": 1.0, "GPE": 0.6, "ORG": 0.4}),
    (re.compile(r"\b(what|which) language\b"), {"LANGUAGE": 1.0, "NORP": 0.5}),
    (re.compile(r"\b(who|whom|whose)\b|\bwhat (is|was) the name of\b.*\b(person|man|woman)\b|"
                r"\bwhich (person|man|woman|player|official|general|leader|minister|president)"),
     PERSON),
]


_ANY_TYPE = {"NP": 0.5, **{label: 0.2 for label in NUMERIC_LABELS}}  # for "what ..." questions


@dataclass(frozen=True)
class QuestionType:
    labels: dict[str, float]  # expected entity labels -> weight; empty: any span
    asks_speaker: bool  # "who said / warned / claimed ..."


@dataclass(frozen=True)
class Reading:
    text: str | None  # None: no answer
    confidence: float
    passage: int | None = None  # index into the passages given
    start: int = 0  # offsets in the article text
    end: int = 0
    candidates: tuple[tuple[str, float], ...] = ()  # every span considered, best first


@dataclass(frozen=True)
class Evidence:
    """A retrieved passage as the reader needs it."""

    start: int
    end: int
    bm25: float
    analysis: Analysis
    sentence_vectors: np.ndarray
    text: str  # the article's whole text


def question_type(question: str) -> QuestionType:
    """The expected answer type from the earliest wh-phrase ("in which city ... when he ...")."""
    lowered = question.lower()
    matches = [(m.start(), order, labels) for order, (pattern, labels) in enumerate(_TYPE_RULES)
               if (m := pattern.search(lowered))]
    labels = min(matches, key=lambda m: m[:2])[2] if matches else {}
    verb = re.search(r"\bwho\s+(?:has\s+|had\s+)?(\w+)", lowered)
    asks_speaker = bool(verb) and verb.group(1) in REPORTING_VERBS  # "who said", not "who did"
    return QuestionType(labels, asks_speaker)


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]


def _stem(word: str) -> str:
    return word[:5]


def _confidence(features: Sequence[float]) -> float:
    weights = (4.0, 2.0, 1.2, 1.5, 0.6)
    z = sum(w * f for w, f in zip(weights, features, strict=True)) - 3.6
    return 1.0 / (1.0 + math.exp(-z))


def read(question: str, query: np.ndarray, evidence: Sequence[Evidence],
         threshold: float = DEFAULT_THRESHOLD) -> Reading:
    """The best answer span in the evidence, or no answer when the confidence is too low."""
    kind = question_type(question)
    asked = content_words(question)
    asked_stems = {_stem(w) for w in asked}
    question_words = set(_WORD.findall(question.lower()))
    best_bm25 = max((e.bm25 for e in evidence), default=0.0)
    candidates: dict[str, tuple[float, int, int, int, float]] = {}
    best_fit = 0.0
    for index, item in enumerate(evidence):
        fits = item.sentence_vectors @ query if len(item.sentence_vectors) else np.zeros(0)
        prior = 0.1 / (1 + index)
        for number, (s_start, s_end) in enumerate(item.analysis.sentences):
            if s_start < item.start or s_end > item.end:
                continue
            fit = float(fits[number])
            best_fit = max(best_fit, fit)
            sentence = item.text[s_start:s_end]
            words = _WORD.findall(sentence.lower())
            hits: dict[str, list[int]] = {}  # question word -> where it occurs in the sentence
            for m in _WORD.finditer(sentence.lower()):
                if (stem := _stem(m.group())) in asked_stems:
                    hits.setdefault(stem, []).append(m.start())
            overlap = len({_stem(w) for w in words} & asked_stems) / max(1, len(asked_stems))
            speaker = item.analysis.speakers.get(number)
            mentions = [m for m in item.analysis.mentions if s_start <= m[0] and m[1] <= s_end]
            if kind.asks_speaker and speaker:  # "he added": the speaker was named earlier
                mentions.append((*speaker, "PERSON"))
            for m_start, m_end, label in mentions:
                span = item.text[m_start:m_end].strip(" \"'“”‘’,.;:")
                span_words = set(_WORD.findall(span.lower())) - STOP_WORDS
                if not span_words or span_words <= question_words:
                    continue
                echo = len(span_words & question_words) / len(span_words)
                if echo >= 0.5:  # mostly the question's own words: what it asks about
                    continue
                labels = kind.labels or _ANY_TYPE
                type_fit = labels.get(label, 0.0 if kind.labels else 0.35)
                centre = (m_start + m_end) / 2 - s_start
                closeness = float(np.mean([  # near many of the question's words, not one
                    1.0 / (1.0 + min(abs(h - centre) for h in places) / 40.0)
                    for places in hits.values()])) if hits else 0.0
                said = float(kind.asks_speaker and speaker is not None
                             and speaker[0] <= m_start and m_end <= speaker[1])
                score = (fit + 0.6 * type_fit + 0.35 * closeness + 0.3 * overlap + prior
                         + 0.8 * said - 0.8 * echo)
                key = " ".join(_WORD.findall(span.lower()))
                if key not in candidates or score > candidates[key][0]:
                    offset = item.text.index(span, m_start)
                    candidates[key] = (score, index, offset, offset + len(span), type_fit)
    if not candidates:
        return Reading(None, 0.0)
    ranked = sorted(candidates.values(), key=lambda c: -c[0])
    considered = tuple((evidence[c[1]].text[c[2]:c[3]], round(c[0], 4)) for c in ranked)
    score, index, start, end, type_fit = ranked[0]
    margin = score - ranked[1][0] if len(ranked) > 1 else 0.5
    bm25_signal = best_bm25 / (best_bm25 + 8.0 * max(1, len(asked)) ** 0.5)
    confidence = _confidence((best_fit, bm25_signal, type_fit, min(margin, 0.5), score - 1.0))
    if confidence < threshold:
        return Reading(None, confidence, candidates=considered)
    return Reading(evidence[index].text[start:end], confidence, index, start, end, considered)
