"""`articleqa eval`: dataset formats, malformed data, and full reports from real runs."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from qa.cli import main
from qa.datasets import DatasetError, Dialogue, Query, load_dataset
from qa.dialogue_evaluation import evaluate_rewrite_dialogues, rewrite_words
from qa.evaluation import evaluate
from tests.conftest import SAMPLES

SQUAD = {"version": "v2.0", "data": [
    {"title": "Harbour_Bridge", "paragraphs": [
        {"context": "The Tarnholm harbour bridge opened in 1932. It was designed by Ada Fenwick.",
         "qas": [
             {"id": "h1", "question": "Who designed the Tarnholm harbour bridge?",
              "answers": [{"text": "Ada Fenwick", "answer_start": 58}], "is_impossible": False},
             {"id": "h2", "question": "How much did the bridge cost?", "answers": [],
              "is_impossible": True}]}]},
    {"title": "Comet_Visit", "paragraphs": [
        {"context": "Comet Lindqvist passed the Sun in May 1996 and was seen by the naked eye.",
         "qas": [{"id": "c1", "question": "When did comet Lindqvist pass the Sun?",
                  "answers": [{"text": "May 1996", "answer_start": 38}]}]}]},
]}


def _beir(folder):
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": "d1", "title": "Bees", "text": "Honey bees dance to show where food is."},
            {"_id": "d2", "title": "Glaciers", "text": "Glaciers retreat as summers warm."},
            {"_id": "d3", "title": "Tides", "text": "The moon's pull raises ocean tides."}]
    with gzip.open(folder / "corpus.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(d) + "\n" for d in docs)
    (folder / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "How do bees tell others about food?"}) + "\n"
        + json.dumps({"_id": "q2", "text": "What causes tides?"}) + "\n"
        + json.dumps({"_id": "q9", "text": "not judged, not asked"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n")


def test_squad_json_becomes_one_article_per_title(tmp_path):
    path = tmp_path / "tiny-squad.json"
    path.write_text(json.dumps(SQUAD))
    dataset = load_dataset(path)
    assert [a.title for a in dataset.articles] == ["Harbour Bridge", "Comet Visit"]
    by_id = {q.id: q for q in dataset.queries}
    assert by_id["h1"].answers == ["Ada Fenwick"]
    assert by_id["h1"].relevant == {"tiny-squad:Harbour_Bridge": 1}
    assert not by_id["h2"].answerable and by_id["h2"].answers == []


def test_beir_folder_keeps_only_judged_queries(tmp_path):
    _beir(tmp_path / "mini")
    dataset = load_dataset(tmp_path / "mini")
    assert [q.id for q in dataset.queries] == ["q1", "q2"]
    assert dataset.queries[1].relevant == {"d3": 1}
    assert {a.source for a in dataset.articles} == {"d1", "d2", "d3"}


@pytest.mark.parametrize(("name", "content", "message"), [
    ("bad.json", "{not json", "cannot read JSON"),
    ("bad.json", json.dumps({"rows": []}), "not SQuAD JSON"),
    ("bad.json", json.dumps({"data": [{"title": "x"}]}), "SQuAD entry is missing 'paragraphs'"),
    ("bad.jsonl", '{"question": "q?", "answers": []}\n{oops\n', "bad.jsonl:2: invalid JSON"),
    ("bad.jsonl", '{"question": "q?"}\n', "needs 'question' (text) and 'answers' (list)"),
    ("bad.jsonl", '{"question": "q?", "answers": ["a"], "article": "nowhere"}\n',
     "article 'nowhere' is not in the corpus"),
    ("bad.csv", "a,b\n", "expected a BEIR folder, SQuAD .json, or .jsonl questions or "
     "conversations"),
    ("bad.jsonl", '{"turns": []}\n', "bad.jsonl:1: needs 'turns', each a question row"),
    ("bad.jsonl", '{"turns": [{"question": "q?", "answers": [], "resolved_keywords": "he"}]}\n',
     "bad.jsonl:1 turn 1: 'resolved_keywords' must be a list of words"),
    ("bad.jsonl", '{"turns": [{"question": "q?", "answers": [], "article": "nowhere"}]}\n',
     "article 'nowhere' is not in the corpus"),
])
def test_malformed_datasets_get_clear_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DatasetError, match=re.escape(message)):
        load_dataset(path, corpus=[SAMPLES])


def test_incomplete_beir_folder_names_the_missing_file(tmp_path):
    _beir(tmp_path / "mini")
    (tmp_path / "mini" / "qrels" / "test.tsv").unlink()
    with pytest.raises(DatasetError, match="missing .*qrels/test.tsv"):
        load_dataset(tmp_path / "mini")


def test_questions_need_a_corpus(tmp_path):
    with pytest.raises(DatasetError, match="needs --corpus"):
        load_dataset(SAMPLES.parent / "questions.jsonl")


def test_sample_questions_full_report_comparing_two_configs(tmp_path, encoder):
    dataset = load_dataset(SAMPLES.parent / "questions.jsonl", corpus=[SAMPLES])
    out = tmp_path / "report"
    runs = evaluate(dataset, ["dense", "dense-text-only"], out, tmp_path / "cache",
                    encoder=encoder, progress=False)
    assert [r.config for r in runs] == ["dense", "dense-text-only"]
    dense = runs[0].metrics
    assert dense["questions"] == 12 and dense["unanswerable"] == 2
    assert dense["article_hit@1"] == 1.0 and dense["answer_hit@5"] == 1.0
    assert dense["no_answer_recall"] is not None and 0 <= dense["em"] <= 1
    assert 1 <= dense["passages_read"] <= 5  # two, or five when those leave the answer open
    assert dense["latency_ms_total"]["p50"] > 0 and dense["latency_ms_encode"]["p50"] > 0
    assert runs[0].build["chunks"] > 0 and runs[0].build["added"] == 6
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved["configs"]) == {"dense", "dense-text-only"}
    rows = [json.loads(line) for line in (out / "per_question.jsonl").open()]
    assert len(rows) == 24 and {"question", "prediction", "ms", "passages"} <= set(rows[0])
    report = (out / "report.md").read_text()
    assert "| metric | dense | dense-text-only |" in report and "| ndcg@10 |" in report
    for plot in ("hit_at_k.png", "latency.png", "abstention.png"):
        assert (out / plot).read_bytes().startswith(b"\x89PNG")
    again = evaluate(dataset, ["dense"], out, tmp_path / "cache", encoder=encoder,
                     progress=False)
    assert again[0].build["added"] == 0 and again[0].build["reused"] == 6


def test_cli_eval_on_squad_and_beir(tmp_path, capsys):
    squad = tmp_path / "tiny-squad.json"
    squad.write_text(json.dumps(SQUAD))
    assert main(["eval", str(squad), "--out", str(tmp_path / "r1"), "--cache",
                 str(tmp_path / "c"), "-q", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["hybrid"]["metrics"]
    assert metrics["questions"] == 3 and metrics["article_hit@1"] == 1.0
    assert metrics["unanswerable"] == 1
    _beir(tmp_path / "mini")
    assert main(["eval", str(tmp_path / "mini"), "--out", str(tmp_path / "r2"), "--cache",
                 str(tmp_path / "c"), "-q"]) == 0
    report = capsys.readouterr().out
    assert "| ndcg@10 | 1.000 |" in report and "| em |" not in report  # retrieval-only data


def test_gold_paragraph_config_scores_the_reader_alone(tmp_path, capsys):
    squad = tmp_path / "tiny-squad.json"
    squad.write_text(json.dumps(SQUAD))
    assert main(["eval", str(squad), "--config", "gold-paragraph", "--out", str(tmp_path / "r"),
                 "--cache", str(tmp_path / "c"), "-q", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["gold-paragraph"]["metrics"]
    assert metrics["em_answerable"] == 1.0 and metrics["answer_hit@1"] == 1.0
    assert metrics["passages_read"] == 1.0
    assert metrics["ndcg@10"] is None and metrics["latency_ms_read"]["p50"] > 0
    rows = [json.loads(line) for line in (tmp_path / "r" / "per_question.jsonl").open()]
    assert {r["prediction"] for r in rows} >= {"Ada Fenwick", "May 1996"}


def test_unknown_config_is_refused(tmp_path, capsys):
    assert main(["eval", str(SAMPLES.parent / "questions.jsonl"), "--corpus", str(SAMPLES),
                 "--config", "magic", "--out", str(tmp_path)]) == 2
    assert "unknown config 'magic'; choose from hybrid" in capsys.readouterr().err


def test_seed_questions_rank_the_seed_article_first(tmp_path, encoder, shared_data, seed_article):
    dataset = load_dataset(shared_data / "seed-questions.jsonl", corpus=[seed_article.parent])
    [run] = evaluate(dataset, ["dense"], tmp_path / "out", tmp_path / "cache", encoder=encoder,
                     progress=False)
    assert run.metrics["article_hit@1"] == 1.0 and run.metrics["answer_hit@3"] == 1.0


# --- dialogues in the shared format (QuAC, CANARD, CAsT) ------------------------------------

FENWICK = ("Ada Fenwick was an engineer from Tarnholm. She designed the Tarnholm harbour bridge, "
           "which opened in 1932. In 1940 she moved to Lisbon, where she taught at the "
           "technical institute until 1961.")
LINDQVIST = ("Comet Lindqvist was found by the astronomer Per Lindqvist in March 1995. It "
             "passed the Sun in May 1996 and was seen by the naked eye for six weeks. Its tail "
             "stretched across forty degrees of the sky.")
BEES = ("Honey bees in the Oskar valley dance to show where food is. The waggle dance gives "
        "the direction of the flowers. Beekeeper Lena Voss filmed the hives for three years.")


def _quac_turn(question, answer, context):
    if answer is None:
        return {"question": question, "rewrite": None, "answer": None, "answer_start": None,
                "no_answer": True}
    start = context.index(answer)
    return {"question": question, "rewrite": None, "answer": answer, "answer_start": start,
            "all_answers": [{"text": answer, "answer_start": start},
                            {"text": answer, "answer_start": start}]}


QUAC = [
    ("q:0", FENWICK, [("Who designed the Tarnholm harbour bridge?", "Ada Fenwick"),
                      ("When did it open?", "1932"),
                      ("Where did she move in 1940?", "Lisbon")]),
    ("q:1", LINDQVIST, [("Who found comet Lindqvist?", "Per Lindqvist"),
                        ("When did it pass the Sun?", "May 1996"),
                        ("How long was it seen?", "six weeks")]),
    ("q:2", BEES, [("Why do honey bees in the Oskar valley dance?", "to show where food is"),
                   ("Who filmed them?", "Lena Voss"),
                   ("Did she sell the honey?", None)]),
]


def _write_quac(path, dialogues=QUAC):
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for name, context, turns in dialogues:
            handle.write(json.dumps({"id": name, "source": "test", "context": context, "turns": [
                _quac_turn(q, a, context) for q, a in turns]}) + "\n")
    return path


CANARD_ROWS = [{"id": "canard-dev:C_1", "source": "t", "context": None, "title": "Frank Zappa",
                "section_title": "Disbandment", "quac_dialog_id": "C_1", "turns": [
                    {"question": "What group disbanded?", "rewrite": "What group disbanded?",
                     "answer": "Zappa and the Mothers of Invention", "answer_start": None,
                     "question_no": 1},
                    {"question": "When did they disband?",
                     "rewrite": "When did Zappa and the Mothers of Invention disband?",
                     "answer": None, "answer_start": None, "no_answer": True,
                     "question_no": 2}]}]
CAST_ROWS = [{"id": "cast2019-eval:31", "source": "t", "context": None, "turns": [
    {"question": "What is throat cancer?", "rewrite": "What is throat cancer?", "answer": None,
     "answer_start": None, "turn_id": "31_1"},
    {"question": "Is it treatable?", "rewrite": "Is throat cancer treatable?", "answer": None,
     "answer_start": None, "turn_id": "31_2"}]}]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_dialogue_files_load_by_their_schema(tmp_path):
    quac = load_dataset(_write_quac(tmp_path / "quac_tiny.jsonl.gz"))
    assert quac.name == "quac_tiny" and quac.kind == "passage-dialogues"
    assert [a.source for a in quac.articles] == ["q:0", "q:1", "q:2"]
    assert quac.articles[0].text == FENWICK
    second = quac.dialogues[0].turns[1]
    assert second.id == "q:0.2" and second.answers == ["1932"] and second.answer == "1932"
    assert second.relevant == {"q:0": 1} and second.context == FENWICK
    no_answer = quac.dialogues[2].turns[2]
    assert not no_answer.answerable and no_answer.answers == [] and no_answer.answer is None

    canard = load_dataset(_write_jsonl(tmp_path / "canard.jsonl", CANARD_ROWS))
    assert canard.kind == "rewrite-dialogues" and canard.articles == []
    first, follow = canard.dialogues[0].turns
    assert first.answer == "Zappa and the Mothers of Invention" and first.answerable
    assert follow.rewrite == "When did Zappa and the Mothers of Invention disband?"
    assert follow.answer is None and not follow.answerable

    cast = load_dataset(_write_jsonl(tmp_path / "cast.jsonl", CAST_ROWS))
    assert cast.kind == "rewrite-dialogues"
    assert [t.rewrite for t in cast.dialogues[0].turns] == [
        "What is throat cancer?", "Is throat cancer treatable?"]


@pytest.mark.parametrize(("rows", "message"), [
    ([{"id": "a", "context": None, "turns": [{"rewrite": "x"}]}],
     "x.jsonl:1: needs 'turns', each with a 'question'"),
    ([{"id": "a", "context": "text", "turns": [{"question": "q?"}]},
      {"id": "b", "context": None, "turns": [{"question": "q?"}]}],
     "some dialogues have a 'context' passage and some do not"),
    ([{"id": "a", "context": None, "turns": [{"question": "q?"}, {"question": "r?"}]}],
     "dialogues without passages need follow-up 'rewrite's"),
])
def test_malformed_dialogue_files_get_clear_errors(tmp_path, rows, message):
    with pytest.raises(DatasetError, match=re.escape(message)):
        load_dataset(_write_jsonl(tmp_path / "x.jsonl", rows))


def test_the_shared_dialogue_files_load(shared_data):
    folder = shared_data / "conversations"
    if not folder.exists():
        pytest.skip(f"{folder} is absent (conversational data lives in ../shared/data)")
    quac = load_dataset(folder / "quac_val_first3.jsonl.gz")
    assert quac.kind == "passage-dialogues" and len(quac.dialogues) == len(quac.articles) == 1000
    assert sum(len(d.turns) - 1 for d in quac.dialogues) == 2000
    turn = quac.dialogues[0].turns[1]
    assert turn.answers and all(a in turn.context for a in turn.answers)
    canard = load_dataset(folder / "canard_dev.jsonl")
    assert canard.kind == "rewrite-dialogues" and len(canard.dialogues) == 490
    assert all(t.rewrite for t in canard.dialogues[0].turns)
    cast = load_dataset(folder / "cast_2019_2022_rewrites.jsonl")
    assert len(cast.dialogues) == 153 and sum(len(d.turns) for d in cast.dialogues) == 1241


def test_rewrite_words_recall_and_precision():
    needed, added = rewrite_words("where was he speaking?",
                                  "where was John Kerry speaking in 2014?",
                                  "where was John Kerry's team speaking?")
    assert needed == {"john", "kerry", "2014"} and added == {"john", "kerry", "team"}
    assert rewrite_words("Is it treatable?", "Is it treatable?", "Is it treatable?") == (
        set(), set())


def test_rewrite_dialogues_are_scored_on_the_rewrites_words():
    turns = [Query("d.1", "Who discovered comet C/2026 F2?", ["Yusuf Harlan-Obi"],
                   answer="Yusuf Harlan-Obi", rewrite="Who discovered comet C/2026 F2?"),
             Query("d.2", "How close will it come to Earth?", [],
                   rewrite="How close will comet C/2026 F2 come to Earth?"),
             Query("d.3", "What is its tail made of?", [],
                   rewrite="What is the tail of comet C/2026 F2 made of?"),
             Query("d.4", "Who named the comet?", [], rewrite="Who named the comet?")]
    result = evaluate_rewrite_dialogues([Dialogue("cast2019-eval:d", turns)])
    rows = result["rows"]
    assert [r["resolved"] for r in rows] == [
        "How close will C/2026 F2 come to Earth?", "What is C/2026 F2's tail made of?",
        "Who named the comet? (C/2026 F2)"]
    assert rows[0]["needed"] == ["2026", "c", "comet", "f2"] and rows[2]["needed"] == []
    resolved = result["metrics"]["variants"]["follow-ups resolved"]
    assert resolved["words_needed"] == 8 and resolved["words_added"] == 9
    assert resolved["words_added_right"] == 6
    assert resolved["recall"] == 0.75 and resolved["precision"] == 0.6667
    assert resolved["fully_recovered"] == 0.0 and resolved["changed_when_not_needed"] == 1.0
    assert resolved["needed_in_history"] == 1.0
    typed = result["metrics"]["variants"]["follow-ups typed"]
    assert typed["recall"] == 0.0 and typed["precision"] is None


def test_cli_eval_on_rewrite_dialogues_needs_no_model(tmp_path, capsys):
    path = _write_jsonl(tmp_path / "cast.jsonl", CAST_ROWS + CANARD_ROWS)
    assert main(["eval", str(path), "--out", str(tmp_path / "r"), "-q", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["resolver"]["metrics"]
    assert metrics["dialogues"] == 2 and metrics["follow_ups"] == 2
    assert set(metrics["variants"]) >= {"follow-ups typed", "follow-ups resolved",
                                        "cast2019-eval resolved", "canard-dev resolved"}
    report = (tmp_path / "r" / "report.md").read_text()
    assert "| follow-ups resolved | 2 |" in report and "Timing: " in report


def test_quac_dialogues_end_to_end_typed_vs_resolved(tmp_path, encoder):
    dataset = load_dataset(_write_quac(tmp_path / "quac_tiny.jsonl.gz"))
    out = tmp_path / "report"
    [run] = evaluate(dataset, ["hybrid"], out, tmp_path / "cache", encoder=encoder,
                     progress=False)
    metrics = run.metrics
    assert metrics["dialogues"] == 3 and metrics["turns"] == 9 and metrics["follow_ups"] == 6
    variants = metrics["variants"]
    assert list(variants) == ["first turns", "follow-ups typed", "follow-ups resolved",
                              "follow-ups resolved-gold", "follow-ups resolved+history"]
    assert variants["first turns"]["passage_hit@1"] == 1.0
    assert variants["follow-ups typed"]["changed"] == 0.0
    assert variants["follow-ups resolved"]["changed"] > 0
    assert variants["follow-ups resolved-gold"]["answerable"] == 5
    for summary in variants.values():
        assert 0 <= summary["em"] <= summary["f1"] + 1e-9 <= 1 + 1e-9
        assert summary["passage_hit@1"] <= summary["passage_hit@5"]
    rows = [json.loads(line) for line in (out / "per_question.jsonl").open()]
    assert len(rows) == 3 + 6 * 4
    searched = {r["variant"]: r["searched"] for r in rows if r["id"] == "q:0.3"}
    assert searched["typed"] == "Where did she move in 1940?"
    assert searched["resolved-gold"] == "Where did Ada Fenwick move in 1940?"  # who answered
    assert any(r["changes"] for r in rows if r["variant"] != "typed")
    report = (out / "report.md").read_text()
    assert "| follow-ups typed | 6 |" in report and "| follow-ups resolved | 6 |" in report
    assert "| first turns | 3 |" in report and "index build" in report
    again = evaluate(dataset, ["hybrid"], out, tmp_path / "cache", encoder=encoder,
                     progress=False, limit=1)
    assert again[0].build["added"] == 0 and again[0].metrics["follow_ups"] == 2
