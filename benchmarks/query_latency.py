"""Single-query vector search latency and recall against index size, exact vs the chosen index.

Vectors are real MiniLM chunk vectors from the cached indexes (every ``articles.sqlite3`` under
.articleqa-cache/, deduplicated) as far as they go. Larger sizes add synthetic vectors: a random
convex mixture (Dirichlet weights) of 2 or 3 random real vectors plus Gaussian noise of
``NOISE`` per dimension, renormalised, so they sit among the real ones instead of being
uniform random unit vectors, which no real corpus resembles and which no IVF index can cluster.
Queries are real chunk vectors held out from every base set. The chosen index is built the way
ingest builds it, in batches through ``VectorIndex.add``, so its build time includes every
rebuild (exact -> IVF, retrains); recall@10 is against exact search over the same vectors.

Run on demand: python benchmarks/query_latency.py --sizes 10000,100000,1000000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from tqdm import tqdm

from embeddings import VectorIndex
from embeddings.index import EXACT_LIMIT, NPROBE

DIMENSION = 384
NOISE = 0.005  # per dimension: a noise vector of norm ~0.1
BATCH = 10_000  # rows per add(), like an ingest that commits every few hundred articles
CACHE = Path(__file__).resolve().parent.parent / ".articleqa-cache"


def real_vectors(cache: Path) -> np.ndarray:
    """Every distinct chunk vector stored in the cached indexes."""
    parts = []
    for db in sorted(cache.rglob("articles.sqlite3")):
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            blobs = conn.execute("SELECT vector FROM chunks").fetchall()
        parts += [np.frombuffer(blob, np.float32) for (blob,) in blobs
                  if len(blob) == 4 * DIMENSION]
    if not parts:
        raise SystemExit(f"no {DIMENSION}-dimensional chunk vectors under {cache}")
    return np.unique(np.stack(parts), axis=0)


def synthetic_vectors(rows: int, real: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((rows, DIMENSION), np.float32)
    for start in tqdm(range(0, rows, BATCH), desc="synthesising", unit="batch", leave=False):
        n = min(BATCH, rows - start)
        weights = rng.dirichlet(np.ones(3), n).astype(np.float32)
        weights[rng.random(n) < 0.5, 2] = 0  # half are mixtures of 2
        weights /= weights.sum(axis=1, keepdims=True)
        mixed = np.einsum("np,npd->nd", weights, real[rng.integers(0, len(real), (n, 3))])
        mixed += rng.normal(0, NOISE, (n, DIMENSION)).astype(np.float32)
        out[start:start + n] = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
    return out


def timed_searches(index: VectorIndex, queries: np.ndarray, k: int, desc: str
                   ) -> tuple[list[float], list[list[int]]]:
    index.search(queries[0], k)  # warm up
    times, found = [], []
    for query in tqdm(queries, desc=desc, unit="query", leave=False):
        started = time.perf_counter()
        hits = index.search(query, k)[0]
        times.append(1000 * (time.perf_counter() - started))
        found.append([i for i, _ in hits])
    return times, found


def ms(times: list[float], percentile: int) -> float:
    return round(float(np.percentile(times, percentile)), 3)


def measure(size: int, base: np.ndarray, real: int, queries: np.ndarray, k: int) -> dict:
    ids = np.arange(size, dtype=np.int64)
    exact = VectorIndex(DIMENSION, threshold=size)
    exact.add(ids, base)
    truth = [[i for i, _ in hits[:10]] for hits in exact.search(queries, 10)]  # batched
    exact_times, _ = timed_searches(exact, queries, k, f"{size:,} exact")
    del exact

    started = time.perf_counter()
    chosen = VectorIndex(DIMENSION)
    for start in tqdm(range(0, size, BATCH), desc=f"{size:,} build", unit="batch", leave=False):
        chosen.add(ids[start:start + BATCH], base[start:start + BATCH])
    build_s = time.perf_counter() - started
    times, found = timed_searches(chosen, queries, k, f"{size:,} {chosen.kind}")
    with tempfile.TemporaryDirectory() as folder:
        chosen.save(Path(folder) / "index.faiss")
        saved_bytes = (Path(folder) / "index.faiss").stat().st_size

    recall = np.mean([len(set(f[:10]) & set(t)) / len(t)
                      for f, t in zip(found, truth, strict=True)])
    synthetic_share = np.mean([np.mean(np.array(t) >= real) for t in truth])
    return {"size": size, "real": min(size, real), "synthetic": max(0, size - real),
            "index": chosen.describe(), "exact_p50_ms": ms(exact_times, 50),
            "exact_p95_ms": ms(exact_times, 95), "p50_ms": ms(times, 50),
            "p95_ms": ms(times, 95), "recall_at_10": round(float(recall), 4),
            "synthetic_share_of_exact_top10": round(float(synthetic_share), 3),
            "build_s": round(build_s, 2), "bytes_per_vector": round(saved_bytes / size, 1),
            "load_average_1min": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000",
                        help="comma-separated index sizes")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=50, help="neighbours per query (ask fetches 50)")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))

    rng = np.random.default_rng(0)
    real = real_vectors(args.cache)
    real = real[rng.permutation(len(real))]
    queries, pool = real[:args.queries], real[args.queries:]
    extra = synthetic_vectors(max(0, sizes[-1] - len(pool)), pool, rng)
    vectors = np.concatenate([pool, extra])  # each size takes a prefix: real ones first

    machine = (f"{platform.platform()}, {os.cpu_count()} CPUs, "
               f"FAISS {faiss.__version__} with {faiss.omp_get_max_threads()} threads")
    load = os.getloadavg()[0]
    print(f"{machine}; load average at start {load:.2f}")
    print(f"{len(pool):,} real vectors in the base sets ({len(real):,} distinct, "
          f"{len(queries)} held out as queries); sizes beyond that are padded with synthetic "
          f"mixtures of 2-3 real vectors + N(0, {NOISE}) noise. k={args.k}, single queries; "
          f"exact below {EXACT_LIMIT:,} vectors.")
    rows = []
    for size in sizes:
        rows.append(measure(size, vectors[:size], len(pool), queries, args.k))
        print(f"  {size:,} done: {rows[-1]}", flush=True)

    print(f"\n{'size':>10} {'real':>7} {'synth':>9} {'exact p50/p95 ms':>17} "
          f"{'index':>22} {'p50/p95 ms':>12} {'R@10':>6} {'synth in top10':>15} "
          f"{'build s':>8} {'B/vector':>9} {'load':>5}")
    for row in rows:
        print(f"{row['size']:>10,} {row['real']:>7,} {row['synthetic']:>9,} "
              f"{row['exact_p50_ms']:>8.2f}/{row['exact_p95_ms']:<8.2f} {row['index']:>22} "
              f"{row['p50_ms']:>5.2f}/{row['p95_ms']:<6.2f} {row['recall_at_10']:>6.3f} "
              f"{row['synthetic_share_of_exact_top10']:>15.0%} {row['build_s']:>8.1f} "
              f"{row['bytes_per_vector']:>9,.0f} {row['load_average_1min']:>5.1f}")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": machine, "load_average_at_start": round(load, 2),
            "dimension": DIMENSION, "k": args.k,
            "exact_limit": EXACT_LIMIT, "nprobe": NPROBE,
            "queries": {"count": len(queries),
                        "source": "real chunk vectors held out from every base set"},
            "vectors": {"real": len(pool), "real_distinct_total": len(real),
                        "synthetic": len(extra),
                        "synthesis": f"Dirichlet mixture of 2-3 random real vectors + "
                                     f"N(0, {NOISE}) per dimension, renormalised"},
            "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
