"""Where articles, chunks and vectors live. A new backend goes here: one module implementing
`qa.backends.base.Backend`, and one branch in `open_backend`.

- ``embedded`` (the default): a folder with SQLite + FAISS; one machine, no server.
- ``postgres``: PostgreSQL + pgvector; several servers and ingests share one database.
"""

from __future__ import annotations

import os
from pathlib import Path

from qa.backends.base import Backend, Filters
from qa.backends.manifest import IndexMismatch, Manifest

INDEX_ENV = "ARTICLEQA_INDEX"
DEFAULT_INDEX = "articleqa-index"
FILES_ENV = "ARTICLEQA_FILES"
DEFAULT_FILES = "articleqa-files"
SERVER_SCHEMES = ("postgresql://", "postgres://")


def index_location(location: str | Path | None = None) -> str:
    """``location``, else ``$ARTICLEQA_INDEX``, else ``./articleqa-index``."""
    return str(location or os.environ.get(INDEX_ENV) or DEFAULT_INDEX)


def is_server(location: str) -> bool:
    return location.startswith(SERVER_SCHEMES)


def files_folder(location: str) -> Path:
    """Where files the index is given (chat uploads) are kept: inside an index folder, else
    ``$ARTICLEQA_FILES``, else ``./articleqa-files`` (a database holds no files)."""
    if not is_server(location):
        return Path(location)
    return Path(os.environ.get(FILES_ENV) or DEFAULT_FILES)


def open_backend(location: str | Path | None = None) -> Backend:
    """The backend for a folder (embedded) or a ``postgresql://`` URL (server), not yet open."""
    location = index_location(location)
    if is_server(location):
        from qa.backends.postgres import PostgresBackend  # needs the [postgres] extra

        return PostgresBackend(location)
    from qa.backends.embedded import EmbeddedBackend

    return EmbeddedBackend(location)


__all__ = ["DEFAULT_INDEX", "INDEX_ENV", "Backend", "Filters", "IndexMismatch", "Manifest",
           "files_folder", "index_location", "is_server", "open_backend"]
