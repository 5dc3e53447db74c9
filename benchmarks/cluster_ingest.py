"""Cluster ingest beside a single process: the same SciFact files, the same index?

Writes the first ``--docs`` SciFact abstracts (first those relevant to the first
``--questions`` test claims) as one JSON file each, starts a PostgreSQL with pgvector as
`articleqa db start` does, and indexes the folder twice with the CLI, each into its own
database: ``articleqa index`` in one process, then ``articleqa index --cluster local``. Checks
that both hold the same articles, chunk texts and offsets, vectors within 1e-5 and the same
top passage for every claim, and reports chunks/s of each, end to end as a user waits for
them (imports, cluster start and model loads included), and per worker. Run on demand, not
in the tests:

    python benchmarks/cluster_ingest.py [--docs 1000] [--workers N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from embeddings.encoder import available_cpus  # noqa: E402
from qa import ArticleQA  # noqa: E402
from qa.backends import pgserver  # noqa: E402
from tests.test_cluster import snapshot, top_passages, vectors, write_scifact  # noqa: E402

SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
OUT = ROOT / "artifacts" / "bench" / "cluster_ingest.json"


def ingest(folder: Path, url: str, *cluster: str) -> float:
    """Seconds `articleqa index` takes, start to exit."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "qa.cli", "index", str(folder), "--index", url, "-q",
                    *cluster], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--workers", type=int, default=available_cpus())
    parser.add_argument("--json", type=Path, default=OUT, help=f"default: {OUT}")
    args = parser.parse_args()
    if not SCIFACT.is_dir():
        sys.exit(f"SciFact not found at {SCIFACT} (it lives in ../shared/data)")
    import psycopg

    with tempfile.TemporaryDirectory(prefix="articleqa-cluster-") as tmp:
        folder = Path(tmp) / "scifact"
        questions = write_scifact(SCIFACT, folder, args.docs, args.questions)
        single_url = pgserver.start(Path(tmp) / "db")
        cluster_url = single_url.replace("/articleqa?", "/articleqa_cluster?")
        with psycopg.connect(single_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE articleqa_cluster")
        try:
            load = round(os.getloadavg()[0], 2)
            single_s = ingest(folder, single_url)
            cluster_s = ingest(folder, cluster_url, "--cluster", "local",
                               "--workers", str(args.workers))
            single, clustered = ArticleQA(single_url), ArticleQA(cluster_url)
            chunks = single.backend.count_chunks()
            ours, theirs = vectors(clustered), vectors(single)
            same_vectors = ours.keys() == theirs.keys() and bool(np.allclose(
                np.stack(list(ours.values())), np.stack([theirs[k] for k in ours]), atol=1e-5))
            tops = zip(top_passages(clustered, questions), top_passages(single, questions),
                       strict=True)
            figures = {
                "docs": args.docs, "chunks": chunks, "workers": args.workers,
                "cpus": os.cpu_count(), "load_before": load, "python": platform.python_version(),
                "single_s": round(single_s, 1), "cluster_s": round(cluster_s, 1),
                "single_chunks_per_s": round(chunks / single_s, 1),
                "cluster_chunks_per_s": round(chunks / cluster_s, 1),
                "cluster_chunks_per_s_per_worker": round(chunks / cluster_s / args.workers, 1),
                "same_articles_and_chunks": snapshot(clustered) == snapshot(single),
                "vectors_within_1e-5": same_vectors,
                "same_top_passage": sum(a == b for a, b in tops), "questions": len(questions),
            }
            single.close()
            clustered.close()
        finally:
            pgserver.stop(Path(tmp) / "db")
    print(json.dumps(figures, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    ok = figures["same_articles_and_chunks"] and figures["vectors_within_1e-5"]
    return 0 if ok and figures["same_top_passage"] == figures["questions"] else 1


if __name__ == "__main__":
    sys.exit(main())
