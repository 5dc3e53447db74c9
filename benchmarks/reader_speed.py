"""The reader's speed: training examples/s by window length, and reading ms per question at the
EM each way of running it gets (torch fp32, torch int8 dynamic quantisation, and what ships:
int8 on ONNX Runtime), side by side in one run. Run on a quiet machine:

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
from qa.reader import MODEL_FOLDER, NeuralReader  # noqa: E402
from qa.reader_training import TrainConfig, examples_per_second, load_squad_examples  # noqa: E402
from qa.results import Passage  # noqa: E402
from qa.span_model import load_weights, score_spans  # noqa: E402

DEV = ROOT.parent / "shared" / "data" / "reader-train" / "tydiqa-goldp-en-dev.json.gz"


def _torch_spans(int8: bool):
    """Best span of one passage by the trained weights in torch, optionally int8 (dynamic)."""
    import warnings

    import torch
    from transformers import AutoTokenizer

    model, base, card = load_weights(MODEL_FOLDER)
    if int8:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch marks quantize_dynamic deprecated
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear},
                                                           dtype=torch.qint8)
    tokenizer = AutoTokenizer.from_pretrained(base)
    window = card["max_length"], card["training"]["config"]["stride"]
    return lambda question, passage: score_spans(model, tokenizer, question, [passage.text],
                                                 *window)[0]


def reading(how: str, questions: int) -> dict:
    if how == "onnx int8 (shipped)":
        reader = NeuralReader(threshold=0.0)
        spans = lambda question, passage: reader.spans(question, [passage])[0]  # noqa: E731
    else:
        spans = _torch_spans(int8=how == "torch int8")
    examples = [e for e in load_squad_examples(DEV)[0] if e.answer_start >= 0][:questions]
    ms, em = [], []
    for e in examples:
        passage = Passage(1, 1.0, e.context, "dev", "", "dev", 0, len(e.context))
        started = time.perf_counter()
        span = spans(e.question, passage)
        ms.append(1000 * (time.perf_counter() - started))
        em.append(exact_match(e.context[span.start:span.end], e.answers))
    ms.sort()
    return {"weights": how, "questions": len(examples),
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
        for how in ("torch fp32", "torch int8", "onnx int8 (shipped)"):
            row = reading(how, args.questions)
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
