"""The learned term selector (qa/term_selection.py): its features, the phrases it adds, the
packaged weights' checksum, and its training command on CANARD (when ../shared is there)."""

from __future__ import annotations

import json
import shutil

import pytest

from qa.cli import main
from qa.conversation import Conversation, Turn
from qa.term_selection import (
    CARD,
    FEATURES,
    SELECTOR_DIR,
    WEIGHTS,
    SelectorWeightsError,
    TermSelector,
    candidates,
    packaged_selector,
    phrases,
)
from tests.conftest import SHARED_DATA

CANARD = SHARED_DATA / "conversations" / "canard_dev.jsonl"
CAST = SHARED_DATA / "conversations" / "cast_2019_2022_rewrites.jsonl"
needs_canard = pytest.mark.skipif(not CANARD.exists(),
                                  reason=f"CANARD is not in {CANARD.parent} (../shared/data)")

NEWHART = [Turn("when was he born?", "when was he born?", "in 1929 in Oak Park, Illinois",
                title="Bob Newhart")]


def test_candidates_are_the_threads_words_the_question_lacks():
    found = {c.word: dict(zip(FEATURES, c.features, strict=True))
             for c in candidates("did he have any influences?", "did he have any influences?",
                                 NEWHART)}
    assert {"bob", "newhart", "1929", "oak", "park", "illinois", "born"} <= set(found)
    assert "influences" not in found  # the question says it already
    assert found["newhart"]["in_headline"] == 1 and found["newhart"]["capitalised"] == 1
    assert found["newhart"]["in_headline*asks_he_she"] == 1
    assert found["born"]["in_first_question"] == 1 and found["born"]["capitalised"] == 0
    assert found["1929"]["in_last_answer"] == 1 and found["1929"]["number"] == 1
    # a headline gives its names, not its other words
    news = [Turn("who said it?", "who said it?", "Kerry", title="Kerry backs talks in Vienna")]
    words = {c.word for c in candidates("when?", "when?", news)}
    assert {"kerry", "vienna"} <= words and "backs" not in words and "talks" not in words


def test_a_topic_switch_starts_a_new_thread():
    turns = [Turn("who leads the union?", "who leads the union?", "Tomas Brennick",
                  title="Rail strike in Westmark"),
             Turn("When was Pellucid Labs founded?", "When was Pellucid Labs founded?", "2014",
                  title="Pellucid Labs recalls power banks")]
    words = {c.word for c in candidates("what did it sell?", "what did it sell?", turns)}
    assert {"pellucid", "labs", "2014"} <= words
    assert not words & {"tomas", "brennick", "westmark", "union"}


def test_phrases_keep_the_words_as_they_were_written():
    turns = [Turn("what did Zappa found?", "what did Zappa found?",
                  "Zappa and the Mothers of Invention", title="Frank Zappa")]
    assert phrases({"mothers", "invention", "frank"}, turns) == ["Frank",
                                                                 "Mothers of Invention"]


def test_the_packaged_selector_adds_what_the_rules_cannot_name():
    chat = Conversation(NEWHART)
    resolution = chat.resolve("did he have any influences?")
    assert "Bob Newhart" in resolution.resolved and "+ Bob Newhart" in resolution.changes
    assert resolution.core == Conversation(NEWHART, selector=None).resolve(
        "did he have any influences?").resolved  # later turns build on the rules' form
    # a question that names its own subject is searched as typed
    switch = chat.resolve("When did Johnny Carson retire?")
    assert switch.resolved == "When did Johnny Carson retire?" and not switch.changes


def test_weights_are_checked_against_their_card(tmp_path):
    card = json.loads((SELECTOR_DIR / CARD).read_text())
    assert packaged_selector().threshold == card["threshold"]
    folder = tmp_path / "selector"
    shutil.copytree(SELECTOR_DIR, folder)
    weights = json.loads((folder / WEIGHTS).read_text())
    weights["bias"] += 1.0
    (folder / WEIGHTS).write_text(json.dumps(weights))
    with pytest.raises(SelectorWeightsError, match=r"sha256 .* expected .*git checkout"):
        TermSelector.load(folder)
    (folder / WEIGHTS).unlink()
    with pytest.raises(SelectorWeightsError, match="is missing; restore it"):
        TermSelector.load(folder)


@needs_canard
def test_train_term_selector_scores_held_out_dialogues(tmp_path, capsys):
    subset = tmp_path / "canard-120.jsonl"
    subset.write_text("".join(CANARD.read_text().splitlines(keepends=True)[:120]))
    out = tmp_path / "selector"
    assert main(["train-term-selector", str(subset), "--out", str(out), "--folds", "3",
                 "-q"]) == 0
    assert "held-out folds: recall" in capsys.readouterr().out
    card = json.loads((out / CARD).read_text())
    assert card["training"]["files"][0]["dialogues"] == 120
    assert len(card["training"]["files"][0]["sha256"]) == 64
    held_out, rules = card["metrics"]["out_of_fold"], card["metrics"]["rules_only"]
    assert held_out["recall"] > rules["recall"] + 0.05  # it learns what the rules miss
    assert held_out["f1"] > rules["f1"]
    assert [row["dialogues"] for row in card["metrics"]["learning_curve"]] == [8, 20, 40, 80]
    assert (out / "learning-curve.png").stat().st_size > 10_000
    selector = TermSelector.load(out)  # its own checksum holds
    assert selector.threshold == card["threshold"]


@needs_canard
def test_eval_says_when_the_selector_was_fitted_on_the_file(tmp_path):
    assert main(["eval", str(CANARD), "--limit", "30", "--out", str(tmp_path / "canard"),
                 "-q"]) == 0
    report = (tmp_path / "canard" / "report.md").read_text()
    assert "## resolver" in report and "## rules only" in report
    assert "fitted on this file" in report
    assert main(["eval", str(CAST), "--limit", "10", "--out", str(tmp_path / "cast"),
                 "-q"]) == 0
    assert "fitted on this file" not in (tmp_path / "cast" / "report.md").read_text()
