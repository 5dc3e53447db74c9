"""Answer extraction without a QA model: typed candidate spans scored against the question.

The question's wh-word says what type of answer it wants (who -> a person or organisation,
how many -> a number...). Candidates are the entities and noun phrases found at index time in
the retrieved passages. Each is described by a few features: how well its sentence fits the
question (cosine of index-time sentence vectors), how close it sits to the question's words,
whether its type fits, whether it is the quoted speaker of a "who said ..." question, how often
the evidence repeats it. A candidate made of the question's own words is never the answer.

Two small linear models turn features into decisions: a span scorer (softmax over a question's
candidates) and a confidence (the probability that the best span is right, from signals that
mean something on their own: sentence fit, BM25, margin, not a fused rank). Their weights are
fitted offline by ``scripts/fit_reader.py`` on data the evaluation does not report on, and ship
in ``reader_weights.json``; below the threshold the reader says "no answer".
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

import numpy as np
from spacy.lang.en.lex_attrs import like_num
from spacy.lang.en.stop_words import STOP_WORDS

from qa.analysis import NUMERIC_LABELS, REPORTING_VERBS, Analysis, load_pipeline

WEIGHTS_FILE = Path(__file__).with_name("reader_weights.json")
_WORD = re.compile(r"[\w']+")
_STOP = frozenset(w for w in STOP_WORDS if not like_num(w))  # "four" is an answer, not a stop
PERSON = {"PERSON": 1.0, "ORG": 0.35, "NORP": 0.3, "GPE": 0.1}
_TYPE_RULES: list[tuple[re.Pattern, dict[str, float]]] = [
    (re.compile(r"\bhow (many|much) (percent|per cent)|\b(what|which)( \w+){0,3} (percentage|"
                r"percent|share|rate)\b"), {"PERCENT": 1.0, "CARDINAL": 0.5}),
    (re.compile(r"\b(what|which)( \w+){0,3} (temperature|distance|height|length|weight|area|"
                r"speed|size|depth|altitude|elevation|population|amount|number)\b"),
     {"QUANTITY": 1.0, "CARDINAL": 0.9, "MONEY": 0.5, "PERCENT": 0.5}),
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
                r"\b(what|which)( \w+){0,2} (person|man|woman|player|official|general|leader|"
                r"minister|president|spokes(man|woman|person)|secretary|chief|commander|captain|"
                r"coach|quarterback|poet|writer|author|actor|actress|singer|artist|musician|"
                r"composer|scientist|physicist|chemist|researcher|engineer|architect|inventor|"
                r"philosopher|economist|historian|journalist|judge|king|queen|emperor|khan|"
                r"ruler|prince|princess|pope|bishop|politician|senator|governor|mayor|"
                r"chancellor|founder|ceo|explorer|son|daughter|wife|husband|father|mother)s?\b"),
     PERSON),
]


_FOCUS = re.compile(r"\b(?:(?:what|which)\s+(?:(?:type|kind|sort|form|class|category)s?\s+of\s+)?"
                    r"|how many\s+)(?!is\b|was\b|are\b|were\b|do\b|does\b|did\b|"
                    r"has\b|had\b|have\b|can\b|could\b|would\b|will\b)([a-z]+)")
_PHRASES = ("NP", "QUOTE")  # candidate labels that are not entity types
_EDGE = " \"'“”‘’,.;:()"
_CURRENCIES = {"euro", "euros", "dollar", "dollars", "pound", "pounds", "yen", "yuan", "francs",
               "kronor", "kroner", "rupees", "pesos", "rubles", "roubles"}
_UNITS = {"metres", "meters", "kilometres", "kilometers", "km", "miles", "feet", "tonnes", "tons",
          "kilograms", "kg", "litres", "liters", "hectares", "acres", "degrees"}
_UNIT = re.compile(r" (" + "|".join(sorted(_CURRENCIES | _UNITS)) + r")\b", re.IGNORECASE)
_YEAR = re.compile(r"\b1\d{3}\b|\b20\d{2}\b")
_NAMED_WHO = re.compile(r"\b([A-Z][\w.]*) Who\b")
_POSSESSIVE = re.compile(r"['’]s?\W*$")
_LISTED = re.compile(r",? (and |or )(?:the )?|, (?:the )?")
_LINKING = {"of", "to", "and", "or", "but", "as", "than", "that", "which", "who", "whose"}
_TRAILING = _LINKING | {"a", "an", "the", "in", "on", "at", "by", "for", "with", "from", "into"}
_ANY_TYPE = {"NP": 0.5, **{label: 0.2 for label in NUMERIC_LABELS}}  # for "what ..." questions


@dataclass(frozen=True)
class QuestionType:
    labels: dict[str, float]  # expected entity labels -> weight; empty: any span
    asks_speaker: bool  # "who said / warned / claimed ..."
    focus: str | None = None  # the noun a "what/which X" question names: "which company"
    counts: bool = False  # "how many X": the answer is the count, without X


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
    """The expected answer type from the earliest wh-phrase ("in which city ... when he ..."),
    not from a name that holds one ("how often does Doctor Who travel?")."""
    lowered = _NAMED_WHO.sub(r"\1 -", question).lower()
    matches = [(m.start(), order, labels) for order, (pattern, labels) in enumerate(_TYPE_RULES)
               if (m := pattern.search(lowered))]
    labels = min(matches, key=lambda m: m[:2])[2] if matches else {}
    verb = re.search(r"\bwho\s+(?:has\s+|had\s+)?(\w+)", lowered)
    asks_speaker = bool(verb) and verb.group(1) in REPORTING_VERBS  # "who said", not "who did"
    focus = _FOCUS.search(lowered)
    return QuestionType(labels, asks_speaker, _stem(focus.group(1)) if focus else None,
                        "how many" in lowered)


_RELATIONS = {"nsubj": "subject", "nsubjpass": "subject", "csubj": "subject", "agent": "subject",
              "dobj": "object", "attr": "object", "oprd": "object", "pobj": "pobj"}


def asked_role(question: str) -> tuple[str, str] | None:
    """The verb the wh-word hangs from and its relation to it: ("elect", "subject") for "who
    was elected mayor?", matched against the same roles found in the articles at index time."""
    head, relation = _wh_attachment(question)
    return (head, relation) if head and relation else None


@lru_cache(maxsize=1024)
def _wh_attachment(question: str) -> tuple[str | None, str | None]:
    """The stem of the word the wh-phrase hangs from ("recov" for "who recovered the ball?",
    "die" for "when did Tesla die?") and the wh-phrase's relation to it, if a known one."""
    doc = load_pipeline()(question, disable=["ner"])  # the parse is all it needs: 3 ms
    wh = next((t for t in doc if t.tag_ in ("WDT", "WP", "WP$", "WRB")), None)
    if wh is None:
        return None, None
    token = wh.head if wh.dep_ in ("det", "advmod") and wh.head.pos_ != "VERB" else wh
    return _stem(token.head.lower_), _RELATIONS.get(token.dep_)


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def _stem(word: str) -> str:
    return word[:5]


SPAN_FEATURES = (
    "fit", "fit_gap", "overlap", "closeness", "nearest", "left_of_span", "right_of_span",
    "window_hits", "digits", "type_fit", "mismatch", "typed_phrase", "untyped",
    "untyped_entity", "noun_phrase", "numeric", "quote", "said", "echo", "passage_prior",
    "bm25_share", "support", "words", "capitalised", "coverage", "names_found", "focus",
    "verb_asked", "subject", "subject_of_asked", "same_relation", "role_match", "has_focus",
    "tree_closeness", "tree_nearest", "tree_head",
)
CONFIDENCE_FEATURES = ("top_score", "margin", "top_probability", "best_fit", "bm25_signal",
                       "type_fit", "overlap", "coverage", "names_found")


@dataclass(frozen=True)
class Candidate:
    key: str  # normalised words: one candidate however often the evidence repeats it
    passage: int
    start: int  # offsets in the article text
    end: int
    label: str
    features: dict[str, float]


def feature_matrix(rows: Sequence[dict[str, float]], names: Sequence[str]) -> np.ndarray:
    """One row per candidate, one column per named feature (the models' and the fit's input)."""
    return np.array([[row[n] for n in names] for row in rows], dtype=np.float64)


@dataclass(frozen=True)
class LinearModel:
    features: tuple[str, ...]
    weights: np.ndarray
    intercept: float

    def scores(self, rows: Sequence[dict[str, float]]) -> np.ndarray:
        return feature_matrix(rows, self.features) @ self.weights + self.intercept

    def to_dict(self) -> dict:
        return {"features": list(self.features), "weights": [round(float(w), 6)
                for w in self.weights], "intercept": round(self.intercept, 6)}

    @classmethod
    def from_dict(cls, data: dict) -> LinearModel:
        return cls(tuple(data["features"]), np.asarray(data["weights"], np.float64),
                   float(data["intercept"]))


@dataclass(frozen=True)
class ReaderWeights:
    span: LinearModel
    confidence: LinearModel  # the probability that the best span is exactly right
    threshold: float  # the confidence below which the reader says "no answer"

    @classmethod
    def load(cls, path: Path = WEIGHTS_FILE) -> ReaderWeights:
        data = json.loads(path.read_text())
        return cls(LinearModel.from_dict(data["span"]), LinearModel.from_dict(data["confidence"]),
                   float(data["threshold"]))


@lru_cache(maxsize=1)
def default_weights() -> ReaderWeights:
    return ReaderWeights.load()


def candidates(question: str, query: np.ndarray, evidence: Sequence[Evidence]) -> list[Candidate]:
    """Every typed span of the evidence that could answer, with the features that judge it."""
    kind = question_type(question)
    role = asked_role(question)
    head = _wh_attachment(question)[0]
    asked_stems = {_stem(w) for w in content_words(question)}
    question_words = set(_WORD.findall(question.lower()))
    focus_words = {w for w in question_words if _stem(w) == kind.focus and not kind.counts}
    asked_acronyms = _acronyms(question)
    best_bm25 = max((e.bm25 for e in evidence), default=0.0)
    fits = [e.sentence_vectors @ query if len(e.sentence_vectors) else np.zeros(0)
            for e in evidence]
    inside = [[n for n, (s, e) in enumerate(item.analysis.sentences)
               if s >= item.start and e <= item.end] for item in evidence]
    best_fit = max((float(fits[i][n]) for i, numbers in enumerate(inside) for n in numbers),
                   default=0.0)
    names = {_stem(w.lower()) for w in _WORD.findall(question)[1:]  # proper names asked about
             if w[:1].isupper() and w.lower() not in _STOP}
    found: dict[str, Candidate] = {}
    support: dict[str, int] = {}
    for index, item in enumerate(evidence):
        roles = item.analysis.roles or [("", "")] * len(item.analysis.mentions)  # older index
        mentions = sorted((*m, *r) for m, r in zip(item.analysis.mentions, roles, strict=True))
        present = {_stem(w) for w in _WORD.findall(item.text[item.start:item.end].lower())}
        tokens = item.analysis.tokens
        starts = [t[0] for t in tokens]
        coverage = len(asked_stems & present) / max(1, len(asked_stems))
        names_found = len(names & present) / len(names) if names else 1.0
        for number in inside[index]:
            s_start, s_end = item.analysis.sentences[number]
            fit = float(fits[index][number])
            sentence = item.text[s_start:s_end].lower()
            hits = [(m.start(), m.end(), stem) for m in _WORD.finditer(sentence)
                    if (stem := _stem(m.group())) in asked_stems]
            near: dict[str, list[int]] = {}  # question word -> where it occurs in the sentence
            for m_start, _, stem in hits:
                near.setdefault(stem, []).append(m_start)
            overlap = len(near) / max(1, len(asked_stems))
            first, last = bisect_left(starts, s_start), bisect_left(starts, s_end)
            distances = _tree_distances(item.text, tokens, first, last, asked_stems)
            speaker = item.analysis.speakers.get(number)
            spans = [m for m in mentions if s_start <= m[0] and m[1] <= s_end]
            spans += _coordinated(item.text, spans, question_words)
            spans += _with_units(item.text, spans)
            if kind.focus == "year":
                spans = _years(item.text, spans)
            if kind.asks_speaker and speaker:  # "he added": the speaker was named earlier
                spans.append((*speaker, "PERSON", "said", "nsubj"))
            for m_start, m_end, label, verb, relation in (
                    (*bounds, *span[2:]) for span in spans
                    for bounds in _bounds(item.text, span, question_words, focus_words)):
                span = item.text[m_start:m_end]
                span_words = set(_WORD.findall(span.lower())) - _STOP
                span_stems = {_stem(w) for w in span_words}
                if not span_words or span_words <= question_words or span in asked_acronyms:
                    continue
                echo = len(span_words & question_words - focus_words) / len(span_words)
                if echo >= 0.5:  # mostly the question's own words: what it asks about
                    continue
                key = " ".join(_WORD.findall(span.lower()))
                support[key] = support.get(key, 0) + 1
                left, right = m_start - s_start, m_end - s_start
                gaps = [max(left - e, s - right, 0) for s, e, _ in hits]
                root = _root(tokens, starts, first, last, m_start, m_end)
                reach = [] if root is None else [1.0 / (1.0 + far[root]) for stem, far
                                                 in distances.items() if stem not in span_stems]
                features = {
                    "fit": fit, "fit_gap": fit - best_fit, "overlap": overlap,
                    "closeness": sum(  # near many of the question's words, not one
                        1.0 / (1.0 + min(abs(p - (left + right) / 2) for p in places) / 40.0)
                        for places in near.values()) / len(near) if near else 0.0,
                    "nearest": 1.0 / (1.0 + min(gaps) / 10.0) if gaps else 0.0,
                    "left_of_span": float(any(0 <= left - e <= 12 for _, e, _ in hits)),
                    "right_of_span": float(any(0 <= s - right <= 12 for s, _, _ in hits)),
                    "window_hits": len({stem for s, e, stem in hits  # within ~6 words
                                        if -40 <= s - right <= 40 or -40 <= left - e <= 40}
                                       ) / max(1, len(asked_stems)),
                    "digits": float(any(ch.isdigit() for ch in span)),
                    "type_fit": kind.labels.get(label, 0.0),
                    "mismatch": float(bool(kind.labels) and label not in _PHRASES  # PERSON
                                      and label not in kind.labels),  # for "how soon?"
                    "typed_phrase": float(bool(kind.labels) and label in _PHRASES),
                    "untyped": float(not kind.labels),
                    "untyped_entity": float(not kind.labels and label not in _PHRASES),
                    "noun_phrase": float(label == "NP"),
                    "numeric": float(label in NUMERIC_LABELS),
                    "quote": float(label == "QUOTE"),
                    "said": float(kind.asks_speaker and speaker is not None
                                  and speaker[0] <= m_start and m_end <= speaker[1]),
                    "echo": echo,
                    "verb_asked": float(bool(verb) and _stem(verb) in asked_stems),
                    "subject": float(relation in ("nsubj", "nsubjpass")),
                    "subject_of_asked": float(relation in ("nsubj", "nsubjpass")
                                              and bool(verb) and _stem(verb) in asked_stems),
                    "same_relation": float(role is not None
                                           and _RELATIONS.get(relation) == role[1]),
                    "role_match": float(role is not None and _RELATIONS.get(relation) == role[1]
                                        and _stem(verb) == role[0]),
                    "passage_prior": 1.0 / (1 + index),
                    "bm25_share": item.bm25 / best_bm25 if best_bm25 > 0 else 0.0,
                    "support": 0.0,
                    "words": np.log1p(len(span_words)),
                    "capitalised": float(span[:1].isupper()),
                    "coverage": coverage, "names_found": names_found,
                    "has_focus": float(bool(span_words & focus_words)),
                    "tree_closeness": sum(reach) / len(reach) if reach else 0.0,
                    "tree_nearest": max(reach, default=0.0),
                    "tree_head": 1.0 / (1.0 + distances[head][root])
                    if root is not None and head in distances and head not in span_stems else 0.0,
                    "focus": float(kind.focus is not None and kind.focus in {
                        _stem(w) for w in _WORD.findall(
                            item.text[max(0, m_start - 20):m_end + 20].lower())}),
                }
                known = found.get(key)
                if known is None or _better(features, known.features):
                    found[key] = Candidate(key, index, m_start, m_end, label, features)
    found = _full_names(found, support)
    for key, candidate in found.items():
        candidate.features["support"] = np.log(support[key])
        candidate.features["best_fit"] = best_fit
        candidate.features["bm25_signal"] = best_bm25 / (
            best_bm25 + 8.0 * max(1, len(asked_stems)) ** 0.5)
    return list(found.values())


def _tree_distances(text: str, tokens: Sequence[tuple[int, int, int]], first: int, last: int,
                    stems: set[str]) -> dict[str, list[float]]:
    """For each question word in the sentence ``tokens[first:last]``, how many dependency
    edges every token of the sentence is from it: an answer hangs close to the words the
    question shares with its sentence in the parse, not just in the text."""
    sources: dict[str, list[int]] = {}
    for i in range(first, last):
        stem = _stem(text[tokens[i][0]:tokens[i][1]].lower())
        if stem in stems:
            sources.setdefault(stem, []).append(i)
    if not sources:
        return {}
    links: dict[int, list[int]] = {i: [] for i in range(first, last)}
    for i in range(first, last):
        head = tokens[i][2]
        if head != i and first <= head < last:
            links[i].append(head)
            links[head].append(i)
    distances = {}
    for stem, origins in sources.items():
        far = dict.fromkeys(origins, 0.0)
        queue = deque(origins)
        while queue:
            i = queue.popleft()
            for j in links[i]:
                if j not in far:
                    far[j] = far[i] + 1.0
                    queue.append(j)
        distances[stem] = [far.get(i, np.inf) for i in range(first, last)]
    return distances


def _root(tokens: Sequence[tuple[int, int, int]], starts: Sequence[int], first: int, last: int,
          start: int, end: int) -> int | None:
    """The position in its sentence of the span's head token: the one whose head is outside."""
    inside = [i for i in range(bisect_left(starts, start, first, last),
                               bisect_left(starts, end, first, last)) if tokens[i][1] <= end]
    outside = [i for i in inside if not start <= tokens[tokens[i][2]][0] < end]
    chosen = outside or inside
    return chosen[0] - first if chosen else None


def _acronyms(question: str) -> set[str]:
    """What the names in the question abbreviate to: a question about the "Amalgamated Union
    of Locomotive Staff" is not answered by "AULS"."""
    found = set()
    for name in re.finditer(r"[A-Z][\w'-]*(?:\s+(?:(?:of|and|for|the|in|on|de)\s+)*[A-Z][\w'-]*)+",
                            question):
        found.add("".join(w[0] for w in name.group().split() if w[0].isupper()))
    return found


def _bounds(text: str, span: tuple, question_words: set[str], focus_words: set[str]
            ) -> set[tuple[int, int]]:
    """Where a candidate starts and ends: trimmed of the question's words and, when it ends in
    the noun a "what type of plea?" question names, also with that noun ("blind plea"), which
    answers such questions about as often as the bare modifier does."""
    bounds = {_trim(text, *span[:3], question_words)}
    last = list(_WORD.finditer(text, span[0], span[1]))[-1:]
    if last and last[0].group().lower() in focus_words:
        bounds.add(_trim(text, *span[:3], question_words - focus_words))
    return bounds


def _coordinated(text: str, spans: Sequence[tuple], question_words: set[str]) -> list[tuple]:
    """Entities of one kind listed with commas and a last "and" / "or" as one answer:
    "Switzerland and the Netherlands", "China, Japan and Korea" (the first one's role). A
    list naming what the question names is not one: "a merger between UPT and what network?"
    is not answered by "UPT and the DuMont Television Network"."""
    entities = sorted(m for m in spans if m[2] not in _PHRASES
                      and not set(_WORD.findall(text[m[0]:m[1]].lower())) <= question_words)
    joined = []
    for first in range(len(entities) - 1):
        chain = entities[first:]
        for a, b in pairwise(chain):
            separator = _LISTED.fullmatch(text[a[1]:b[0]])
            if b[2] != a[2] or separator is None:
                break
            if separator.group(1):  # the list ends at its "and"
                joined.append((chain[0][0], b[1], *chain[0][2:]))
                break
    return joined


def _with_units(text: str, spans: Sequence[tuple]) -> list[tuple]:
    """A count with the currency or unit that follows it: "1.8 million euros" (the pipeline
    often tags only "1.8 million"), as money or a quantity."""
    found = []
    for span in spans:
        unit = _UNIT.match(text, span[1]) if span[2] == "CARDINAL" else None
        if unit:
            label = "MONEY" if unit.group(1).lower() in _CURRENCIES else "QUANTITY"
            found.append((span[0], unit.end(), label, *span[3:]))
    return found


def _years(text: str, spans: Sequence[tuple]) -> list[tuple]:
    """The spans with each date that holds a year cut to the year: "what year?" is answered
    "1943", not "7 January 1943" (29 of XQuAD's 31 year answers are the year alone)."""
    kept = []
    for span in spans:
        years = list(_YEAR.finditer(text, span[0], span[1])) if span[2] == "DATE" else []
        kept += [(m.start(), m.end(), *span[2:]) for m in years] or [span]
    return kept


def _full_names(found: dict[str, Candidate], support: dict[str, int]) -> dict[str, Candidate]:
    """One person however the evidence names them: "Kerry" is shown as "John Kerry" (where
    the full name occurs), judged by the better of the two mentions and counted with both."""
    people = [c for c in found.values() if c.label == "PERSON"]
    merged = dict(found)
    for short in people:
        longer = [c for c in people if c.key.endswith(" " + short.key)]
        if not longer:
            continue
        full = max(longer, key=lambda c: len(c.key))
        best = short if _better(short.features, full.features) else full
        merged[full.key] = Candidate(full.key, full.passage, full.start, full.end, full.label,
                                     best.features)
        support[full.key] += support[short.key]
        del merged[short.key]
    return merged


def _trim(text: str, start: int, end: int, label: str, question_words: set[str]
          ) -> tuple[int, int]:
    """The span without edge punctuation, a possessive ending, dangling words ("Church in",
    "design and"; "at least 15" stays whole) or the question's own words at either end: "AFP
    news agency" answers "which news agency?" as "AFP". A name's capitalised words stay
    ("David G. Booth" for a question about the "Booth School")."""
    asked = question_words - _STOP
    words = list(_WORD.finditer(text, start, end))

    def dangling(word: str, edge: set[str]) -> bool:  # a name's own words stay: "Booth"
        lowered = word.lower()
        return lowered in edge or lowered in asked and (label in _PHRASES or word == lowered)

    first, last = 0, len(words)
    while first < last and dangling(words[first].group(), _LINKING):
        first += 1
    while last > first and dangling(words[last - 1].group(), _TRAILING):
        last -= 1
    if first == last:
        return start, start
    start = words[first].start() if first else start
    end = words[last - 1].end() if last < len(words) else end
    span = _POSSESSIVE.sub("", text[start:end])  # "Darwin's theory": Darwin
    lead = len(span) - len(span.lstrip(_EDGE))
    return start + lead, start + lead + len(span.strip(_EDGE))


def _better(new: dict[str, float], old: dict[str, float]) -> bool:
    """Of two occurrences of one span, keep the one in the sentence that fits best."""
    return (new["fit"] + new["closeness"] + new["type_fit"]
            > old["fit"] + old["closeness"] + old["type_fit"])


def confidence_signals(features: Sequence[dict[str, float]], scores: np.ndarray
                       ) -> dict[str, float]:
    """What the confidence is computed from: the best span's score and its lead over the
    rest, and how well the evidence as a whole matches the question."""
    order = np.argsort(-scores, kind="stable")
    top = features[order[0]]
    exp = np.exp(scores - scores.max())
    margin = scores[order[0]] - scores[order[1]] if len(order) > 1 else 3.0
    return {"top_score": float(scores[order[0]]), "margin": min(float(margin), 3.0),
            "top_probability": float(exp[order[0]] / exp.sum()), "best_fit": top["best_fit"],
            "bm25_signal": top["bm25_signal"], "type_fit": top["type_fit"],
            "overlap": top["overlap"], "coverage": top["coverage"],
            "names_found": top["names_found"]}


def read(question: str, query: np.ndarray, evidence: Sequence[Evidence],
         threshold: float | None = None, weights: ReaderWeights | None = None) -> Reading:
    """The best answer span in the evidence, or no answer when the confidence is below
    ``threshold`` (by default the one fitted with the weights)."""
    weights = weights or default_weights()
    threshold = weights.threshold if threshold is None else threshold
    found = candidates(question, query, evidence)
    if not found:
        return Reading(None, 0.0)
    scores = weights.span.scores([c.features for c in found])
    order = np.argsort(-scores, kind="stable")
    top = found[order[0]]
    signals = confidence_signals([c.features for c in found], scores)
    confidence = float(1.0 / (1.0 + np.exp(-weights.confidence.scores([signals])[0])))
    considered = tuple((evidence[found[i].passage].text[found[i].start:found[i].end],
                        round(float(scores[i]), 4)) for i in order)
    if confidence < threshold:
        return Reading(None, confidence, candidates=considered)
    return Reading(evidence[top.passage].text[top.start:top.end], confidence, top.passage,
                   top.start, top.end, considered)
