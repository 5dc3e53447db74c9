"""The embedded backend: one folder, SQLite for the truth, FAISS as its search cache.

The folder holds ``manifest.json`` (what built the index), ``articles.sqlite3`` (articles,
chunks, vectors; see `qa.backends.sqlite`) and ``vectors-<generation>.faiss``. Writes go to
SQLite only; the FAISS file follows SQLite's generation counter and is patched from it
whenever it lags behind (after an ingest here, one in another process, or one that was
killed), so the two never disagree for long and a lost cache is never lost data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import numpy as np

from embeddings import VectorIndex
from qa.backends.manifest import EMBEDDED, IndexMismatch, Manifest
from qa.backends.sqlite import SCHEMA_VERSION, UPGRADABLE, SQLiteStore

MANIFEST_FILE = "manifest.json"
STORE_FILE = "articles.sqlite3"
PATCH_ROWS = 10_000  # vectors read from SQLite at a time when the cache catches up


class EmbeddedBackend(SQLiteStore):
    kind: ClassVar[str] = EMBEDDED
    schema_version: ClassVar[int] = SCHEMA_VERSION
    upgradable: ClassVar[tuple[int, ...]] = UPGRADABLE

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.location = str(self.folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise IndexMismatch(f"{self.folder} is a file, not an index folder")
        super().__init__(self.folder / STORE_FILE, dimension=0)

    def read_manifest(self) -> Manifest | None:
        path = self.folder / MANIFEST_FILE
        if path.exists():
            return Manifest.from_json(path.read_text(), str(path))
        if self.folder.is_dir() and any(self.folder.iterdir()):
            raise IndexMismatch(
                f"{self.folder} is not empty and holds no ArticleQA index (no {MANIFEST_FILE}); "
                "choose another --index folder")
        return None

    def open(self, manifest: Manifest) -> None:
        self.dimension = manifest.dimension
        self.folder.mkdir(parents=True, exist_ok=True)
        self.connect()  # creates the database, or upgrades an older schema in place
        tmp = self.folder / (MANIFEST_FILE + ".tmp")
        tmp.write_text(manifest.to_json())
        os.replace(tmp, self.folder / MANIFEST_FILE)
        self._load_vectors()

    # --- the vector cache ------------------------------------------------------------

    def _vector_file(self, generation: int) -> Path:
        return self.folder / f"vectors-{generation:010d}.faiss"

    def _load_vectors(self) -> None:
        """Load the FAISS cache for the store's generation, patching it from SQLite if stale.

        Another process may replace the cache file between listing and loading it (a reader
        beside an ingest): then list again. An unreadable cache file is rebuilt from SQLite.
        """
        for _ in range(5):
            files = sorted(self.folder.glob("vectors-*.faiss"))
            try:
                return self._patch(files)
            except FileNotFoundError:
                continue
        self._patch([])

    def _patch(self, files: list[Path]) -> None:
        with self.snapshot():  # the generation and the chunk ids of one committed state
            generation, stored = self.generation, np.asarray(self.chunk_ids(), np.int64)
        current = self._vector_file(generation)
        if current in files:
            self.vectors, self.cached_generation = VectorIndex.load(current), generation
            return
        self.vectors = VectorIndex.load(files[-1]) if files else VectorIndex(self.dimension)
        cached = self.vectors.ids()
        self.vectors.remove(np.setdiff1d(cached, stored))
        missing = np.setdiff1d(stored, cached)
        for start in range(0, len(missing), PATCH_ROWS):
            part = missing[start:start + PATCH_ROWS]
            self.vectors.add(part, self.chunk_vectors(part))
        self.vectors.save(current)
        self.cached_generation = generation
        for old in files:
            if old != current:
                old.unlink(missing_ok=True)

    def refresh(self) -> None:
        if self.generation != self.cached_generation:
            self._load_vectors()

    flush = refresh  # the cache is saved when it catches up with SQLite

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())
