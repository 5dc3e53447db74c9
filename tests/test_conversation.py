"""Follow-up resolution (qa/conversation.py): unit cases, the DW seed conversation, and the
multi-turn sample set scored end to end by `articleqa eval`."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from qa.cli import main
from qa.conversation import Conversation, cited_ranks, named_spans
from qa.datasets import DatasetError, load_dataset
from tests.conftest import ROOT, SAMPLES

CONVERSATIONS = ROOT / "samples" / "conversations.jsonl"


def rules():
    """A conversation resolved by the rules alone (the term selector has its own tests)."""
    return Conversation(selector=None)


def passage(text, rank=1, title="", answer_span=None, source="dw.com/iraq"):
    return SimpleNamespace(text=text, rank=rank, title=title, answer_span=answer_span,
                           source=source)


def answer(text, *passages):
    return SimpleNamespace(text=text, passages=list(passages))


KERRY = passage(
    'US Secretary of State John Kerry has offered Iraq support, but said the country\'s '
    'battle with jihadists in the province of Anbar was "their fight." The Iraqi government '
    "has promised a major attack.", title="US on Iraq: 'Their fight'")


def test_named_spans_drop_titles_and_sentence_starts():
    spans = dict(named_spans("Speaking in Jerusalem, Secretary of State John Kerry said the "
                             "Amalgamated Union of Locomotive Staff would talk."))
    assert spans["John Kerry"] is True
    assert spans["Jerusalem"] is False
    assert "Speaking" not in " ".join(spans)


def test_first_question_is_left_alone():
    resolution = rules().resolve("  who said it   was their fight? ")
    assert resolution.resolved == "who said it was their fight?"
    assert not resolution.changed


def test_pronoun_takes_the_previous_answer():
    chat = rules()
    first = chat.resolve("who said it was their fight?")
    chat.record(first, answer("John Kerry", KERRY))
    follow = chat.resolve("where was he speaking?")
    assert follow.resolved == "where was John Kerry speaking?"
    assert follow.changes == ["he → John Kerry"]
    assert chat.resolve("what did his team say?").resolved == "what did John Kerry's team say?"


def test_without_an_answer_the_salient_person_of_the_passages_is_used():
    chat = rules()
    chat.record(chat.resolve("who said it was their fight?"), answer(None, KERRY))
    assert chat.resolve("where was she speaking?").resolved == "where was John Kerry speaking?"


def test_it_takes_the_thing_and_and_carries_the_topic():
    chat = rules()
    comet = passage("The comet C/2026 F2 was found by doctoral student Yusuf Harlan-Obi, "
                    "Harlan-Obi said.", title="Kestrel Ridge astronomers find a comet")
    chat.record(chat.resolve("Who discovered comet C/2026 F2?"), answer(None, comet))
    assert chat.resolve("How close will it come to Earth?").resolved == (
        "How close will C/2026 F2 come to Earth?")
    carried = chat.resolve("and what about its tail?")
    assert carried.resolved.startswith("what about C/2026 F2's tail?")
    short = chat.resolve("how bright?")  # a fragment: it asks about the last question
    assert short.resolved == "how bright? (Who discovered comet C/2026 F2)"
    assert short.changes == ["+ Who discovered comet C/2026 F2"]


def test_ellipsis_is_completed_from_the_previous_question():
    chat = rules()
    chat.record(chat.resolve("what share did Yannick Osei-Borg get?"),
                answer("5.5 percent", passage("Yannick Osei-Borg took 5.5 percent.")))
    assert chat.resolve("and Havelund?").resolved == "what share did Havelund get?"
    chat = rules()
    chat.record(chat.resolve("how many people voted in 2015?"), answer("31,000"))
    assert chat.resolve("and in 2019?").resolved == "how many people voted in 2019?"
    chat.record(chat.resolve("Who scored the opening goal?"), answer("Kofi Lindgren"))
    assert chat.resolve("in which minute?").resolved == (
        "in which minute? (Kofi Lindgren; Who scored the opening goal)")
    assert chat.resolve("what position does that player play?").resolved.endswith(
        "(Kofi Lindgren)")  # "that player" is the last answer


def test_a_surname_takes_the_full_name_the_conversation_knows():
    chat = rules()
    chat.record(chat.resolve("who said it was their fight?"), answer("John Kerry", KERRY))
    resolution = chat.resolve("Where did Kerry say it?")
    assert resolution.resolved.startswith("Where did John Kerry say")
    assert "Kerry → John Kerry" in resolution.changes


def test_pronouns_that_point_inside_the_question_keep_it_a_switch():
    chat = rules()
    chat.record(chat.resolve("Who discovered comet C/2026 F2?"), answer("Yusuf Harlan-Obi"))
    for question in ("Where was John Kerry speaking when he was asked about Iraq?",
                     "How many households in Norrbridge left their homes?"):
        assert chat.search_context(question) is None
        assert not chat.resolve(question).changed
    assert chat.search_context("What did his brother say about Iraq?") is not None


def test_only_a_name_like_answer_becomes_he():
    chat = rules()
    chat.record(chat.resolve("what happened first?"), answer("At age six,"))
    assert chat.turns[-1].person is None


def test_a_new_named_question_carries_nothing():
    chat = rules()
    chat.record(chat.resolve("Who is the mayor of Norrbridge?"), answer("Ingrid Halvorsen"))
    assert not chat.resolve("Who was elected mayor of Greyholm?").changed


def test_a_follow_up_is_searched_with_the_conversation_a_new_subject_alone():
    chat = rules()
    assert chat.search_context("who said it was their fight?") is None  # a first question
    chat.record(chat.resolve("who said it was their fight?"), answer("John Kerry", KERRY))
    chat.record(chat.resolve("where was he speaking?"), answer("Jerusalem", KERRY))
    chat.record(chat.resolve("and the attack?"), answer(None, passage("x", source="b.org")))
    context = chat.search_context("when did they promise it?")
    assert context.text == "where was he speaking? Jerusalem and the attack?"  # the last two
    assert context.sources == (("b.org", 1), ("dw.com/iraq", 2))
    assert chat.search_context("What did Angela Merkel say about Anbar?") is None  # a switch
    assert chat.search_context("what did Merkel say to him?") is not None  # a pronoun: not


def test_the_context_favours_the_conversations_article(kb):
    from qa import Article
    from qa.search import SearchContext

    kb.add_articles([
        Article(source="harbour.example/bridge", title="Harbour council",
                text="The new harbour bridge will open in May, the town council said."),
        Article(source="valley.example/bridge", title="Valley council",
                text="The new valley bridge will open in June, the village council said.")],
        progress=False)
    for source, words in (("harbour.example/bridge", "the harbour town"),
                          ("valley.example/bridge", "the valley village")):
        context = SearchContext(f"what did {words} council decide?", ((source, 2),))
        assert kb.ask("when will the bridge open?", context=context).passages[0].source == source


def test_cited_ranks():
    spans = answer("John Kerry", passage("x", 1), passage("John Kerry", 2, answer_span=(0, 10)))
    assert cited_ranks(spans) == [2]
    quoted = answer("John Kerry", passage("nothing", 1), passage("said John Kerry", 2))
    assert cited_ranks(quoted) == [2]
    assert cited_ranks(answer(None, passage("x"))) == []


def test_conversations_load_as_dialogues(tmp_path, seed_article):
    dataset = load_dataset(CONVERSATIONS, corpus=[SAMPLES, seed_article])
    assert len(dataset.dialogues) >= 10 and not dataset.queries
    first = dataset.dialogues[0]
    assert first.turns[1].resolved_keywords == ["Okonkwo"]
    assert list(first.turns[1].relevant) == [a.source for a in dataset.articles
                                             if a.title.startswith("Castmere Rovers win")]
    follow_ups = [t for d in dataset.dialogues for t in d.turns[1:]]
    assert len(dataset.dialogues) >= 30 and len(follow_ups) >= 90
    assert all(t.rewrite for t in follow_ups) and sum(t.topic_switch for t in follow_ups) >= 8
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "turns": []}\n')
    with pytest.raises(DatasetError, match="bad.jsonl:1"):
        load_dataset(bad, corpus=[SAMPLES])


def test_seed_conversation_follow_ups(kb, seed_article):
    kb.add([seed_article], progress=False)
    chat = rules()
    _, first = chat.ask(kb, "who said it was their fight?")
    assert "John Kerry" in first.passages[0].text
    resolution, second = chat.ask(kb, "where was he speaking?")
    assert resolution.resolved == "where was John Kerry speaking?"
    assert any("Jerusalem" in p.text for p in second.passages[:2])
    if second.text is not None:
        assert second.text == "Jerusalem"
    resolution, third = chat.ask(kb, "and what did the general promise?")
    assert resolution.resolved.startswith("what did the general promise?")
    assert any("Fleih" in p.text for p in third.passages[:3])


def test_history_from_a_client_resolves_without_passages():
    chat = Conversation.from_history([{"question": "who said it was their fight?",
                                       "answer": "John Kerry"},
                                      {"question": "where was he speaking?",
                                       "answer": "Jerusalem"}])
    assert [t.resolved for t in chat.turns] == ["who said it was their fight?",
                                                "where was John Kerry speaking?"]
    assert chat.resolve("what did his team say?").resolved == "what did John Kerry's team say?"
    unanswered = Conversation.from_history([{"question": "who offered Iraq support?"}])
    resolution = unanswered.resolve("where was he?")  # nobody known: "he" stays, the
    assert resolution.changes == ["+ Iraq"]  # short follow-up carries the topic


@pytest.mark.parametrize("history, message", [
    ("who?", "history must be a list"),
    ({"question": "who?"}, "history must be a list"),
    ([["who?", "Kerry"]], r"history\[0\] must be an object"),
    ([{"answer": "Kerry"}], r"history\[0\]\.question must be a string"),
    ([{"question": " "}], r"history\[0\]\.question is empty"),
    ([{"question": "who?", "answer": 3}], r"history\[0\]\.answer must be a string"),
    ([{"question": "who?", "when": 1}], "unknown fields: when"),
    ([{"question": "x" * 2001}], "the limit is 2,000"),
    ([{"question": "who?"}] * 21, "the limit is 20"),
])
def test_bad_history_says_what_is_wrong(history, message):
    with pytest.raises((TypeError, ValueError), match=message):
        Conversation.from_history(history)


def test_kb_conversation_resolves_asks_and_records(kb, seed_article):
    kb.add([seed_article], progress=False)
    chat = kb.conversation()
    resolution, first = chat.ask("who said it was their fight?", k=3)
    assert not resolution.changed and "John Kerry" in first.passages[0].text
    resolution, second = chat.ask("where was he speaking?", k=3)
    # the rules name "he"; the term selector adds the headline's name that the thread is about
    assert resolution.resolved == "where was John Kerry speaking? (Iraq)"
    assert resolution.changes == ["he → John Kerry", "+ Iraq"]
    assert [t.question for t in chat.turns] == ["who said it was their fight?",
                                                "where was he speaking?"]
    assert chat.turns[-1].resolved == "where was John Kerry speaking?"  # what later turns use
    assert second.question == "where was John Kerry speaking? (Iraq)"
    later = kb.conversation(history=[{"question": "who said it was their fight?",
                                      "answer": "John Kerry"}])
    assert later.ask("what did he offer?", k=1).resolution.resolved == (
        "what did John Kerry offer?")


def test_articleqa_eval_scores_the_sample_conversations(tmp_path, capsys, seed_article):
    out = tmp_path / "report"
    assert main(["eval", str(CONVERSATIONS), "--corpus", str(SAMPLES), str(seed_article),
                 "--out", str(out),
                 "--cache", str(tmp_path / "cache"), "-q"]) == 0
    assert "| resolution | " in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())["configs"]["hybrid"]["metrics"]
    rows = [json.loads(line) for line in (out / "per_question.jsonl").open()]
    assert metrics["follow_ups"] >= 90 and len(rows) == metrics["turns"]
    assert metrics["topic_switches"] >= 8 and metrics["topic_switches_kept"] == 1.0, [
        r for r in rows if r["switch_kept"] is False]
    # issue #13's target is 0.95 (0.955 measured): a guard one question's flip below it
    assert metrics["resolved_over_standalone"] >= 0.93
    assert metrics["resolution"] >= 0.7, [r for r in rows if r["keywords_ok"] is False]
    assert metrics["follow_up_article_hit@1"] >= 0.9
    assert metrics["answer_in_passages@5"] >= 0.9
    follow_up = next(r for r in rows if r["question"] == "In which minute did he score it?")
    assert "Okonkwo" in follow_up["resolved"] and follow_up["changes"]
    report = (out / "report.md").read_text()
    assert "# Evaluation: conversations" in report and "| resolution | " in report
