"""Scoring the follow-up resolver (qa/conversation.py) on multi-turn data, with and without it.

Three kinds of data, three measures (`articleqa eval FILE` picks by the file):

* ``evaluate_conversations``: the team's own conversations over a corpus
  (samples/conversations.jsonl): resolved keywords, article hits, answers; each follow-up as
  the chat asks it beside the same words typed alone and a person's standalone form; topic
  switches kept (searched on their own words, unchanged).
* ``evaluate_passage_dialogues``: QuAC-style dialogues, each about its own passage (all passages
  indexed together). Every follow-up is asked three ways: ``typed`` (the question alone),
  ``resolved`` (the `Conversation` with the earlier turns recorded as the user saw them: the
  system's own answers) and ``resolved-gold`` (the earlier turns recorded with the reference
  answers instead). Scored: the dialogue's passage ranked first / in the top k, the answer in
  the top passage, and the reader's EM / F1 against all reference answers (SQuAD v2 rules: a
  no-answer turn is right only when the reader abstains).
* ``evaluate_rewrite_dialogues``: dialogues with a person's standalone rewrite of each follow-up
  and no passages (CANARD, TREC CAsT): which of the content words the rewrite adds to the
  question the resolved question has (recall), and which of the words the resolver added are in
  the rewrite (precision); ``rewrite_words`` defines them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Literal

from tqdm import tqdm

from qa.conversation import Conversation, Resolution, Turn
from qa.datasets import Dialogue, Query
from qa.metrics import contains_answer, exact_match, f1_score, mean_of, percentiles
from qa.results import Answer, Passage
from qa.search import SearchContext
from qa.term_selection import TermSelector
from qa.words import terms

TYPED, RESOLVED, RESOLVED_GOLD = "typed", "resolved", "resolved-gold"
HISTORY = "resolved+history"  # what the product does: resolved words, plus the context


def _hit_rank(passages, relevant: dict[str, int]) -> int | None:
    return next((p.rank for p in passages if relevant.get(p.source, 0) > 0), None)


def _share(values: Iterable[bool | float | None]) -> float | None:
    mean = mean_of(values)
    return None if mean is None else round(mean, 4)


def _ratio(part: float | None, whole: float | None) -> float | None:
    return round(part / whole, 4) if part is not None and whole else None


def _p50(values: Sequence[float]) -> float | None:
    return round(percentiles(values, (50,))["p50"], 2) if values else None


def _ask_once(kb, asked: dict, question: str, k: int, context: SearchContext | None = None
              ) -> tuple[Answer, float]:
    """(answer, ms), asking ``kb`` only the first time ``question`` is searched."""
    if (question, context) not in asked:
        begun = time.perf_counter()
        answer = kb.ask(question, k=k, context=context)
        asked[question, context] = (answer, 1000 * (time.perf_counter() - begun))
    return asked[question, context]


# --- the team's conversations over a corpus ----------------------------------------------------


def evaluate_conversations(kb, dialogues: Sequence[Dialogue], k: int = 5,
                           progress: bool = False, desc: str = "Conversations") -> dict:
    """Ask every conversation with and without follow-up resolution; score each turn.

    ``resolution``: share of follow-ups whose resolved question holds all expected keywords.
    ``article_hit@1/@k``: the expected article ranks first / in the top k, resolved vs raw.
    ``answer_in_passages@k``: an acceptable answer appears in the top k passages.
    ``answer_em``: the extracted answer matches (only turns where the reader answered).
    ``resolved_over_standalone``: follow-ups' answer in the top passage as the chat asks
    them, over the same for their standalone forms asked alone (target >= 0.95).
    ``topic_switches_kept``: switches searched exactly as typed, with no history.
    """
    rows = []
    for dialogue in tqdm(dialogues, unit=" conversation", desc=desc, disable=not progress):
        chat = Conversation()
        asked: dict = {}  # the question as typed and the standalone form are often the same
        for number, turn in enumerate(dialogue.turns, 1):
            alone = chat.search_context(turn.question) is None
            resolution, answer = chat.ask(kb, turn.question, k=k)
            raw = _ask_once(kb, asked, turn.question, k)[0] if number > 1 else answer
            standalone = (_ask_once(kb, asked, turn.rewrite, k)[0]
                          if number > 1 and turn.rewrite else None)
            judged = bool(turn.answers)
            rows.append({
                "id": turn.id, "conversation": dialogue.id, "turn": number,
                "question": turn.question, "resolved": resolution.resolved,
                "changes": resolution.changes,
                "keywords_ok": all(w.lower() in resolution.resolved.lower()
                                   for w in turn.resolved_keywords) if number > 1 else None,
                "article": bool(turn.relevant),
                "hit_rank": _hit_rank(answer.passages, turn.relevant),
                "raw_hit_rank": _hit_rank(raw.passages, turn.relevant),
                "answer_in_passages": any(contains_answer(p.text, turn.answers)
                                          for p in answer.passages) if judged else None,
                "answer_at_1": contains_answer(answer.passages[0].text, turn.answers)
                if judged and answer.passages else None,
                "raw_answer_at_1": contains_answer(raw.passages[0].text, turn.answers)
                if judged and raw.passages else None,
                "standalone_answer_at_1": contains_answer(standalone.passages[0].text,
                                                          turn.answers)
                if judged and standalone and standalone.passages else None,
                "switch": turn.topic_switch,
                "switch_kept": alone and not resolution.changed
                if turn.topic_switch else None,
                "answer": answer.text,
                "answer_em": bool(exact_match(answer.text, turn.answers))
                if judged and answer.text is not None else None,
            })
    follow_ups = [r for r in rows if r["turn"] > 1]
    located = [r for r in follow_ups if r["article"]]
    metrics = {
        "conversations": len(dialogues), "turns": len(rows), "follow_ups": len(follow_ups),
        "resolution": _share(r["keywords_ok"] for r in follow_ups),
        "article_hit@1": _share(r["hit_rank"] == 1 for r in rows if r["article"]),
        "follow_up_article_hit@1": _share(r["hit_rank"] == 1 for r in located),
        f"follow_up_article_hit@{k}": _share(r["hit_rank"] is not None for r in located),
        "follow_up_article_hit@1_unresolved": _share(r["raw_hit_rank"] == 1 for r in located),
        f"follow_up_article_hit@{k}_unresolved": _share(r["raw_hit_rank"] is not None
                                                        for r in located),
        f"answer_in_passages@{k}": _share(r["answer_in_passages"] for r in rows),
        "follow_up_answer_in_passage@1": _share(r["answer_at_1"] for r in follow_ups),
        "follow_up_answer_in_passage@1_unresolved": _share(r["raw_answer_at_1"]
                                                           for r in follow_ups),
        "follow_up_answer_in_passage@1_standalone": _share(
            r["standalone_answer_at_1"] for r in follow_ups),
        "resolved_over_standalone": _ratio(
            mean_of(r["answer_at_1"] for r in follow_ups
                    if r["standalone_answer_at_1"] is not None),
            mean_of(r["standalone_answer_at_1"] for r in follow_ups)),
        "topic_switches": sum(1 for r in follow_ups if r["switch"]),
        "topic_switches_kept": _share(r["switch_kept"] for r in follow_ups),
        "answer_em": _share(r["answer_em"] for r in rows),
    }
    return {"metrics": metrics, "rows": rows}


# --- dialogues over their own passages (QuAC) ---------------------------------------------------


def _passage_row(dialogue: Dialogue, number: int, variant: str, turn, searched: str,
                 changes: list[str], answer: Answer, ms: float, k: int) -> dict:
    golds = turn.answers if turn.answerable else []
    rank = _hit_rank(answer.passages, turn.relevant)
    return {
        "id": turn.id, "dialogue": dialogue.id, "turn": number, "variant": variant,
        "question": turn.question, "searched": searched, "changes": changes,
        "answerable": turn.answerable, "hit_rank": rank,
        "answer_at_1": contains_answer(answer.passages[0].text, golds)
        if golds and answer.passages else (False if golds else None),
        f"answer_in_passages@{k}": any(contains_answer(p.text, golds)
                                       for p in answer.passages[:k]) if golds else None,
        "prediction": answer.text, "em": exact_match(answer.text, golds),
        "f1": round(f1_score(answer.text, golds), 4), "ms": round(ms, 2),
        "sources": [p.source for p in answer.passages[:k]],
    }


def _passage_summary(rows: Sequence[dict], k: int) -> dict:
    answerable = [r for r in rows if r["answerable"]]
    return {
        "questions": len(rows), "answerable": len(answerable),
        "changed": _share(bool(r["changes"]) for r in rows),
        "passage_hit@1": _share(r["hit_rank"] == 1 for r in rows),
        f"passage_hit@{k}": _share(r["hit_rank"] is not None for r in rows),
        "answer_in_top_passage": _share(r["answer_at_1"] for r in answerable),
        f"answer_in_passages@{k}": _share(r[f"answer_in_passages@{k}"] for r in answerable),
        "em": _share(r["em"] for r in rows), "f1": _share(r["f1"] for r in rows),
        "em_answerable": _share(r["em"] for r in answerable),
        "f1_answerable": _share(r["f1"] for r in answerable),
        "ask_ms_p50": _p50([r["ms"] for r in rows]),
    }


def evaluate_passage_dialogues(kb, dialogues: Sequence[Dialogue], k: int = 5,
                               progress: bool = False, desc: str = "Dialogues") -> dict:
    """Every turn of every dialogue against the whole index: the first turn as typed (for
    reference), each follow-up ``typed``, ``resolved`` (history: the system's own answers),
    ``resolved-gold`` (history: the reference answers) and ``resolved+history`` (the
    product's path: resolved, and searched with the conversation's `SearchContext`). A
    question searched twice in a dialogue with the same context is asked once: the system is
    deterministic."""
    rows = []
    fresh = 0  # questions sent to kb (a repeat within a dialogue is reused)
    started = time.perf_counter()
    for dialogue in tqdm(dialogues, unit=" dialogue", desc=desc, disable=not progress):
        asked: dict[str, tuple[Answer, float]] = {}
        chats = {RESOLVED: Conversation(), RESOLVED_GOLD: Conversation(),
                 HISTORY: Conversation()}
        for number, turn in enumerate(dialogue.turns, 1):
            answer, ms = _ask_once(kb, asked, turn.question, k)
            rows.append(_passage_row(dialogue, number, TYPED, turn, turn.question, [], answer,
                                     ms, k))
            for variant, chat in chats.items():
                resolution = chat.resolve(turn.question)
                context = chat.search_context(turn.question) if variant == HISTORY else None
                answer, ms = _ask_once(kb, asked, resolution.resolved, k, context)
                chat.record(resolution, answer if variant != RESOLVED_GOLD
                            else replace(answer, text=turn.answer))
                if number > 1:
                    rows.append(_passage_row(dialogue, number, variant, turn,
                                             resolution.resolved, resolution.changes, answer,
                                             ms, k))
        fresh += len(asked)
    firsts = [r for r in rows if r["turn"] == 1]
    variants = {"first turns": _passage_summary(firsts, k)}
    for variant in (TYPED, RESOLVED, RESOLVED_GOLD, HISTORY):
        variants[f"follow-ups {variant}"] = _passage_summary(
            [r for r in rows if r["turn"] > 1 and r["variant"] == variant], k)
    metrics = {
        "dialogues": len(dialogues), "turns": len(firsts) + sum(
            1 for r in rows if r["turn"] > 1 and r["variant"] == TYPED),
        "follow_ups": sum(1 for r in rows if r["turn"] > 1 and r["variant"] == TYPED),
        "questions_asked": fresh, "seconds": round(time.perf_counter() - started, 1),
        "variants": variants,
    }
    return {"metrics": metrics, "rows": rows}


# --- dialogues with human rewrites, no passages (CANARD, CAsT) ----------------------------------


def rewrite_words(question: str, rewrite: str, resolved: str) -> tuple[set[str], set[str]]:
    """(needed, added): the content words the human ``rewrite`` adds to ``question``, and those
    the ``resolved`` question adds. Recall is |needed ∩ added| / |needed|; precision is
    |needed ∩ added| / |added| (an added word the rewrite has is one it needed: both leave out
    the question's own words)."""
    asked = terms(question)
    return terms(rewrite) - asked, terms(resolved) - asked


def replay_rewrites(dialogue: Dialogue, chat: Conversation
                    ) -> Iterator[tuple[int, Query, Resolution, list[Turn], float]]:
    """Each turn of a rewrite dialogue resolved by ``chat``: (number, turn, resolution, the
    turns before it, ms to resolve), then recorded as the chat records one: its reference
    answer (where the data has one) in a passage under the page's title (CANARD's Wikipedia
    article; the chat's would be the cited article's headline)."""
    for number, turn in enumerate(dialogue.turns, 1):
        begun = time.perf_counter()
        resolution = chat.resolve(turn.question)
        ms = 1000 * (time.perf_counter() - begun)
        yield number, turn, resolution, list(chat.turns), ms
        text = turn.answer or ""
        chat.record(resolution, Answer(resolution.resolved, turn.answer, 0.0, [Passage(
            1, 0.0, text, dialogue.id, dialogue.title, dialogue.id, 0, len(text))]))


def rewrite_summary(rows: Sequence[dict], added_key: str) -> dict:
    needed = sum(len(r["needed"]) for r in rows)
    added = sum(len(r[added_key]) for r in rows)
    right = sum(len(set(r["needed"]) & set(r[added_key])) for r in rows)
    reachable = [r for r in rows if r["needed_in_history"]]
    in_history = sum(len(r["needed_in_history"]) for r in rows)
    right_in_history = sum(len(set(r["needed_in_history"]) & set(r[added_key])) for r in rows)
    needing = [r for r in rows if r["needed"]]
    return {
        "follow_ups": len(rows), "needing_words": len(needing),
        "changed": _share(bool(r[added_key]) for r in rows),
        "words_needed": needed, "words_added": added, "words_added_right": right,
        "recall": round(right / needed, 4) if needed else None,
        "precision": round(right / added, 4) if added else None,
        "fully_recovered": _share(set(r["needed"]) <= set(r[added_key]) for r in needing),
        "changed_when_not_needed": _share(bool(r[added_key]) for r in rows if not r["needed"]),
        "needed_in_history": round(in_history / needed, 4) if needed else None,
        "recall_of_history_words": round(right_in_history / in_history, 4)
        if reachable else None,
    }


def evaluate_rewrite_dialogues(dialogues: Sequence[Dialogue], progress: bool = False,
                               desc: str = "Dialogues",
                               selector: TermSelector | Literal["packaged"] | None = "packaged"
                               ) -> dict:
    """Resolve each follow-up against the earlier turns (`replay_rewrites`) and compare its words
    with the human rewrite's; ``typed`` (the question alone) adds no words. ``selector`` as in
    `Conversation` (None: the rules alone)."""
    rows = []
    started = time.perf_counter()
    for dialogue in tqdm(dialogues, unit=" dialogue", desc=desc, disable=not progress):
        history: set[str] = set()
        for number, turn, resolution, _, ms in replay_rewrites(dialogue,
                                                               Conversation(selector=selector)):
            if number > 1 and turn.rewrite:
                needed, added = rewrite_words(turn.question, turn.rewrite, resolution.resolved)
                rows.append({
                    "id": turn.id, "dialogue": dialogue.id, "turn": number,
                    "part": dialogue.id.split(":")[0], "question": turn.question,
                    "rewrite": turn.rewrite, "resolved": resolution.resolved,
                    "changes": resolution.changes, "needed": sorted(needed),
                    "added": sorted(added), "typed_added": [],
                    "needed_in_history": sorted(needed & history), "ms": round(ms, 3),
                })
            history |= terms(turn.question) | terms(turn.answer or "")
    variants = {f"follow-ups {TYPED}": rewrite_summary(rows, "typed_added"),
                f"follow-ups {RESOLVED}": rewrite_summary(rows, "added")}
    by_part: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_part[row["part"]].append(row)
    if len(by_part) > 1:
        variants.update({f"{part} {RESOLVED}": rewrite_summary(part_rows, "added")
                         for part, part_rows in sorted(by_part.items())})
    metrics = {
        "dialogues": len(dialogues), "turns": sum(len(d.turns) for d in dialogues),
        "follow_ups": len(rows), "resolve_ms_p50": _p50([r["ms"] for r in rows]),
        "seconds": round(time.perf_counter() - started, 2), "variants": variants,
    }
    return {"metrics": metrics, "rows": rows}
