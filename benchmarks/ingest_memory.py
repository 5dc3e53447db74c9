"""Peak memory of `articleqa index` over a news-size corpus, sampled as the index grows.

Ingest streams (a batch of chunks is embedded and committed before the next is read), so its
memory should stay flat whatever the corpus size; the target is a peak RSS of at most 1.0 GB
for SciFact's 5,183 abstracts (about 19,000 chunks, a 2,225-article news corpus's size). This
writes the corpus as one JSONL file, runs `articleqa index` on it in a child process, and every
half second reads the child's RSS and the chunks its index holds so far (SQLite, read-only),
so that the report shows memory per 1,000 chunks stored, not only the peak. On demand:

    python benchmarks/ingest_memory.py [--limit N] [--encoder-backend onnx|torch] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl.gz"
TARGET_MB = 1000
STEP = 1000  # chunks per row of the report


def write_corpus(source: Path, dest: Path, limit: int | None) -> int:
    """SciFact's abstracts as ArticleQA JSONL records (title, text, url); how many."""
    count = 0
    with gzip.open(source, "rt", encoding="utf-8") as lines, dest.open("w") as out:
        for line in lines:
            if limit is not None and count >= limit:
                break
            doc = json.loads(line)
            out.write(json.dumps({"title": doc["title"], "text": doc["text"],
                                  "url": f"https://scifact.example/{doc['_id']}"}) + "\n")
            count += 1
    return count


def stored_chunks(database: Path) -> int | None:
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=0.2) as db:
            return db.execute("SELECT count(*) FROM chunks").fetchone()[0]
    except sqlite3.Error:
        return None  # not created yet, or busy: the next sample will tell


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N abstracts")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help=f"default: {CORPUS}")
    parser.add_argument("--encoder-backend", choices=("onnx", "torch"), default=None,
                        help="default: the encoder's default")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if not args.corpus.is_file():
        sys.exit(f"SciFact corpus not found at {args.corpus} (or pass --corpus)")

    with tempfile.TemporaryDirectory(prefix="articleqa-memory-") as tmp:
        corpus, index = Path(tmp) / "scifact.jsonl", Path(tmp) / "index"
        docs = write_corpus(args.corpus, corpus, args.limit)
        command = [str(Path(sys.executable).with_name("articleqa")), "index", str(corpus),
                   "--index", str(index), "-q"]
        if args.encoder_backend:
            command += ["--encoder-backend", args.encoder_backend]
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        watched = psutil.Process(child.pid)
        rows: dict[int, float] = {}  # 1,000-chunk step -> highest RSS (MB) seen in it
        while child.poll() is None:
            try:
                rss = watched.memory_info().rss / 1e6
            except psutil.NoSuchProcess:
                break
            chunks = stored_chunks(index / "articles.sqlite3")
            if chunks is not None:
                step = chunks // STEP
                rows[step] = max(rows.get(step, 0.0), rss)
            time.sleep(0.5)
        seconds = time.perf_counter() - started
        chunks = stored_chunks(index / "articles.sqlite3") or 0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e3  # kB -> MB
    figures = {
        "docs": docs, "chunks": chunks, "seconds": round(seconds, 1),
        "chunks_per_s": round(chunks / seconds, 1), "exit_code": child.returncode,
        "peak_rss_mb": round(peak), "target_mb": TARGET_MB,
        "rss_mb_by_chunks": {f"{step * STEP}-{(step + 1) * STEP - 1}": round(mb)
                             for step, mb in sorted(rows.items())},
        "encoder_backend": args.encoder_backend or "default",
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    verdict = "ok" if peak <= TARGET_MB else "ABOVE TARGET"
    print(f"corpus   {docs:,} abstracts -> {chunks:,} chunks in {seconds:.0f} s "
          f"({figures['chunks_per_s']} chunks/s), exit code {child.returncode}")
    print(f"peak     {peak:,.0f} MB RSS (target <= {TARGET_MB}: {verdict}); "
          f"load average {figures['load_average_1m']}")
    for span, mb in figures["rss_mb_by_chunks"].items():
        print(f"  chunks {span:>13}  RSS up to {mb:,} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
