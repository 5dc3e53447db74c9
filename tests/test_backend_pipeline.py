"""The whole pipeline on each backend: the same questions, edits, refusals, a SIGKILL midway
through an ingest, and readers asking while another process ingests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from qa import ArticleQA, ChunkSettings, IndexMismatch
from tests.conftest import SAMPLES

ARTICLES = 40
BATCH = 32
INGEST = (  # the API with small batches, so that several commits happen before the kill
    "import sys; from qa import ArticleQA; "
    f"r = ArticleQA(sys.argv[1], batch_chunks={BATCH}).add(sys.argv[2], progress=False); "
    "print(len(r.added), len(r.unchanged), len(r.failed))"
)
KILL_TRIALS = int(os.environ.get("ARTICLEQA_KILL_TRIALS", "1"))  # e.g. 10 to measure, not in CI
TOWNS = ["Arlby", "Brennet", "Colvik", "Dunmore", "Eskholt", "Farrow", "Gelling", "Hathersby"]


def write_reports(folder, count: int) -> None:
    """Synthetic council reports, several chunks each, so a batch spans many articles."""
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
            f"Council report {n}\\n\\n" + "\\n\\n".join(sentences) + "\\n")


def committed(location: str, encoder) -> int:
    """Articles a separate reader sees now (the ingest may still be writing)."""
    kb = ArticleQA(location, encoder=encoder)
    try:
        return len(kb)
    finally:
        kb.close()


def ingest(location: str, folder):
    return subprocess.Popen([sys.executable, "-c", INGEST, location, str(folder)],
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_answers_edits_and_removals_are_the_same_on_each_backend(location, encoder,
                                                                   seed_article, tmp_path):
    kb = ArticleQA(location, encoder=encoder)
    assert kb.add([SAMPLES, seed_article], progress=False).ok
    answer = kb.ask("who said it was their fight?", k=3)
    assert answer.text == "John Kerry" and answer.passages[0].answer_span
    assert kb.ask("Who was elected mayor of Greyholm?", k=3).passages[0].title
    dated = kb.ask("What happened?", k=10, since="2100-01-01")
    assert dated.passages == [] and dated.text is None
    only = kb.ask("who said it was their fight?", k=5, sources=["dw-iraq"])
    assert {p.source for p in only.passages} == {str(seed_article)}

    other = ArticleQA(location, encoder=encoder)  # a second process's view: no restart needed
    assert len(other) == len(kb) == 7
    assert kb.remove(str(seed_article)) and len(kb) == 6
    assert all("Kerry" not in p.text for p in other.ask("who said it was their fight?").passages)

    edited = tmp_path / "harbour.txt"
    edited.write_text("Harbour news\n\nThe harbour bridge in Tarnholm closed on Friday.\n")
    assert kb.add(edited, progress=False).added == [str(edited)]
    edited.write_text("Harbour news\n\nThe harbour bridge in Tarnholm reopened on Monday.\n")
    assert kb.add(edited, progress=False).updated == [str(edited)]
    top = other.ask("When did the Tarnholm harbour bridge reopen?", k=1).passages[0]
    assert "reopened on Monday" in top.text
    info = other.info()
    assert info["articles"] == 7 and info["chunks"] == info["vectors"] > 7
    assert info["backend"] == kb.backend.kind and info["bytes_on_disk"] > 0
    other.close()
    kb.close()


def test_other_chunking_is_refused_on_each_backend(location, encoder):
    ArticleQA(location, encoder=encoder).close()
    with pytest.raises(IndexMismatch, match="chunked with .*open it without index options"):
        ArticleQA(location, encoder=encoder, chunking=ChunkSettings(max_tokens=64))


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(KILL_TRIALS))
def test_sigkill_midway_keeps_whole_articles_and_rerun_completes(location, encoder, tmp_path,
                                                                  trial):
    articles = tmp_path / "articles"
    write_reports(articles, ARTICLES)
    ArticleQA(location, encoder=encoder).close()  # created first, so progress can be watched
    process = ingest(location, articles)
    deadline = time.monotonic() + 240
    while committed(location, encoder) == 0 and time.monotonic() < deadline:
        assert process.poll() is None, "ingest finished before it could be interrupted"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()

    kb = ArticleQA(location, encoder=encoder)
    done = len(kb)
    assert 0 < done < ARTICLES
    for article in kb.articles():
        spans = kb.backend.article_chunks(article.id)
        assert spans == [(c.start, c.end, c.text) for c in kb.chunk(article)]
    assert len(kb.backend.vectors) == kb.backend.count_chunks() >= BATCH
    kb.close()

    rerun = ingest(location, articles)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert out.split() == [str(ARTICLES - done), str(done), "0"]
    kb = ArticleQA(location, encoder=encoder)
    assert len(kb) == ARTICLES and len(kb.backend.vectors) == kb.backend.count_chunks()
    kb.close()


@pytest.mark.slow
def test_readers_keep_answering_while_another_process_ingests(location, encoder, tmp_path):
    """Two readers (each its own index handle, as two servers would be) ask in a loop while a
    separate process ingests; none fails, and both then see every new article."""
    articles = tmp_path / "articles"
    write_reports(articles, ARTICLES // 2)
    ArticleQA(location, encoder=encoder).add(SAMPLES, progress=False)
    readers = [ArticleQA(location, encoder=encoder) for _ in range(2)]
    errors: list[BaseException] = []
    asked = [0, 0]
    process = ingest(location, articles)

    def ask_until_done(number: int) -> None:
        while process.poll() is None:
            try:
                answer = readers[number].ask("Who was elected mayor of Greyholm?", k=3)
                assert answer.passages, "no passages while ingesting"
                asked[number] += 1
            except BaseException as exc:  # noqa: BLE001 - every failure is the finding
                errors.append(exc)
                return

    threads = [threading.Thread(target=ask_until_done, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    out, err = process.communicate(timeout=600)
    for thread in threads:
        thread.join()
    assert process.returncode == 0, err
    assert not errors, errors[0]
    assert min(asked) > 0
    for reader in readers:
        assert len(reader) == 6 + ARTICLES // 2
        found = reader.ask("When did the council meet?", k=3, sources=["report-0017"])
        assert found.passages and all(p.source.endswith("report-0017.txt") for p in found.passages)
        reader.close()
