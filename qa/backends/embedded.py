"""The embedded backend: one folder, SQLite for the truth, FAISS as its search cache.

The folder holds ``manifest.json`` (what built the index), ``articles.sqlite3`` (articles,
chunks, vectors; see `qa.backends.sqlite`) and ``vectors-<generation>.faiss``. Writes go to
SQLite only; the FAISS file follows SQLite's generation counter and is patched from it
whenever it lags behind (after an ingest here, one in another process, or one that was
killed), so the two never disagree for long and a lost cache is never lost data: a missing
or unreadable cache is rebuilt. The manifest and the database are not caches: either one
missing or damaged is refused with one line saying which file and what to do, and the
database records what built it, so a hand-edited manifest cannot reopen it another way.
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
RESTORE = ("restore it from a backup, or index the sources again into a new folder "
           "(--index NEWDIR)")


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
        if path.exists() or path.is_symlink():
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise IndexMismatch(f"{path} is not an ArticleQA manifest (not UTF-8 text); "
                                    f"{RESTORE}") from exc
            except OSError as exc:
                raise IndexMismatch(f"{path} is not a readable ArticleQA manifest "
                                    f"({exc.strerror or exc}); {RESTORE}") from exc
            return Manifest.from_json(text, str(path), RESTORE)
        if self.folder.is_dir() and any(self.folder.iterdir()):
            raise IndexMismatch(
                f"{self.folder} is not empty and holds no ArticleQA index (no {MANIFEST_FILE}); "
                "choose another --index folder")
        return None

    def open(self, manifest: Manifest) -> None:
        """Create the index, or open the one here (upgrading an older schema in place)
        after checking that its database is there, readable and built as ``manifest`` says."""
        here = self.folder / MANIFEST_FILE  # (another process may be creating the index)
        existing = self.read_manifest() if here.exists() or here.is_symlink() else None
        if existing is not None:
            existing.check(manifest, self.location, self.upgradable)
            self._require_database()
        self.dimension = manifest.dimension
        self.folder.mkdir(parents=True, exist_ok=True)
        self.connect(existing is not None, RESTORE)
        try:
            with self.refusing_damage(RESTORE):
                self._check_built_with(existing or manifest, manifest)
                tmp = self.folder / (MANIFEST_FILE + ".tmp")
                tmp.write_text(manifest.to_json())
                os.replace(tmp, self.folder / MANIFEST_FILE)
                self._load_vectors()
        except BaseException:
            self.close()
            raise

    def _require_database(self) -> None:
        """An index's manifest without its database is no empty index: refuse it."""
        manifest = self.folder / MANIFEST_FILE
        wal = self.path.with_name(self.path.name + "-wal")
        if not self.path.exists():
            problem = f"is missing ({manifest} says an index was built here)"
        elif self.path.is_dir():
            problem = "is a directory, not a database file"
        elif self.path.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size):
            problem = "is empty (0 bytes)"
        else:
            return
        raise IndexMismatch(f"the index's database {self.path} {problem}; {RESTORE}")

    def _check_built_with(self, existing: Manifest, wanted: Manifest) -> None:
        """Refuse a manifest that disagrees with what the database says built it: the
        recorded settings (written when the index was made, or on first open of an index
        from before the record) and the length of a stored vector."""
        settings = {"dimension": existing.dimension, "chunking": existing.chunking,
                    "passage_format": existing.passage_format}
        stored = self.vector_dimension()
        if stored is not None:
            settings["dimension"] = stored
        recorded = self.built_with(settings)
        if stored is not None:
            recorded["dimension"] = stored  # the vectors themselves have the last word
        manifest = self.folder / MANIFEST_FILE
        for name, value in recorded.items():
            if getattr(existing, name) != value:
                raise IndexMismatch(
                    f"{manifest} says {name} {getattr(existing, name)!r} but the database "
                    f"{self.path} was built with {value!r}: the manifest was edited or belongs "
                    f"to another index; put {name} back to {value!r} or restore {MANIFEST_FILE} "
                    f"from a backup, or index the sources again into a new folder (--index "
                    f"NEWDIR)")
        if wanted.dimension != recorded["dimension"]:
            raise IndexMismatch(
                f"{self.path} holds {recorded['dimension']}-dimensional vectors but model "
                f"{wanted.model!r} gives {wanted.dimension}; open it with the model that built "
                f"it, or index the sources again into a new folder (--index NEWDIR)")

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

    def _read_cache(self, path: Path) -> VectorIndex | None:
        """The cache in ``path``, or None where it is damaged (garbage, truncated, a
        directory, another dimension): then it is rebuilt from SQLite like a missing one."""
        try:
            vectors = VectorIndex.load(path)
        except (RuntimeError, ValueError, OSError, MemoryError) as exc:  # FAISS: RuntimeError
            if not path.exists():  # replaced by another process meanwhile: list again
                raise FileNotFoundError(path) from exc
            return None
        return vectors if vectors.dimension == self.dimension else None

    def _patch(self, files: list[Path]) -> None:
        with self.snapshot():  # the generation and the chunk ids of one committed state
            generation, stored = self.generation, np.asarray(self.chunk_ids(), np.int64)
        current = self._vector_file(generation)
        if current in files and (vectors := self._read_cache(current)) is not None:
            self.vectors, self.cached_generation = vectors, generation
            return
        older = [f for f in files if f != current]
        vectors = self._read_cache(older[-1]) if older else None
        self.vectors = VectorIndex(self.dimension) if vectors is None else vectors
        cached = self.vectors.ids()
        self.vectors.remove(np.setdiff1d(cached, stored))
        missing = np.setdiff1d(stored, cached)
        for start in range(0, len(missing), PATCH_ROWS):
            part = missing[start:start + PATCH_ROWS]
            self.vectors.add(part, self.chunk_vectors(part))
        _discard(current, directory_only=True)
        if not current.is_dir():  # a full directory of that name: the cache stays in memory
            self.vectors.save(current)
        self.cached_generation = generation
        for old in older:
            _discard(old)

    def refresh(self) -> None:
        if self.generation != self.cached_generation:
            self._load_vectors()

    flush = refresh  # the cache is saved when it catches up with SQLite

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())


def _discard(path: Path, directory_only: bool = False) -> None:
    """Delete a cache file, or an empty directory in its place; leave anything else be."""
    try:
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        elif not directory_only:
            path.unlink(missing_ok=True)
    except OSError:
        pass
