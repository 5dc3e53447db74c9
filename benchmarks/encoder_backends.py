"""Encoder backends, torch vs int8 ONNX Runtime: passage speed and SciFact nDCG@10 (dense).

The issue's rule makes onnx the default (`embeddings.encoder.DEFAULT_BACKEND`) only if its
nDCG@10 is at most 0.01 below torch's and it embeds at least 1.3x as many chunks per second.
Speed is timed in one process on the same inputs: SciFact chunks cut and title-prefixed as
ingest does, the backends taking turns (the order swapped every round) so that load from
other work on the machine hits both alike. nDCG@10 is `articleqa eval --config dense` of each
backend over the whole corpus (indexes cached in --cache, per backend). Run on demand, on a
quiet machine, not in the tests:

    python benchmarks/encoder_backends.py [--chunks 1000] [--rounds 2] [--docs N --questions Q]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from embeddings.encoder import BACKENDS, Encoder  # noqa: E402
from qa.api import ArticleQA  # noqa: E402
from qa.datasets import Dataset, load_dataset  # noqa: E402
from qa.evaluation import evaluate  # noqa: E402

SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
MAX_NDCG_DROP = 0.01
MIN_SPEEDUP = 1.3


def passage_inputs(dataset: Dataset, encoder: Encoder, count: int, seed: int = 0) -> list[str]:
    """``count`` encoder inputs as ingest makes them, from articles drawn at random."""
    articles = list(dataset.articles)
    random.Random(seed).shuffle(articles)
    inputs: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        kb = ArticleQA(Path(tmp) / "index", encoder=encoder)
        for article in articles:
            inputs += kb.ingester.passage_inputs(article, kb.chunk(article))
            if len(inputs) >= count:
                break
        kb.close()
    return inputs[:count]


def subset(dataset: Dataset, docs: int, questions: int) -> Dataset:
    """The first ``questions`` questions over their relevant articles and ``docs`` others:
    a quick run that still ranks every relevant article among distractors."""
    queries = dataset.queries[:questions]
    wanted = {source for q in queries for source in q.relevant}
    others = [a for a in dataset.articles if a.source not in wanted][:docs]
    articles = [a for a in dataset.articles if a.source in wanted] + others
    return replace(dataset, name=f"{dataset.name}-{docs}docs-{questions}q", articles=articles,
                   queries=queries)


def time_rounds(encoders: dict[str, Encoder], inputs: list[str], rounds: int) -> dict:
    for encoder in encoders.values():
        encoder.encode(inputs[:encoder.batch_size])  # warm-up: first-call costs are no speed
    runs: dict[str, list[dict]] = {name: [] for name in encoders}
    for round_ in range(rounds):
        order = list(encoders) if round_ % 2 == 0 else list(reversed(encoders))
        for name in order:
            load = os.getloadavg()[0]
            started = time.perf_counter()
            encoders[name].encode(inputs)
            seconds = time.perf_counter() - started
            runs[name].append({"round": round_, "seconds": round(seconds, 2),
                               "chunks_per_second": round(len(inputs) / seconds, 1),
                               "loadavg_1min": load})
            print(f"  round {round_} {name:<6} {len(inputs) / seconds:7.1f} chunks/s "
                  f"(load {load:.1f})", flush=True)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=str(SCIFACT), help="BEIR folder (default: SciFact)")
    parser.add_argument("--chunks", type=int, default=1000, help="inputs timed per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--docs", type=int,
                        help="nDCG over only this many articles besides the relevant ones")
    parser.add_argument("--questions", type=int, help="nDCG of only the first N questions")
    parser.add_argument("--no-ndcg", action="store_true", help="time only")
    parser.add_argument("--cache", default=str(ROOT / ".articleqa-cache"),
                        help="evaluation index cache (shared with articleqa eval)")
    parser.add_argument("--out", default=str(ROOT / "artifacts" / "bench" / "encoder_backends"))
    args = parser.parse_args()

    dataset = load_dataset(args.dataset)
    encoders = {name: Encoder(backend=name) for name in BACKENDS}
    inputs = passage_inputs(dataset, encoders["torch"], args.chunks)
    print(f"speed: {len(inputs)} chunks, {args.rounds} interleaved rounds", flush=True)
    runs = time_rounds(encoders, inputs, args.rounds)
    speed = {name: statistics.median(r["chunks_per_second"] for r in runs[name])
             for name in encoders}

    ndcg: dict[str, float | None] = dict.fromkeys(encoders)
    if not args.no_ndcg:
        if args.docs is not None or args.questions is not None:
            dataset = subset(dataset, args.docs or len(dataset.articles),
                             args.questions or len(dataset.queries))
        for name, encoder in encoders.items():
            print(f"nDCG@10: {name} over {len(dataset.articles)} articles, "
                  f"{len(dataset.queries)} questions", flush=True)
            [run] = evaluate(dataset, ["dense"], Path(args.out) / dataset.name / name,
                             args.cache, encoder=encoder, progress=False)
            ndcg[name] = run.metrics["ndcg@10"]

    ratio = speed["onnx"] / speed["torch"]
    drop = None if None in ndcg.values() else ndcg["torch"] - ndcg["onnx"]
    passes = None if drop is None else drop <= MAX_NDCG_DROP and ratio >= MIN_SPEEDUP
    print(f"\n| backend | chunks/s (median) | nDCG@10 ({dataset.name}, dense) |\n|---|---|---|")
    for name in encoders:
        shown = "–" if ndcg[name] is None else f"{ndcg[name]:.4f}"
        print(f"| {name} | {speed[name]:.1f} | {shown} |")
    print(f"\nonnx / torch speed: {ratio:.2f}x; nDCG@10 drop: "
          f"{'–' if drop is None else f'{drop:+.4f}'}; onnx default by the rule "
          f"(drop <= {MAX_NDCG_DROP}, speed >= {MIN_SPEEDUP}x): "
          f"{'not measured' if passes is None else 'yes' if passes else 'no'}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "dataset": dataset.name, "articles": len(dataset.articles),
        "questions": len(dataset.queries), "chunks_timed": len(inputs), "rounds": runs,
        "chunks_per_second": speed, "speedup": round(ratio, 3), "ndcg@10": ndcg,
        "ndcg_drop": drop, "onnx_default_by_rule": passes,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out / 'result.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
