"""An ingest killed with SIGKILL midway leaves whole articles only, and a rerun completes it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from qa import ArticleQA
from qa.backends.embedded import STORE_FILE

ARTICLES = 40
BATCH = 32
INGEST = (  # the API with small batches, so that several commits happen before the kill
    "import sys; from qa import ArticleQA; "
    f"r = ArticleQA(sys.argv[1], batch_chunks={BATCH}).add(sys.argv[2], progress=False); "
    "print(len(r.added), len(r.unchanged), len(r.failed))"
)
TOWNS = ["Arlby", "Brennet", "Colvik", "Dunmore", "Eskholt", "Farrow", "Gelling", "Hathersby"]


def _write_articles(folder, count: int) -> None:
    """Synthetic reports long enough for several chunks each, so a batch spans many articles."""
    folder.mkdir()
    for n in range(count):
        town = TOWNS[n % len(TOWNS)]
        sentences = [
            f"The council of {town} met for session number {n} on a wet {day} evening."
            for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
        ] + [
            f"Councillor number {n * 7 + i} asked about road repairs, bus routes and the "
            f"library budget, which stood at {1000 + n * 13 + i} crowns this year."
            for i in range(18)
        ]
        (folder / f"report-{n:04d}.txt").write_text(
            f"Council report {n}\n\n" + "\n\n".join(sentences) + "\n")


def _committed_articles(db_path) -> int:
    try:
        with sqlite3.connect(db_path, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM articles").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_sigkill_midway_keeps_whole_articles_and_rerun_completes(tmp_path, encoder):
    articles, index = tmp_path / "articles", tmp_path / "index"
    _write_articles(articles, ARTICLES)
    command = [sys.executable, "-c", INGEST, str(index), str(articles)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while _committed_articles(index / STORE_FILE) == 0 and time.monotonic() < deadline:
        assert process.poll() is None, "ingest finished before it could be interrupted"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()

    kb = ArticleQA(index, encoder=encoder)
    committed = len(kb)
    assert 0 < committed < ARTICLES
    for article in kb.articles():
        spans = kb.backend.article_chunks(article.id)
        assert spans == [(c.start, c.end, c.text) for c in kb.chunk(article)]
    assert sorted(kb.backend.vectors.ids().tolist()) == sorted(kb.backend.chunk_ids())
    assert kb.backend.count_chunks() >= BATCH
    kb.close()

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.split() == [str(ARTICLES - committed), str(committed), "0"]
    kb = ArticleQA(index, encoder=encoder)
    assert len(kb) == ARTICLES
    assert sorted(kb.backend.vectors.ids().tolist()) == sorted(kb.backend.chunk_ids())
