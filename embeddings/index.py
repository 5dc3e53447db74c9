"""Nearest neighbours over unit vectors with caller-chosen int64 ids, exact or IVF by size.

Small indexes are exact (``IndexIDMap2`` over ``IndexFlatIP``): perfect recall, nothing to
train, and still only a few ms per query below ``EXACT_LIMIT`` vectors on the 2-core dev machine
(see docs/BENCHMARKS.md, "Vector search by index size"). Above it the index becomes an
``IndexIVFFlat``: it stores the caller's ids itself and removes by id, so removing a vector never
shifts the others (the Haystack #6228 trap); HNSW cannot remove at all. It keeps the vectors
uncompressed, so scores stay exact inner products and a rebuild loses nothing; SQ8 would save
three quarters of the memory but capped recall@10 at 0.98 where near-duplicates crowd the top 10.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np
from faiss.contrib.inspect_tools import get_invlist

EXACT_LIMIT = 50_000  # exact single-query p50 ~3.7 ms at 50k vectors here; IVF ~0.5 ms
NPROBE = 64  # recall@10 >= 0.97 from 30k to 1M vectors; p50 1.6 ms at 1M
GROWTH = 4  # retrain an IVF index once it holds this many times its training size
SEED = 1234  # k-means seed: the same vectors always give the same index
_MIN_PER_LIST = 39  # FAISS warns below this many training points per centroid
_TRAIN_PER_LIST = 64  # k-means samples at most this many points per centroid (speed)

Hits = list[list[tuple[int, float]]]


def _nlist_for(count: int) -> int:
    """About 4 sqrt(N) lists, as the FAISS guidelines suggest, with enough points to train."""
    return max(1, min(int(4 * math.sqrt(count)), count // _MIN_PER_LIST))


def _list_ids(invlists: faiss.InvertedLists, list_no: int) -> np.ndarray:
    """One IVF list's ids, without copying its vectors as ``get_invlist`` would."""
    size = invlists.list_size(list_no)
    if not size:
        return np.zeros(0, np.int64)
    pointer = invlists.get_ids(list_no)
    try:
        return faiss.rev_swig_ptr(pointer, size).copy()
    finally:
        invlists.release_ids(list_no, pointer)


class VectorIndex:
    """Inner-product search; ids are whatever the caller stores (e.g. SQLite row ids).

    ``add`` and ``remove`` switch the kind as the size changes: exact -> IVF once above
    ``threshold``, IVF -> exact below half of it (the gap stops a batch of adds and removes at
    the boundary rebuilding every time), and IVF -> a retrained IVF once it holds ``GROWTH``
    times its training size (its lists were fitted to the old data and grow long).
    """

    def __init__(self, dimension: int, threshold: int = EXACT_LIMIT):
        self.dimension = dimension
        self.threshold = threshold
        self._index: faiss.Index = self._exact()

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def kind(self) -> str:
        """"exact" or "ivf"."""
        return "ivf" if isinstance(self._index, faiss.IndexIVF) else "exact"

    def describe(self) -> str:
        """The kind with its parameters, e.g. "IVF4096,Flat nprobe 64", for ``info`` output."""
        if self.kind == "exact":
            return "exact"
        return f"IVF{self._index.nlist},Flat nprobe {min(NPROBE, self._index.nlist)}"

    def ids(self) -> np.ndarray:
        if self.kind == "exact":
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        return np.concatenate([np.zeros(0, np.int64)] + [
            _list_ids(self._index.invlists, i) for i in range(self._index.nlist)])

    def add(self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.dimension):
            raise ValueError(
                f"expected {len(ids)} vectors of {self.dimension}, got {vectors.shape}")
        if len(ids):
            self._index.add_with_ids(vectors, ids)
            self._refit()

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Remove these ids (unknown ones are ignored); returns how many were removed."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return 0
        removed = int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))
        self._refit()
        return removed

    def search(self, queries: np.ndarray, k: int,
               allowed_ids: Sequence[int] | np.ndarray | None = None) -> Hits:
        """Per query row, up to ``k`` (id, inner product) pairs, best first.

        ``allowed_ids`` restricts the results to those ids. An IVF search then probes more
        lists, in proportion to how few ids are allowed, so that it still meets about as many
        candidates as an unfiltered search (a small set would otherwise often sit entirely
        in unprobed lists).
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dimension:
            raise ValueError(f"expected queries of {self.dimension}, got {queries.shape}")
        selector, allowed = None, len(self)
        if allowed_ids is not None:
            wanted = np.ascontiguousarray(allowed_ids, dtype=np.int64)  # the set drops repeats
            selector, allowed = faiss.IDSelectorBatch(wanted), min(len(wanted), allowed)
        k = min(k, allowed)
        if k < 1:
            return [[] for _ in queries]
        if self.kind == "exact":
            params = None if selector is None else faiss.SearchParameters(sel=selector)
        else:
            nprobe = min(self._index.nlist, math.ceil(NPROBE * len(self) / allowed))
            params = faiss.SearchParametersIVF(nprobe=nprobe)
            if selector is not None:
                params.sel = selector
        scores, ids = self._search(queries, k, params)
        return [[(int(i), float(s)) for s, i in zip(row_scores, row_ids, strict=True) if i >= 0]
                for row_scores, row_ids in zip(scores, ids, strict=True)]

    def _search(self, queries: np.ndarray, k: int, params: faiss.SearchParameters | None
                ) -> tuple[np.ndarray, np.ndarray]:
        """One query runs on one OpenMP thread: FAISS splits an exact single-query scan over
        both cores, which measured slower even on a quiet machine (20k vectors: 2.9 ms vs
        1.0 ms) and far slower on a busy one, where each scan waits for a descheduled thread
        (24 ms). The setting is per calling thread, and restored."""
        if len(queries) > 1:
            return self._index.search(queries, k, params=params)
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return self._index.search(queries, k, params=params)
        finally:
            faiss.omp_set_num_threads(threads)

    def save(self, path: str | Path) -> None:
        """Write to a temporary file and rename it over the old one: readers never see half,
        and two processes saving at once never write into each other's file."""
        path = Path(path)
        tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        faiss.write_index(self._index, str(tmp))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path, threshold: int = EXACT_LIMIT) -> VectorIndex:
        """Whichever kind was saved; it changes kind only when ``add``/``remove`` next run."""
        index = faiss.read_index(str(path))
        if not isinstance(index, faiss.IndexIDMap2 | faiss.IndexIVFFlat):
            raise ValueError(f"{path}: unexpected FAISS index {type(index).__name__}")
        loaded = cls(index.d, threshold)
        loaded._index = index
        return loaded

    def _exact(self) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension))

    def _refit(self) -> None:
        count = len(self)
        if self.kind == "exact":
            if count > self.threshold:
                self._rebuild(ivf=True)
        elif count < self.threshold // 2:
            self._rebuild(ivf=False)
        elif _nlist_for(count) >= 2 * self._index.nlist:  # nlist ~ sqrt(N): 4x N doubles it
            self._rebuild(ivf=True)

    def _rebuild(self, ivf: bool) -> None:
        """Refill a new index of the wanted kind from the vectors this one holds."""
        ids, vectors = self._contents()
        if ivf:
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dimension), self.dimension,
                                       _nlist_for(len(ids)), faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = SEED
            index.cp.max_points_per_centroid = _TRAIN_PER_LIST
            index.train(vectors)
        else:
            index = self._exact()
        index.add_with_ids(vectors, ids)
        self._index = index

    def _contents(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of everything stored; both kinds keep the vectors uncompressed."""
        if self.kind == "exact":
            return self.ids(), self._index.index.reconstruct_n(0, len(self))
        lists = [get_invlist(self._index.invlists, i) for i in range(self._index.nlist)]
        ids = np.concatenate([np.zeros(0, np.int64)] + [list_ids for list_ids, _ in lists])
        codes = np.concatenate([np.zeros((0, self._index.code_size), np.uint8)]
                               + [list_codes for _, list_codes in lists])
        return ids, codes.view(np.float32).reshape(-1, self.dimension)
