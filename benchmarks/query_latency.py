"""Query latency and memory of the vector index against corpus size, 1k to 1M chunks.

Real corpora here stop near 10k chunks, so larger sizes use random unit vectors of the model's
dimension: search cost depends on the count and dimension, not on what the vectors mean.
Run on demand: python benchmarks/query_latency.py [--sizes 1000 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from embeddings import VectorIndex

DIMENSION = 384


def unit_vectors(rows: int, rng: np.random.Generator) -> np.ndarray:
    vectors = rng.standard_normal((rows, DIMENSION), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def measure(size: int, queries: int, k: int, rng: np.random.Generator) -> dict:
    index = VectorIndex(DIMENSION)
    for start in range(0, size, 100_000):
        rows = min(100_000, size - start)
        index.add(np.arange(start, start + rows), unit_vectors(rows, rng))
    probes = unit_vectors(queries, rng)
    index.search(probes[0], k)  # warm up
    times = []
    for probe in probes:
        started = time.perf_counter()
        index.search(probe, k)
        times.append(1000 * (time.perf_counter() - started))
    bytes_per_chunk = index.index.index.sa_code_size() + 8  # vector codes + the id map entry
    return {"chunks": size, "p50_ms": round(float(np.percentile(times, 50)), 3),
            "p95_ms": round(float(np.percentile(times, 95)), 3),
            "index_bytes_per_chunk": bytes_per_chunk,
            "index_mb": round(size * bytes_per_chunk / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=50, help="neighbours per query (ask fetches 50)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = [measure(size, args.queries, args.k, rng) for size in args.sizes]
    machine = f"{platform.platform()}, {os.cpu_count()} CPUs"
    if args.json:
        print(json.dumps({"machine": machine, "results": rows}, indent=2))
        return
    print(f"FAISS IndexIDMap2(IndexFlatIP), dimension {DIMENSION}, k={args.k}; {machine}")
    print(f"{'chunks':>10} {'p50 ms':>9} {'p95 ms':>9} {'ratio p50':>10} {'bytes/chunk':>12} "
          f"{'index MB':>9}")
    for row in rows:
        ratio = row["p50_ms"] / rows[0]["p50_ms"]
        print(f"{row['chunks']:>10,} {row['p50_ms']:>9.3f} {row['p95_ms']:>9.3f} {ratio:>10.1f} "
              f"{row['index_bytes_per_chunk']:>12} {row['index_mb']:>9}")


if __name__ == "__main__":
    main()
