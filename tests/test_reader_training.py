"""Training the reader on a tiny slice: windows, negatives, loss going down, exact resumption."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from qa.reader_training import (
    TrainConfig,
    build_features,
    load_squad_examples,
    train,
    without_answer_sentence,
)
from qa.span_model import WORD_EMBEDDINGS, SpanModel, load_weights

PARAGRAPHS = [
    ("Harbour", [
        ("The Skarholm ferry left the harbour at dawn with 212 passengers aboard. Captain "
         "Elin Marsk steered it past the breakwater before the wind rose.",
         [("Who steered the ferry?", "Elin Marsk"),
          ("How many passengers were aboard?", "212")]),
        ("A storm closed the port of Vesterby for two days in March. Dock workers moved the "
         "grain barges inland to the Ostmark canal.",
         [("Where were the grain barges moved?", "the Ostmark canal"),
          ("How long was the port closed?", "two days")]),
    ]),
    ("Orchard", [
        ("The Lindqvist orchard grows nine kinds of apple on the slopes above Tallby. Its "
         "oldest tree was planted in 1911 by Aksel Lindqvist.",
         [("Who planted the oldest tree?", "Aksel Lindqvist"),
          ("When was the oldest tree planted?", "1911")]),
        ("Cider from the orchard is pressed in October and sold at the Tallby market. The "
         "pressing house runs on a water wheel.",
         [("What powers the pressing house?", "a water wheel"),
          ("Where is the cider sold?", "the Tallby market")]),
    ]),
]


@pytest.fixture(scope="module")
def squad_file(tmp_path_factory):
    data = []
    for title, paragraphs in PARAGRAPHS:
        entry = {"title": title, "paragraphs": []}
        for p, (context, qas) in enumerate(paragraphs):
            entry["paragraphs"].append({"context": context, "qas": [
                {"id": f"{title}-{p}-{q}", "question": question,
                 "answers": [{"text": answer, "answer_start": context.index(answer)}]}
                for q, (question, answer) in enumerate(qas)]})
        data.append(entry)
    path = tmp_path_factory.mktemp("squad") / "tiny.json"
    path.write_text(json.dumps({"version": "1.1", "data": data}))
    return path


def _config(squad_file, out, **changes) -> TrainConfig:
    settings = dict(train=[str(squad_file)], out=str(out), max_length=48, stride=16,
                    batch_size=4, lr=3e-4, warmup=0.1, max_steps=6, heldout_articles=0,
                    dev=[str(squad_file)], checkpoint_minutes=0.0, own_negative=1.0,
                    other_negative=1.0, threads=1)
    return TrainConfig(**{**settings, **changes})


def test_windows_hold_the_answer_tokens_and_negatives_point_at_cls(squad_file):
    from transformers import AutoTokenizer

    from embeddings.encoder import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(None)[0])
    examples, paragraphs = load_squad_examples(squad_file)
    config = _config(squad_file, "unused")
    features = build_features(examples, paragraphs, tokenizer, config)
    positives = [f for f in features if f[2] > 0]
    negatives = [f for f in features if f[2] == 0]
    assert len(positives) == len(examples) and negatives
    answers = {tokenizer.decode(ids[start:end + 1]) for ids, _, start, end in positives}
    assert {"elin marsk", "212", "1911", "a water wheel"} <= answers
    assert all(len(ids) <= config.max_length for ids, *_ in features)


def test_cut_negatives_lose_the_answer_sentence_and_are_read_where_it_was(squad_file):
    from transformers import AutoTokenizer

    from embeddings.encoder import resolve_model

    examples, paragraphs = load_squad_examples(squad_file)
    by_answer = {e.answers[0]: e for e in examples}
    rest, at = without_answer_sentence(by_answer["Elin Marsk"])
    assert rest == by_answer["Elin Marsk"].context[:at] and "Marsk" not in rest
    assert rest.startswith("The Skarholm ferry left the harbour at dawn")
    rest, at = without_answer_sentence(by_answer["212"])
    assert at == 0 and rest.startswith("Captain Elin Marsk") and "212" not in rest

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(None)[0])
    plain = _config(squad_file, "unused", own_negative=0.0, other_negative=0.0)
    cut = _config(squad_file, "unused", own_negative=0.0, other_negative=0.0, cut_negative=1.0)
    with_cuts = build_features(examples, paragraphs, tokenizer, cut)
    negatives = [f for f in with_cuts if f[2] == 0]
    assert len(with_cuts) - len(build_features(examples, paragraphs, tokenizer, plain)) \
        == len(negatives) == len(examples)  # one per question: each sentence cut leaves text
    read = [tokenizer.decode(ids[question_length:]) for ids, question_length, _, _ in negatives]
    assert not any(e.answers[0].lower() in text for e, text in zip(examples, read, strict=True))


def test_training_lowers_the_loss_and_writes_a_curve_and_weights(squad_file, tmp_path):
    best = train(_config(squad_file, tmp_path / "run", max_steps=24, checkpoint_minutes=0.01))
    curve = json.loads((tmp_path / "run" / "curve.json").read_text())
    assert curve[-1]["step"] == 24 and curve[-1]["train_loss"] < curve[0]["train_loss"]
    assert (tmp_path / "run" / "curve.png").stat().st_size > 1000
    assert json.loads((tmp_path / "run" / "final" / "reader.json").read_text())["step"] == 24
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data_sha256"]["tiny.json"] and config["config"]["seed"] == 13
    model, base, card = load_weights(best)
    assert card["shards"] and all((best / name).stat().st_size <= 16 * 2**20
                                  for name in card["shards"])
    stored = set().union(*(safe_open(best / name, "pt").keys() for name in card["shards"]))
    assert WORD_EMBEDDINGS not in stored and "span_head.weight" in stored
    packaged = SpanModel.from_base(base).state_dict()[WORD_EMBEDDINGS]
    assert torch.equal(model.state_dict()[WORD_EMBEDDINGS], packaged)


def test_a_stopped_run_resumes_to_exactly_the_same_state(squad_file, tmp_path):
    train(_config(squad_file, tmp_path / "straight"))
    train(_config(squad_file, tmp_path / "stopped", stop_at=3))
    stopped = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=False)
    assert stopped["step"] == 3
    train(_config(squad_file, tmp_path / "stopped"))
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 6
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert torch.equal(a["rng"], b["rng"])


def test_training_can_continue_from_a_trained_reader(squad_file, tmp_path):
    first = train(_config(squad_file, tmp_path / "first", max_steps=3))
    trained, _, card = load_weights(first)
    again = train(_config(squad_file, tmp_path / "again", init=str(first), lr=0.0, max_steps=2))
    record = json.loads((tmp_path / "again" / "config.json").read_text())
    assert record["init_shards"] == card["shards"] and record["base"] == card["base"]
    continued = load_weights(again)[0].state_dict()
    for name, tensor in trained.state_dict().items():
        assert torch.equal(tensor, continued[name]), name
