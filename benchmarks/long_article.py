"""One long article beside a small one: `articleqa index` must index both, in bounded time
and memory (issue 16's target: a 1 MB article in <= 60 s and <= 1.0 GB peak on 2 cores).

Writes a synthetic report of ``--mb`` megabytes (varied sentences, paragraphs of six) and a
short article into a temporary folder, indexes the folder with the CLI in a child process,
and reports wall seconds, the child's peak RSS, chunks and throughput:

    python benchmarks/long_article.py [--mb 1.0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOWNS = ["Tarnholm", "Greyholm", "Norrbridge", "Castmere", "Lowmere", "Arlby"]
TOPICS = ["ferry timetable", "harbour wall", "library budget", "bridge repairs", "flood barrier",
          "school roof", "bus routes", "market square"]


def long_report(megabytes: float, seed: int = 7) -> str:
    rng = random.Random(seed)
    paragraphs, size, n = [], 0, 0
    while size < megabytes * 1_000_000:
        sentences = []
        for _ in range(6):
            town, topic = rng.choice(TOWNS), rng.choice(TOPICS)
            sentences.append(f"On day {n} the council of {town} discussed the {topic}, and "
                             f"councillor {rng.randint(1, 400)} asked for {rng.randint(2, 90)} "
                             f"more weeks before a vote.")
            n += 1
        paragraphs.append(" ".join(sentences))
        size += len(paragraphs[-1]) + 2
    return "Council minutes, the whole year\n\n" + "\n\n".join(paragraphs) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=1.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="articleqa-long-") as tmp:
        folder = Path(tmp) / "articles"
        folder.mkdir()
        (folder / "minutes.txt").write_text(long_report(args.mb))
        (folder / "ferry.txt").write_text("Ferry back\n\nThe Tarnholm ferry sailed again.\n")
        command = [sys.executable, "-m", "qa.cli", "index", str(folder), "--index",
                   str(Path(tmp) / "index"), "--json", "-q"]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
        seconds = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        info = subprocess.run([sys.executable, "-m", "qa.cli", "info", "--json", "--index",
                               str(Path(tmp) / "index")], capture_output=True, text=True)
        chunks = json.loads(info.stdout)["chunks"] if info.returncode == 0 else None
        report = json.loads(done.stdout) if done.returncode in (0, 1) else done.stderr[-500:]
    result = {"article_bytes": round(args.mb * 1_000_000), "exit": done.returncode,
              "added": report.get("added") if isinstance(report, dict) else report,
              "seconds": round(seconds, 1), "peak_rss_mb": round(peak_mb),
              "chunks": chunks, "chunks_per_second": round(chunks / seconds, 1) if chunks else None,
              "cpus": os.cpu_count(), "load_average": os.getloadavg()}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if done.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
