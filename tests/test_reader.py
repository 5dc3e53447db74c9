"""The shipped neural reader: spans with exact offsets, abstention, re-ranking, its weights."""

from __future__ import annotations

import json
import shutil

import pytest

from qa.reader import MODEL_FOLDER, NeuralReader, person_name, speaker_for_pronoun
from qa.results import Passage
from qa.span_model import load_weights, score_spans
from qa.spans import CARD_FILE, ReaderWeightsError, weights_sha256

STORY = (
    "Flood crews in Norrbridge moved 320 households out of Eastmill on Monday. "
    "The rescue was led by Ingrid Halvorsen, the mayor, who called it the longest night in "
    "a decade. \"We have never seen the river move this fast,\" said Lukas Brandvold, the "
    "station commander. \"Six boats were out all night,\" he added. Water reached the cities "
    "of Ostby and Lund by Tuesday, a spokesman for the Wend Water Authority said. "
    "Marta Lindqvist was elected chair of the flood board on Friday, unseating Olaf Berg."
)
OTHER = ("The Castmere Rovers beat Holt Athletic 2-1 in the Northern Shield final on Saturday, "
         "with a late header from Dario Okonkwo.")


@pytest.fixture(scope="module")
def reader() -> NeuralReader:
    return NeuralReader()


def _passage(text: str, start: int = 0, rank: int = 1) -> Passage:
    return Passage(rank, 0.5, text, "a1", "Flood", "flood.txt", start, start + len(text))


@pytest.mark.parametrize("question, answer", [
    ("Who led the rescue?", "Ingrid Halvorsen"),
    ("How many households were moved out of Eastmill?", "320"),
    ("Who was elected chair of the flood board?", "Marta Lindqvist"),
    ("Which cities did the water reach?", "Ostby and Lund"),
])
def test_reader_finds_the_answer_with_article_offsets(reader, question, answer):
    article = "Earlier text of the article.\n\n" + STORY
    start = article.index(STORY)
    reading = NeuralReader(threshold=0.0).read(question, [_passage(STORY, start)])
    assert reading.text == answer and reading.passage == 0
    assert article[reading.start:reading.end] == answer
    assert 0.0 < reading.confidence < 1.0 and reading.candidates[0][0] == answer


def test_the_passage_holding_the_answer_wins_over_a_better_ranked_one(reader):
    passages = [_passage(OTHER, rank=1), _passage(STORY, rank=2)]
    reading = NeuralReader(threshold=0.0).read("Who led the rescue in Norrbridge?", passages)
    assert reading.passage == 1 and reading.text == "Ingrid Halvorsen"


def test_the_rest_is_read_only_when_the_first_two_passages_leave_the_answer_open():
    """A span of the first two passages that scores ``enough`` settles the answer; otherwise
    the fourth passage, which holds it, is read and wins."""
    from dataclasses import replace

    passages = [_passage(OTHER, rank=1), _passage(OTHER, rank=2), _passage(OTHER, rank=3),
                _passage(STORY, rank=4)]
    question = "Who led the rescue in Norrbridge?"
    reader = NeuralReader(threshold=0.0)
    reader.calibration = replace(reader.calibration, enough=None)
    reading = reader.read(question, passages)
    assert reading.passage == 3 and len(reading.candidates) == 4
    reader.calibration = replace(reader.calibration, enough=-1e6)  # anything settles it
    assert len(reader.read(question, passages).candidates) == 2
    reader.calibration = replace(reader.calibration, enough=1e6)  # nothing does
    assert reader.read(question, passages).passage == 3


def test_the_reader_abstains_where_the_passage_is_silent(reader):
    reading = reader.read("Who won the chess championship in Oslo?", [_passage(STORY)])
    assert reading.text is None and reading.passage is None
    assert reading.confidence < reader.threshold and reading.candidates


def test_threshold_one_never_answers():
    reading = NeuralReader(threshold=1.0).read("Who led the rescue?", [_passage(STORY)])
    assert reading.text is None and reading.candidates


def test_a_pronoun_answer_in_reported_speech_becomes_the_named_speaker():
    text = ('"We have never seen the river move this fast," said Lukas Brandvold, the station '
            'commander. "Six boats were out all night," he added.')
    he = text.index("he added")
    assert text[slice(*speaker_for_pronoun(text, he, he + 2))] == "Lukas Brandvold"
    plain = "Ingrid Halvorsen arrived. He was tired."
    pronoun = plain.index("He")
    assert speaker_for_pronoun(plain, pronoun, pronoun + 2) == (pronoun, pronoun + 2)
    name = text.index("Lukas")
    assert speaker_for_pronoun(text, name, name + 15) == (name, name + 15)


def test_an_answer_never_runs_across_a_paragraph_break(reader):
    text = "The rescue was led by Ingrid\n\nHalvorsen, the mayor, and her deputy."
    [span] = reader.spans("Who led the rescue?", [_passage(text)])
    assert "\n\n" not in text[span.start:span.end]


def test_the_int8_onnx_model_reads_the_spans_the_trained_weights_read(reader, onnx_cache):
    """What `ask` runs (int8, ONNX Runtime, built once from the verified shards and recorded)
    against the trained fp32 torch model: the same best span for every question."""
    [built] = (onnx_cache / "onnx").glob("*.reader-int8.onnx")
    record = json.loads(built.with_suffix(".json").read_text())
    card = json.loads((MODEL_FOLDER / CARD_FILE).read_text())
    assert record["source_sha256"] == weights_sha256(card)
    model, _, _ = load_weights(MODEL_FOLDER)
    questions = ["Who led the rescue?", "How many households were moved out of Eastmill?",
                 "Who was elected chair of the flood board?", "Which cities did the water reach?",
                 "Who said the river moved fast?", "When did the water reach Ostby?"]
    for question in questions:
        [fp32] = score_spans(model, reader.tokenizer, question, [STORY], *reader.window)
        [int8] = reader.spans(question, [_passage(STORY)])
        assert (int8.start, int8.end) == (fp32.start, fp32.end), question
        assert abs(int8.margin - fp32.margin) < 3.0


def test_a_who_answer_is_the_name_without_titles_or_the_clause_after_it():
    text = "US Secretary of State John Kerry said it was their fight in Anbar province."
    assert text[slice(*person_name("who said it?", text, 0, 32))] == "John Kerry"
    assert text[slice(*person_name("who said it?", text, 0, len(text)))] == "John Kerry"
    assert person_name("which office?", text, 0, 32) == (0, 32)
    assert person_name("who?", "the mayor", 0, 9) == (0, 9)
    named = "Ingrid Halvorsen, the mayor"
    assert named[slice(*person_name("who led it?", named, 0, len(named)))] == "Ingrid Halvorsen"
    assert person_name("who won?", "ISIL", 0, 4) == (0, 4)


def test_nothing_to_read_is_no_answer(reader):
    assert reader.read("Who led the rescue?", []).text is None


def test_the_card_records_the_calibration_and_shards_under_16_mib():
    card = json.loads((MODEL_FOLDER / CARD_FILE).read_text())
    assert 0.0 < card["calibration"]["threshold"] < 1.0 and card["calibration"]["slope"] > 0
    sizes = [(MODEL_FOLDER / name).stat().st_size for name in card["shards"]]
    assert sizes and max(sizes) <= 16 * 2**20 and sum(sizes) <= 50 * 2**20
    assert (MODEL_FOLDER / "README.md").is_file()  # the model card


def test_a_damaged_shard_is_refused_with_what_to_do(tmp_path):
    folder = tmp_path / "reader"
    shutil.copytree(MODEL_FOLDER, folder)
    shard = folder / sorted(json.loads((folder / CARD_FILE).read_text())["shards"])[0]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ReaderWeightsError, match="sha256 .* expected .* restore them"):
        load_weights(folder)


def test_missing_weights_are_refused_with_what_to_do(tmp_path):
    with pytest.raises(ReaderWeightsError, match="reader.json is missing"):
        load_weights(tmp_path)
    shutil.copytree(MODEL_FOLDER, tmp_path / "reader")
    next((tmp_path / "reader").glob("reader-*.safetensors")).unlink()
    with pytest.raises(ReaderWeightsError, match="is missing; restore it"):
        load_weights(tmp_path / "reader")
