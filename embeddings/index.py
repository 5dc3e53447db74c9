"""Nearest neighbours over unit vectors with caller-chosen integer ids (FAISS IndexIDMap2).

IndexIDMap2 keeps the caller's ids through removals, so removing one vector never shifts the
ids of the others (the trap behind Haystack #6228).
"""

from __future__ import annotations

import os
from pathlib import Path

import faiss
import numpy as np


class VectorIndex:
    """Exact inner-product search; ids are whatever the caller stores (e.g. SQLite row ids)."""

    def __init__(self, dimension: int, index: faiss.Index | None = None):
        self.dimension = dimension
        self.index = index or faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.dimension):
            raise ValueError(
                f"expected {len(ids)} vectors of {self.dimension}, got {vectors.shape}")
        if len(ids):
            self.index.add_with_ids(vectors, ids)

    def vector(self, id_: int) -> np.ndarray:
        return self.index.reconstruct(int(id_))

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        return int(self.index.remove_ids(ids)) if len(ids) else 0

    def search(self, queries: np.ndarray, k: int, params: faiss.SearchParameters | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query row, best first; ``params`` may restrict the ids."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if not len(self) or k < 1:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        return self.index.search(queries, min(k, len(self)), params=params)

    def save(self, path: str | Path) -> None:
        """Write to a temporary file and rename it over the old one: readers never see half."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(self.index, str(tmp))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> VectorIndex:
        index = faiss.read_index(str(path))
        return cls(index.d, index)
