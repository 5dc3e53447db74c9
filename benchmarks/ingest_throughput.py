"""Ingest throughput: how close `ArticleQA.add_articles` comes to the bare encoder.

Embedding is the one cost of ingest that cannot be avoided; everything else the pipeline
does (chunking, title prefixes, SQLite and FTS5 writes, FAISS add and save) is overhead on
top of it. This script indexes the BEIR SciFact corpus end to end, then times a bare
``Encoder.encode`` of exactly the texts the pipeline embedded (each chunk with its title
prefix: one encoder input per chunk, nothing else), in the same process with the same loaded
model and encoder backend, and reports the ratio of the two throughputs (target: >= 0.9). Bare and
pipeline runs alternate (bare, pipeline, bare, ...) and medians are reported, so drift in
machine load hurts neither side. Run on demand, not in the tests:

    python benchmarks/ingest_throughput.py [--limit N] [--repeats R] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from embeddings import Encoder  # noqa: E402
from embeddings.encoder import BACKENDS  # noqa: E402
from qa import Article, ArticleQA  # noqa: E402

CORPUS = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl.gz"
TARGET_RATIO = 0.9


def load_corpus(path: Path, limit: int | None) -> list[Article]:
    """SciFact documents as articles, in file order; the first ``limit`` if given."""
    articles: list[Article] = []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            if limit is not None and len(articles) >= limit:
                break
            if line.strip():
                doc = json.loads(line)
                articles.append(Article(source=f"scifact:{doc['_id']}", title=doc["title"],
                                        text=doc["text"]))
    return articles


def time_bare(enc: Encoder, inputs: list[str]) -> float:
    start = time.perf_counter()
    enc.encode(inputs)
    return time.perf_counter() - start


def encoder_inputs(kb: ArticleQA, articles: list[Article]) -> list[str]:
    """The texts ``add_articles`` embeds: each chunk with its title prefix."""
    ingester = kb.ingester
    return [text for article in articles
            for text in ingester.passage_inputs(article, ingester.chunk(article))]


def time_pipeline(enc: Encoder, articles: list[Article]) -> tuple[float, int, int]:
    """(seconds, chunks stored, bytes on disk) for one ingest into a fresh index folder."""
    with tempfile.TemporaryDirectory(prefix="articleqa-bench-") as tmp:
        kb = ArticleQA(Path(tmp) / "index", encoder=enc)
        start = time.perf_counter()
        report = kb.add_articles(articles, progress=True)
        seconds = time.perf_counter() - start
        if report.failed:
            print(f"warning: {len(report.failed)} articles failed, e.g. {report.failed[0]}",
                  file=sys.stderr)
        chunks = kb.backend.count_chunks()
        kb.close()  # checkpoints the WAL into the database file
        return seconds, chunks, kb.backend.size_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N docs")
    parser.add_argument("--repeats", type=int, default=1,
                        help="pipeline runs, each followed by a bare run (default 1)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help=f"default: {CORPUS}")
    parser.add_argument("--encoder-backend", choices=BACKENDS, default=None,
                        help="default: the encoder's default for the model")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if not args.corpus.is_file():
        sys.exit(f"SciFact corpus not found at {args.corpus}: place BEIR's scifact "
                 "corpus.jsonl.gz there (or pass --corpus)")
    if args.repeats < 1 or (args.limit is not None and args.limit < 1):
        sys.exit("--repeats and --limit must be at least 1")

    import torch

    load_before = round(os.getloadavg()[0], 2)
    articles = load_corpus(args.corpus, args.limit)
    enc = Encoder(backend=args.encoder_backend)
    with tempfile.TemporaryDirectory(prefix="articleqa-bench-") as tmp:  # inputs, untimed
        kb = ArticleQA(Path(tmp) / "index", encoder=enc)
        inputs = encoder_inputs(kb, articles)
        n_chunks = len(inputs)
        kb.close()
    enc.encode(inputs[:enc.batch_size])  # warm-up: first-call costs belong to neither

    bare = [time_bare(enc, inputs)]
    pipeline = []
    for _ in range(args.repeats):
        seconds, chunks, size = time_pipeline(enc, articles)
        pipeline.append(seconds)
        bare.append(time_bare(enc, inputs))
    if chunks != n_chunks:
        print(f"warning: pipeline stored {chunks} chunks, bare run encoded {n_chunks}",
              file=sys.stderr)

    bare_s, pipe_s = statistics.median(bare), statistics.median(pipeline)
    figures = {
        "docs": len(articles),
        "chunks": chunks,
        "encoder_inputs": len(inputs),  # one per chunk
        "pipeline_seconds": round(pipe_s, 2),
        "pipeline_chunks_per_s": round(chunks / pipe_s, 1),
        "bare_seconds": round(bare_s, 2),
        "bare_chunks_per_s": round(n_chunks / bare_s, 1),
        "ratio": round(bare_s / pipe_s, 3),  # same texts both sides: throughput ratio
        "target_ratio": TARGET_RATIO,
        "pipeline_runs_s": [round(s, 2) for s in pipeline],
        "bare_runs_s": [round(s, 2) for s in bare],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "index_bytes": size,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "encoder_backend": enc.backend,
        "batch_size": enc.batch_size,
        "load_average_1m": [load_before, round(os.getloadavg()[0], 2)],  # others on the box?
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        verdict = "ok" if figures["ratio"] >= TARGET_RATIO else "BELOW TARGET"
        print(f"machine   {figures['cpu_count']} CPUs, {figures['platform']}, "
              f"{enc.backend} encoder (torch {figures['torch']}, {figures['torch_threads']} "
              "threads), "
              f"load average {load_before} before, {figures['load_average_1m'][1]} after")
        print(f"corpus    {figures['docs']:,} docs -> {chunks:,} chunks; "
              f"{len(inputs):,} encoder inputs")
        print(f"pipeline  {pipe_s:8.2f} s  {figures['pipeline_chunks_per_s']:7.1f} chunks/s  "
              f"runs {figures['pipeline_runs_s']}")
        print(f"bare      {bare_s:8.2f} s  {figures['bare_chunks_per_s']:7.1f} chunks/s  "
              f"runs {figures['bare_runs_s']} (median)")
        print(f"ratio     {figures['ratio']:.3f} pipeline/bare throughput "
              f"(target >= {TARGET_RATIO}: {verdict})")
        print(f"memory    peak RSS {figures['peak_rss_mib']:,.1f} MiB")
        print(f"index     {size / 2**20:,.1f} MiB on disk")
    return 0


if __name__ == "__main__":
    sys.exit(main())
