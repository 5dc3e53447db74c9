"""Follow-up latency: `ask` as a first question vs as a follow-up with the conversation's context.

A follow-up costs one more query vector (the last turns' words), a few more BM25 terms and the
source prior; the target is a p50 at most 1.3x a first question's. On the XQuAD index (48
articles, the `articleqa eval` cache): each question is asked once alone, and once with the
context of a conversation whose first turn was the previous question (its words, its answer,
its top passage's article) - always, though the product searches a question that names its
own subject without it: this times the costly path. The two kinds alternate, so load hits
both alike.
On demand:

    python benchmarks/follow_up_latency.py [--questions 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from embeddings import Encoder  # noqa: E402
from qa.datasets import load_dataset  # noqa: E402
from qa.evaluation import open_index  # noqa: E402
from qa.search import SearchContext  # noqa: E402

XQUAD = ROOT.parent / "shared" / "data" / "xquad-en" / "xquad.en.json"
TARGET = 1.3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=ROOT / ".articleqa-cache")
    args = parser.parse_args()
    if not XQUAD.is_file():
        sys.exit(f"XQuAD not found at {XQUAD} (it lives in ../shared/data)")
    dataset = load_dataset(XQUAD)
    kb, _ = open_index(dataset, "hybrid", args.cache, Encoder(), progress=False)
    queries = dataset.queries[:args.questions + 1]
    kb.ask(queries[0].question)  # warm-up: the reader and caches load outside the timing
    first, follow = [], []
    for previous, query in zip(queries, queries[1:], strict=False):
        started = time.perf_counter()
        kb.ask(query.question)
        first.append(1000 * (time.perf_counter() - started))
        earlier = kb.ask(previous.question)
        context = SearchContext(f"{previous.question} {earlier.text or ''}",
                                ((earlier.passages[0].source, 1),))
        kb.encoder.clear_cache()  # the follow-up's own vector is not cached from above
        started = time.perf_counter()
        kb.ask(query.question, context=context)
        follow.append(1000 * (time.perf_counter() - started))
    kb.close()
    p50_first, p50_follow = statistics.median(first), statistics.median(follow)
    ratio = p50_follow / p50_first
    print(f"{len(first)} XQuAD questions, load average {os.getloadavg()[0]:.2f}")
    print(f"first question  p50 {p50_first:6.1f} ms")
    print(f"follow-up       p50 {p50_follow:6.1f} ms  ({ratio:.2f}x; target <= {TARGET}: "
          f"{'ok' if ratio <= TARGET else 'ABOVE'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
