"""The reader's speed: training examples/s by window length, and reading ms per question with
fp32 vs int8 weights at the EM each gets, side by side in one run. Run on a quiet machine:

    python benchmarks/reader_speed.py [--train-lengths 128 192 256] [--questions 300] [--json]

Reading uses the gold paragraphs of TyDi QA GoldP-en dev (a tuning set, never a reported one).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qa.metrics import exact_match  # noqa: E402
from qa.reader import NeuralReader  # noqa: E402
from qa.reader_training import TrainConfig, examples_per_second, load_squad_examples  # noqa: E402
from qa.results import Passage  # noqa: E402

DEV = ROOT.parent / "shared" / "data" / "reader-train" / "tydiqa-goldp-en-dev.json.gz"


def reading(quantize: bool, questions: int) -> dict:
    reader = NeuralReader(quantize=quantize, threshold=0.0)
    examples = [e for e in load_squad_examples(DEV)[0] if e.answer_start >= 0][:questions]
    ms, em = [], []
    for e in examples:
        passage = Passage(1, 1.0, e.context, "dev", "", "dev", 0, len(e.context))
        started = time.perf_counter()
        found = reader.read(e.question, [passage])
        ms.append(1000 * (time.perf_counter() - started))
        em.append(exact_match(found.text, e.answers))
    ms.sort()
    return {"weights": "int8" if quantize else "fp32", "questions": len(examples),
            "em": round(statistics.mean(em), 4), "ms_p50": round(ms[len(ms) // 2], 1),
            "ms_p95": round(ms[int(0.95 * (len(ms) - 1))], 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-lengths", type=int, nargs="*", default=[128, 192, 256])
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    import torch

    figures = {"platform": platform.platform(), "cpus": os.cpu_count(),
               "torch": torch.__version__, "threads": torch.get_num_threads(),
               "load_average_1m": round(os.getloadavg()[0], 2), "training": [], "reading": []}
    for length in args.train_lengths:
        for bf16 in (True, False):
            rate = examples_per_second(TrainConfig(train=[], max_length=length, bf16=bf16))
            figures["training"].append({"tokens": length, "bf16": bf16, "batch": 32,
                                        "examples_per_s": round(rate, 1)})
            if not args.json:
                print(f"train {length:>4} tokens {'bf16' if bf16 else 'fp32'}: "
                      f"{rate:5.1f} examples/s")
    if DEV.is_file():
        for quantize in (False, True):
            row = reading(quantize, args.questions)
            figures["reading"].append(row)
            if not args.json:
                print(f"read  {row['weights']}: EM {row['em']:.3f}, "
                      f"{row['ms_p50']} / {row['ms_p95']} ms p50 / p95 ({row['questions']} q)")
    else:
        print(f"{DEV} is absent: reading not measured", file=sys.stderr)
    figures["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
