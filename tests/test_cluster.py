"""`articleqa index --cluster` against a real PostgreSQL: the index it builds is the one a
single process builds, a killed job's rerun leaves no article missing or doubled, and a
local cluster keeps every socket on the loopback interface."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from qa import ArticleQA

pytest.importorskip("distributed", reason="Dask is not installed: pip install 'articleqa[cluster]'")
psutil = pytest.importorskip("psutil", reason="psutil comes with Dask's distributed")

DOCS = 200
QUESTIONS = 20
WORKERS = 2
LOOPBACK = ("127.", "::1", "::ffff:127.")
BROKEN = "broken.json"


def write_scifact(beir: Path, folder: Path, docs: int, questions: int,
                  short: bool = False) -> list[str]:
    """``docs`` SciFact abstracts as one JSON file each, first those relevant to the first
    ``questions`` test claims (which are returned), so that every claim has its evidence.
    ``short`` cuts the others to two sentences: small documents for CI's two cores, where
    the relevant ones, whole, still span several chunks each."""
    claims = {}
    for line in (beir / "queries.jsonl").read_text().splitlines():
        row = json.loads(line)
        claims[row["_id"]] = row["text"]
    wanted: dict[str, str] = {}  # relevant abstract -> its claim
    for line in (beir / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        query, doc, _ = line.split("\t")
        if len(set(wanted.values()) | {query}) <= questions:
            wanted.setdefault(doc, query)
    with gzip.open(beir / "corpus.jsonl.gz", "rt") as corpus:
        rows = [json.loads(line) for line in corpus]
    rows.sort(key=lambda row: row["_id"] not in wanted)  # stable: the relevant ones first
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows[:docs]:
        text = row["text"]
        if short and row["_id"] not in wanted:
            text = ". ".join(text.split(". ")[:2])
        (folder / f"{row['_id']}.json").write_text(json.dumps({"title": row["title"],
                                                               "text": text}))
    return [claims[q] for q in dict.fromkeys(wanted.values())]


@contextmanager
def database(pg_server):
    """A fresh database on the session's server for a whole module, dropped after it."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield pg_server.get_uri(name)
    finally:
        with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def corpus(shared_data, tmp_path_factory) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("scifact")
    questions = write_scifact(shared_data / "scifact", folder, DOCS, QUESTIONS, short=True)
    (folder / BROKEN).write_text("{not json")  # fails alone
    return folder, questions


@pytest.fixture(scope="module")
def scheduler():
    """One local cluster for the module (as `--cluster local` starts it): its address."""
    from qa.cluster import connect

    with connect("local", WORKERS) as client:
        yield client.scheduler.address


@pytest.fixture(scope="module")
def reference(pg_server, corpus, encoder):
    """The same files ingested by a single process: the index to match."""
    with database(pg_server) as url:
        kb = ArticleQA(url, encoder=encoder)
        report = kb.add(corpus[0], progress=False)
        yield kb, report
        kb.close()


def snapshot(kb: ArticleQA) -> dict[str, tuple]:
    """Per article id: its source, title, text, and (start, end, text) of each chunk."""
    return {row.id: (row.source, row.title, row.text, kb.backend.article_chunks(row.id))
            for row in kb.articles()}


def vectors(kb: ArticleQA) -> dict[tuple[str, int, int], np.ndarray]:
    ids = kb.backend.chunk_ids()
    rows = kb.backend.chunks(ids)
    return {(rows[i].article_id, rows[i].start, rows[i].end): v
            for i, v in zip(ids, kb.backend.chunk_vectors(ids), strict=True)}


def top_passages(kb: ArticleQA, questions: list[str]) -> list[tuple[str, int, int]]:
    return [(p.article_id, p.start, p.end)
            for p in (kb.search(q, k=1)[0][0] for q in questions)]


def test_cluster_ingest_builds_the_index_a_single_process_builds(pg_url, corpus, scheduler,
                                                                 reference, encoder):
    folder, questions = corpus
    single, single_report = reference
    kb = ArticleQA(pg_url, encoder=encoder)
    report = kb.add(folder, progress=False, cluster=scheduler)

    assert sorted(report.added) == sorted(single_report.added) and len(report.added) == DOCS
    assert report.failed == single_report.failed
    assert [source for source, _ in report.failed] == [str(folder / BROKEN)]
    assert snapshot(kb) == snapshot(single)
    ours, theirs = vectors(kb), vectors(single)
    assert ours.keys() == theirs.keys()
    assert np.allclose(np.stack(list(ours.values())),
                       np.stack([theirs[key] for key in ours]), atol=1e-5)
    assert top_passages(kb, questions) == top_passages(single, questions)
    kb.close()


def test_a_source_in_two_files_keeps_its_last_copy_as_a_single_process_does(pg_url, scheduler,
                                                                            encoder, tmp_path):
    url = "https://example.org/harbour"
    for name, text in (("a.jsonl", "The harbour bridge closed."),
                       ("b.jsonl", "The harbour bridge reopened on Monday.")):
        (tmp_path / name).write_text(json.dumps({"url": url, "title": "Harbour", "text": text}))
    kb = ArticleQA(pg_url, encoder=encoder)
    report = kb.add(tmp_path, progress=False, cluster=scheduler)  # one task per file
    assert report.added == [url] and not report.failed
    assert [row.text for row in kb.articles()] == ["The harbour bridge reopened on Monday."]
    kb.close()


def test_an_encoder_pool_embeds_while_the_other_workers_chunk(pg_server, corpus, scheduler,
                                                             reference, encoder):
    """A worker started with `--resources encoder=1` (as each GPU worker would be) takes
    every embed-and-write task, the plain workers every chunking task; same index."""
    from distributed import Client, get_task_stream
    from distributed.utils import key_split

    with Client(scheduler) as client:
        pool = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", scheduler,
             "--resources", "encoder=1", "--nthreads", "1", "--host", "127.0.0.1",
             "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client.wait_for_workers(WORKERS + 1, timeout=120)
            encoders = {address for address, worker in client.scheduler_info()["workers"].items()
                        if worker["resources"]}
            with database(pg_server) as url, get_task_stream(client) as stream:
                kb = ArticleQA(url, encoder=encoder)
                kb.add(corpus[0], progress=False, cluster=scheduler)
                assert snapshot(kb) == snapshot(reference[0])
                kb.close()
        finally:
            pool.terminate()
            pool.wait(30)
        while len(client.scheduler_info()["workers"]) > WORKERS:  # gone before the next test
            time.sleep(0.1)
    where: dict[str, set[bool]] = {}
    for task in stream.data:
        where.setdefault(key_split(task["key"]), set()).add(task["worker"] in encoders)
    assert len(encoders) == 1 and where == {"plan": {False}, "store": {True}}


def test_cluster_needs_a_postgresql_index(tmp_path, capsys):
    from qa.cli import main

    assert main(["index", str(tmp_path), "--index", str(tmp_path / "index"),
                 "--cluster", "local"]) == 2
    assert "--cluster needs a PostgreSQL index" in capsys.readouterr().err


def test_missing_dask_says_which_extra_to_install(monkeypatch):
    from qa import cluster

    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if absent
    with pytest.raises(RuntimeError, match=r"pip install 'articleqa\[cluster\]'"):
        cluster._distributed()


def inet_sockets(root: psutil.Process) -> tuple[list[psutil.Process], list[tuple[int, str, str]]]:
    """``root`` and its descendants, and every end (pid, address, status) of their inet
    sockets."""
    processes = [root, *root.children(recursive=True)]
    found = []
    for process in processes:
        try:
            connections = process.net_connections(kind="inet")
        except psutil.Error:  # ended meanwhile
            continue
        found += [(process.pid, address.ip, conn.status)
                  for conn in connections for address in (conn.laddr, conn.raddr) if address]
    return processes, found


def running(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running: a zombie whose parent was killed counts as ended."""
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.fixture(scope="module")
def killed(pg_server, corpus, encoder):
    """`articleqa index --cluster local` SIGKILLed (its process group: client and workers)
    once some articles are stored; the sockets of its processes, sampled until then."""
    with database(pg_server) as url:
        ArticleQA(url, encoder=encoder).close()  # created first, so progress can be watched
        watch = ArticleQA(url, encoder=encoder)
        process = subprocess.Popen(
            [sys.executable, "-m", "qa.cli", "index", str(corpus[0]), "--index", url,
             "--cluster", "local", "--workers", str(WORKERS), "-q"],
            env={**os.environ, "HF_HUB_OFFLINE": "1"}, start_new_session=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        root = psutil.Process(process.pid)
        seen: dict[int, psutil.Process] = {}
        most, sockets = 0, []
        deadline = time.monotonic() + 240
        while len(watch) == 0 and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[1].decode()[-2000:]
            processes, found = inet_sockets(root)
            seen |= {p.pid: p for p in processes}
            most, sockets = max(most, len(processes)), sockets + found
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 10
        while running(list(seen.values())) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not running(list(seen.values())), "a worker outlived its killed client"
        yield url, most, sockets
        watch.close()


def test_local_cluster_sockets_are_loopback_only(killed):
    _, processes, sockets = killed
    assert processes > WORKERS, "the workers' processes were never seen"
    assert {status for _, _, status in sockets} >= {"LISTEN", "ESTABLISHED"}
    assert len({pid for pid, _, _ in sockets}) > WORKERS  # the client's and each worker's
    outside = sorted({(pid, ip, status) for pid, ip, status in sockets
                      if not ip.startswith(LOOPBACK)})
    assert not outside, f"sockets off the loopback interface: {outside}"


@pytest.mark.slow
def test_killed_cluster_ingest_reruns_without_duplicates_or_gaps(killed, corpus, scheduler,
                                                                 reference, encoder):
    url, _, _ = killed
    single, _ = reference
    kb = ArticleQA(url, encoder=encoder)
    done = len(kb)
    assert 0 < done < DOCS, "the kill came after the whole ingest"
    for article in kb.articles():  # only whole articles were committed
        spans = kb.backend.article_chunks(article.id)
        assert spans == [(c.start, c.end, c.text) for c in kb.chunk(article)]

    report = kb.add(corpus[0], progress=False, cluster=scheduler)
    assert (len(report.added), len(report.unchanged), len(report.failed)) == (
        DOCS - done, done, 1)
    assert snapshot(kb) == snapshot(single)  # no article missing, no chunk twice
    assert kb.backend.count_chunks() == single.backend.count_chunks()
    kb.close()
