"""`articleqa eval`: dataset formats, malformed data, and full reports from real runs."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from qa.cli import main
from qa.datasets import DatasetError, load_dataset
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
