"""Chat turns: follow-up questions resolved against the conversation, offline and explainably.

"who said it was their fight?" then "where was he speaking?" becomes "where was John Kerry
speaking?": a person pronoun is replaced by the previous turn's answer (or, while no answer was
extracted, the most salient person in the question's best passage); "it" by the previous turn's
main named thing; "and in 2019?" rebuilds the previous question, "in which minute?" is searched
with it and its answer; a known surname becomes the full name; a short follow-up, one that
starts with "and" / "what about", says "they" or "that ..." carries the previous turn's topic
(its named entities and its article's headline entities). A question that names its own
subject is a topic switch and stays as typed. Every change is listed, so the UI can show
exactly what was searched.

The rules need no model: capitalised spans, a few cue words, and overlap with the question.
What they cannot name, the learned term selector adds (qa/term_selection.py: words of the
current thread a standalone question would hold, "+ Bob Newhart"). The evaluation lives with
the evaluation code (qa/dialogue_evaluation.py, `articleqa eval`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NamedTuple

from qa.chunking import split_sentences
from qa.metrics import contains_answer
from qa.search import MAX_QUESTION_CHARS, SearchContext
from qa.term_selection import TermSelector, packaged_selector
from qa.words import REPORTING_VERBS, STOP_WORDS, TITLES, content_words

if TYPE_CHECKING:
    from qa.results import Answer

PERSON_PRONOUNS = {"he", "him", "she", "his", "hers", "her", "himself", "herself"}
POSSESSIVE = {"his", "hers"}
THING_PRONOUNS = {"it", "its"}
GROUP_PRONOUNS = {"they", "them", "their", "theirs"}
PRONOUNS = PERSON_PRONOUNS | THING_PRONOUNS | GROUP_PRONOUNS
OBJECTS = {"him", "them"}  # never the subject the same question names
CONTINUATIONS = ("and ", "what about ", "how about ", "also ")
# words that make a question a clause rather than a fragment ("in which minute?")
VERBS = frozenset("""
is are was were be been being am do does did done has have had will would can could shall
should may might must
""".split())  # noqa: SIM905
DEMONSTRATIVES = {"that", "this", "these", "those"}
PREPOSITIONS = {"in", "on", "at", "for", "from", "by", "to", "of", "with", "about", "after",
                "before", "during", "since", "until"}
FRAGMENT_WORDS = 4  # "what about Ramadi?", "in which minute?": at most this many words
CONTEXT_TURNS = 2  # earlier turns whose words join a follow-up's search
MAX_HISTORY_TURNS = 20  # turns a client may send as the conversation so far
MAX_TURN_CHARS = MAX_QUESTION_CHARS  # per question / answer in that history
# Capitalised words that name organisations or places, not people.
NON_PERSON = frozenset("""
union council office party labs rovers united observatory stadium street road lane bridge river
hills government ministry department agency company city town district province region court
university school hospital station airport bank group command forces army state states alliance
commission network rail railway club league cup shield trophy wire daily news times courier
press post staff members people
""".split())  # noqa: SIM905

_TOKEN = re.compile(r"[^\W\d_](?:[\w'’/\-]|\.(?=\w))*|\d(?:[\w/\-]|[.,](?=\d))*", re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)


def _capitalised(token: str) -> bool:
    return token[:1].isupper()


def _strip_token(token: str) -> str:
    token = token.rstrip(".’'-")
    return token[:-2] if token.endswith(("'s", "’s")) else token


def named_spans(text: str) -> list[tuple[str, bool]]:
    """Runs of capitalised words, each with whether it looks like a person.

    A capitalised word that also appears in lower case in ``text`` (a sentence's first word:
    "Speaking", "The") is not a name; leading titles ("Secretary of State") are dropped and
    mark the rest as a person, as does a speech verb next to the span ("Kerry said").
    """
    tokens = [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]
    lower = {t.lower() for t, _, _ in tokens if not _capitalised(t)}
    spans: list[tuple[str, bool]] = []
    i = 0
    while i < len(tokens):
        if not _capitalised(tokens[i][0]):
            i += 1
            continue
        j = i
        run = []
        while j < len(tokens) and _capitalised(tokens[j][0]):
            run.append(j)
            # a span ends at punctuation between words ("Kerry, the ...")
            if j + 1 < len(tokens) and text[tokens[j][2]:tokens[j + 1][1]].strip():
                j += 1
                break
            j += 1
        words = [_strip_token(tokens[n][0]) for n in run]
        starts = i == 0 or text[:tokens[i][1]].rstrip()[-1:] in ".!?\"“”:"
        if starts and words[0].lower().endswith(("ing", "ed", "ly")):
            words.pop(0)  # "Speaking in ...", "Asked about ..." open a sentence
            run.pop(0)
        titled = False
        while words and (words[0].lower() in TITLES or words[0].lower() in lower
                         or words[0].lower() in STOP_WORDS):
            titled = titled or words[0].lower() in TITLES
            words.pop(0)
            run.pop(0)
        before = tokens[i - 1][0].lower() if i > 0 else ""
        titled = titled or before in TITLES or (before == "of" and i > 1
                                                and tokens[i - 2][0].lower() in TITLES)
        if words:
            after = [_strip_token(t).lower() for t, _, _ in tokens[j:j + 4]]
            gap = text[tokens[j - 1][2]:tokens[j][1]].strip() if j < len(tokens) else ""
            speaker = (bool(after) and after[0] in REPORTING_VERBS) or before in REPORTING_VERBS
            # "Renée Duquesne, who leads", "Tomas Brennick, the union's general secretary"
            appositive = gap == "," and bool(after) and (
                after[0] == "who" or (after[0] in ("the", "a", "its", "their")
                                      and bool(TITLES & set(after[1:]))))
            speaker = speaker or appositive
            org = any(w.lower() in NON_PERSON for w in words)
            person = not org and (titled or speaker) and not words[-1].isupper()
            spans.append((" ".join(words), person))
        i = max(j, i + 1)
    return spans


# --- turns -----------------------------------------------------------------------------------


@dataclass
class Turn:
    question: str  # as typed
    resolved: str  # as the rules resolved it (`Resolution.core`)
    answer: str | None = None
    person: str | None = None  # who "he" / "she" refers to next
    thing: str | None = None  # what "it" refers to next
    topic: list[str] = field(default_factory=list)  # carried by short follow-ups
    source: str | None = None  # the article its answer (or best passage) came from
    title: str = ""  # that article's headline


@dataclass
class Resolution:
    question: str
    resolved: str  # as searched
    changes: list[str] = field(default_factory=list)  # "he → John Kerry", "+ Iraq"
    by_rules: str | None = None  # before the term selector added words (later turns build on it)

    @property
    def changed(self) -> bool:
        return self.resolved != self.question

    @property
    def core(self) -> str:
        """The question as the rules resolved it: what the turn is remembered by."""
        return self.by_rules or self.resolved


def _asks_who(question: str) -> bool:
    return bool(re.match(r"\W*(?:and\s+)?(?:who|whom|whose)\b", question, re.IGNORECASE))


def _salient(question: str, passages: Sequence, answer: str | None,
             known_people: Iterable[str] = ()) -> tuple[str | None, str | None, list[str]]:
    """(person, thing, topic terms) of a finished turn.

    The person is the answer if there is one; else a person the question names (the one a
    pronoun was resolved to: the conversation stays on them); else, for a "who" question or
    one naming nobody, the best-placed person in the top passages.
    """
    known_people = set(known_people)
    asked = {w.lower() for w in _WORD.findall(question)}
    terms = set(content_words(question))
    scores: Counter[str] = Counter()
    people: set[str] = set()
    for rank, passage in enumerate(passages[:5]):
        weight = 1.0 / (rank + 1) ** 0.5
        for start, end in split_sentences(passage.text):
            sentence = passage.text[start:end]
            overlap = len(terms & set(content_words(sentence)))
            for span, person in named_spans(sentence):
                if {w.lower() for w in span.split()} <= asked:
                    continue  # a name the question already says is not its answer
                scores[span] += weight * (0.2 + overlap ** 2)  # the sentence that matches
                if person:
                    people.add(span)
    # "Kerry" is "John Kerry": credit the full name with its surname's mentions
    for short in list(scores):
        longer = [s for s in scores if s != short and s.endswith(" " + short)]
        if longer:
            best = max(longer, key=lambda s: scores[s])
            scores[best] += scores.pop(short)
            if short in people:
                people.add(best)
    ranked = [s for s, _ in scores.most_common()]
    question_spans = named_spans(question)
    named = [s for s, p in question_spans if p or s in known_people or s in people]
    asks_who = _asks_who(question)
    person = named[0] if named and not asks_who else None
    person = person or next((s for s in ranked if s in people), None)
    if answer and answer[:1].isupper() and len(answer.split()) <= 5:
        # the reader's answer is "he" next when the passages say it is a person, or when
        # it is a name that answers "who"
        full = next((s for s in people if s == answer or s.endswith(" " + answer)), None)
        if full:
            person = full
        elif _a_name(answer) and (asks_who or not people):
            person = answer
    things = [s for s, p in question_spans if not p and s not in known_people
              and s != person]
    thing = things[0] if things else next(
        (s for s in ranked if s not in people and s != person and len(s) > 2), None)
    topic = list(dict.fromkeys(things))
    if passages:
        topic += [s for s, p in named_spans(passages[0].title) if not p and s not in topic]
    topic = [t for t in topic if not any(t != o and t in o for o in topic)]
    return person, thing, topic[:2]


def self_contained(question: str) -> bool:
    """Whether a question names its own subject: it names something, and every pronoun in it
    points inside it: after one of its names ("Where was John Kerry speaking when he was
    asked...?"), or "their" after a plural ("How many households left their homes in
    Norrbridge?"). "him" / "them" point outside ("What did Merkel say to him?")."""
    spans = named_spans(question)
    if not spans:
        return False
    first_name = min(question.find(span) for span, _ in spans)
    plural_before = False
    for match in _WORD.finditer(question):
        word = match.group().lower()
        before = match.start() < first_name and not (word in GROUP_PRONOUNS and plural_before)
        if word in PRONOUNS and (before or word in OBJECTS):
            return False
        plural_before = plural_before or (word.endswith("s") and word not in STOP_WORDS
                                          and word not in PRONOUNS and len(word) > 3)
    return True


def _continuation(question: str) -> str | None:
    lowered = question.lower()
    return next((c for c in CONTINUATIONS if lowered.startswith(c)), None)


def _fragment(question: str) -> bool:
    """A few words, no pronoun and no verb: "in which minute?", "and Havelund?", "how
    bright?". Without a tagger, a verb is presumed unless the words are two, or open with a
    preposition or a continuation ("Who named the comet?" is a question)."""
    words = [w.lower() for w in _WORD.findall(question)]
    if len(words) > FRAGMENT_WORDS or set(words) & (VERBS | PRONOUNS):
        return False
    return len(words) <= 2 or words[0] in PREPOSITIONS or _continuation(question) is not None


def switches_topic(question: str) -> bool:
    """A follow-up searched on its own: it names its own subject and is not an ellipsis
    ("and Havelund?" continues the last question)."""
    return self_contained(question) and not (_continuation(question) and _fragment(question))


def _number(text: str) -> re.Match | None:
    return re.search(r"\b\d[\d,.]*\b", text)


def complete_ellipsis(fragment: str, previous: str) -> str | None:
    """"and in 2019?" / "what about Ramadi?" after a full question: that question with the
    fragment's number or name in place of its own, or None when nothing lines up."""
    core = fragment.strip().rstrip("?").strip()
    first, _, rest = core.partition(" ")
    if _number(core) and first.lower() in PREPOSITIONS:
        core = rest  # "in 2019" replaces the year, its preposition stays the question's
    number, theirs = _number(core), _number(previous)
    if number and theirs:
        return previous[:theirs.start()] + number.group() + previous[theirs.end():]
    names = named_spans(core)
    if names and " ".join(n for n, _ in names) == core:
        person = names[0][1]
        own = named_spans(previous)
        target = next((n for n, p in reversed(own) if p == person), None) or (
            own[-1][0] if own else None)
        if target:
            return previous.replace(target, core, 1)
    return None


def _a_name(text: str) -> bool:
    """"Joe Raposo", not "At age six," or "The Electric Company"."""
    spans = named_spans(text)
    return len(spans) == 1 and spans[0][0] == text.strip() and not any(
        w.lower() in NON_PERSON for w in text.split())


def full_names(question: str, known: Iterable[str]) -> tuple[str, list[str]]:
    """"How long did Shilton play?" with "Peter Shilton" known: the full name, each time."""
    changes = []
    for span, _ in named_spans(question):
        if " " in span:
            continue
        full = next((k for k in known if k.endswith(" " + span)), None)
        if full and full not in question:
            question = re.sub(rf"\b{re.escape(span)}\b", full, question, count=1)
            changes.append(f"{span} → {full}")
    return question, changes


def _replace_word(text: str, word: str, replacement: str) -> str:
    return re.sub(rf"\b{re.escape(word)}\b", replacement, text, count=1, flags=re.IGNORECASE)


class Conversation:
    """The turns so far; ``resolve`` a new question against them, then ``record`` its answer.
    ``selector`` completes the rules' resolution with words of the earlier turns
    (qa/term_selection.py): the packaged one, another, or None for the rules alone (what a
    selector is trained on)."""

    def __init__(self, turns: Iterable[Turn] = (),
                 selector: TermSelector | Literal["packaged"] | None = "packaged"):
        self.turns: list[Turn] = list(turns)
        self.selector = packaged_selector() if selector == "packaged" else selector

    def resolve(self, question: str) -> Resolution:
        question = " ".join(question.split())
        if not self.turns:
            return Resolution(question, question)
        if switches_topic(question):
            named, changes = full_names(question, self._known_names())
            return Resolution(question, named, changes)
        resolution = self._apply_rules(question)
        if self.selector:
            added = self.selector.select(question, resolution.resolved, self.turns)
            if added:
                resolved = resolution.resolved.rstrip()
                resolved = (f"{resolved[:-1]}, {', '.join(added)})" if resolved.endswith(")")
                            else f"{resolved} ({', '.join(added)})")
                resolution = Resolution(question, resolved,
                                        resolution.changes + [f"+ {a}" for a in added],
                                        resolution.resolved)
        return resolution

    def _known_names(self) -> list[str]:
        return [n for t in self.turns for n in (t.person, t.thing, *t.topic) if n]

    def _apply_rules(self, question: str) -> Resolution:
        """A follow-up resolved by the rules: pronouns, ellipsis, fragments, carried topic."""
        named, changes = full_names(question, self._known_names())
        last = self.turns[-1]
        resolved = named
        words = [w.lower() for w in _WORD.findall(question)]
        continuation = _continuation(question)
        # "and what did the general promise?" -> drop the connective, keep the topic
        if continuation in ("and ", "also "):
            resolved = resolved[len(continuation):]
        if _fragment(question):
            completed = (complete_ellipsis(question[len(continuation):], last.resolved)
                         if continuation else None)
            if completed:  # "and Havelund?" -> "what share did Havelund get?"
                return Resolution(question, completed, [f"… → {completed}"])
            # "in which minute?": the fragment asks about the last question and its answer
            added = [t for t in (last.answer, last.resolved.rstrip("?"))
                     if t and len(t.split()) <= 20]
            if added:
                resolved = f"{resolved.rstrip(' ?')}? ({'; '.join(added)})"
                return Resolution(question, resolved, changes + [f"+ {t}" for t in added])
        swaps: list[str] = []  # pronouns replaced by what they stand for
        for pronoun in [w for w in words if w in PERSON_PRONOUNS][:1]:
            if not last.person:
                break
            possessive = pronoun in POSSESSIVE or (
                pronoun == "her" and not re.search(r"\bher\b\s*(?:[?.!,]|$|to\b|about\b|"
                                                   r"for\b|with\b)", resolved, re.IGNORECASE))
            target = f"{last.person}'s" if possessive else last.person
            resolved = _replace_word(resolved, pronoun, target)
            swaps.append(f"{pronoun} → {target}")
        for pronoun in [w for w in words if w in THING_PRONOUNS][:1]:
            if not last.thing:
                break
            target = f"{last.thing}'s" if pronoun == "its" else last.thing
            resolved = _replace_word(resolved, pronoun, target)
            swaps.append(f"{pronoun} → {target}")
        changes += swaps
        present = {w.lower() for w in _WORD.findall(resolved)}
        short = len(content_words(resolved)) <= 3 and not named_spans(question)
        pointed = DEMONSTRATIVES & set(words) and last.answer and len(last.answer.split()) <= 6
        unresolved = PRONOUNS & set(words) and not swaps  # "he", but who is unknown
        carry = (continuation is not None or short or pointed or unresolved
                 ) and not (swaps and not continuation)
        if carry:  # "that player" is the last answer; short follow-ups keep the topic
            terms = [t for t in ([last.answer] if pointed else []) + last.topic
                     if not {w.lower() for w in _WORD.findall(t)} <= present]
            if terms:
                resolved = f"{resolved.rstrip()} ({', '.join(terms)})"
                changes.extend(f"+ {t}" for t in terms)
        return Resolution(question, resolved, changes)

    def record(self, resolution: Resolution, answer) -> Turn:
        """Remember a finished turn (``answer`` is a `qa.Answer`)."""
        people = [t.person for t in self.turns if t.person]
        person, thing, topic = _salient(resolution.core, answer.passages, answer.text,
                                        people)
        last = self.turns[-1] if self.turns else None
        if last and not topic:
            topic = last.topic
        turn = Turn(resolution.question, resolution.core, answer.text,
                    person or (last.person if last else None),
                    thing or (last.thing if last else None), topic,
                    answer.passages[0].source if answer.passages else None,
                    answer.passages[0].title if answer.passages else "")
        self.turns.append(turn)
        return turn

    def search_context(self, question: str) -> SearchContext | None:
        """What a follow-up is searched with besides its resolved words: the last
        `CONTEXT_TURNS` turns' questions and answers, and the articles earlier turns read
        from. None for a first question, and for one that names its own subject (see
        `self_contained`): a topic switch stays a switch."""
        if not self.turns or switches_topic(question):
            return None
        text = " ".join(f"{t.question} {t.answer or ''}".strip()
                        for t in self.turns[-CONTEXT_TURNS:])
        sources = Counter(t.source for t in self.turns if t.source)
        return SearchContext(text, tuple(sorted(sources.items())))

    def ask(self, kb, question: str, k: int = 5, **filters) -> Exchange:
        """Resolve, ask ``kb`` with the conversation's context, record: (Resolution, Answer).
        The one path every front end takes (the chat, ``POST /api/ask``, Gradio's ``/ask``,
        `ArticleQA.conversation`)."""
        resolution = self.resolve(question)
        answer = kb.ask(resolution.resolved, k=k, context=self.search_context(question),
                        **filters)
        self.record(resolution, answer)
        return Exchange(resolution, answer)

    def remember(self, question: str, answer: str | None) -> Turn:
        """Record a turn known only by its words (a client's ``history``): the question is
        resolved as it would have been, and with no passages to judge by, the answer is whom
        "he" / "she" means next only when the question asked who."""
        resolution = self.resolve(question)
        people = [t.person for t in self.turns if t.person]
        person, thing, topic = _salient(resolution.core, (), None, people)
        if _asks_who(resolution.core) and answer and answer[:1].isupper() \
                and len(answer.split()) <= 5:
            person = answer
        last = self.turns[-1] if self.turns else None
        turn = Turn(resolution.question, resolution.core, answer,
                    person or (last.person if last else None),
                    thing or (last.thing if last else None),
                    topic or (last.topic if last else []))
        self.turns.append(turn)
        return turn

    @classmethod
    def from_history(cls, history: Iterable) -> Conversation:
        """The conversation so far from ``[{"question": ..., "answer": ... or None}]`` (at
        most `MAX_HISTORY_TURNS`, each text at most `MAX_TURN_CHARS`); a bad shape is a
        `ValueError` / `TypeError` saying which turn and why."""
        if isinstance(history, str | bytes | dict) or not isinstance(history, Iterable):
            raise TypeError(f"history must be a list of {{question, answer}}, "
                            f"got {type(history).__name__}")
        history = list(history)
        if len(history) > MAX_HISTORY_TURNS:
            raise ValueError(f"history has {len(history)} turns; the limit is "
                             f"{MAX_HISTORY_TURNS} (send the most recent ones)")
        chat = cls()
        for number, item in enumerate(history):
            if not isinstance(item, dict):
                raise TypeError(f"history[{number}] must be an object with question and "
                                f"answer, got {type(item).__name__}")
            extra = set(item) - {"question", "answer"}
            if extra:
                raise ValueError(f"history[{number}] has unknown fields: "
                                 f"{', '.join(sorted(map(str, extra)))}")
            question, answer = item.get("question"), item.get("answer")
            for name, value in (("question", question), ("answer", answer)):
                if value is None and name == "answer":
                    continue
                if not isinstance(value, str):
                    raise TypeError(f"history[{number}].{name} must be a string, got "
                                    f"{type(value).__name__}")
                if len(value) > MAX_TURN_CHARS:
                    raise ValueError(f"history[{number}].{name} is {len(value):,} "
                                     f"characters; the limit is {MAX_TURN_CHARS:,}")
            if not question.strip():
                raise ValueError(f"history[{number}].question is empty")
            chat.remember(question, (answer or "").strip() or None)
        return chat


class Exchange(NamedTuple):
    """One asked turn: how the question was resolved, and the answer to the resolved one."""

    resolution: Resolution
    answer: Answer


class Chat:
    """A conversation with one index (`ArticleQA.conversation()`): ``ask`` resolves the
    question against the turns so far, searches, reads and records the turn."""

    def __init__(self, kb, history: Iterable = ()):
        self.kb = kb
        self.conversation = Conversation.from_history(history)

    @property
    def turns(self) -> list[Turn]:
        return self.conversation.turns

    def ask(self, question: str, k: int = 5, **filters) -> Exchange:
        """(Resolution, Answer) for ``question`` after the turns so far; ``filters`` as in
        `ArticleQA.ask`."""
        return self.conversation.ask(self.kb, question, k, **filters)


def cited_ranks(answer) -> list[int]:
    """The passages an answer rests on: those holding its span, else those quoting its text."""
    if not answer.text:
        return []
    spans = [p.rank for p in answer.passages if p.answer_span]
    if spans:
        return spans
    return [p.rank for p in answer.passages if contains_answer(p.text, [answer.text])][:3]
