"""The ArticleQA facade: ingest bookkeeping, retrieval, removal, refusal of foreign indexes."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from qa import Article, ArticleQA, ChunkSettings, IndexMismatch
from qa.articles import source_id
from qa.backends.embedded import MANIFEST_FILE
from tests.conftest import SAMPLES


def _vector_ids(kb: ArticleQA) -> list[int]:
    return sorted(kb.backend.vectors.ids().tolist())


def _consistent(kb: ArticleQA) -> bool:
    return _vector_ids(kb) == sorted(kb.backend.chunk_ids())


def test_seed_article_answers_with_the_kerry_sentence_first(kb, seed_article):
    report = kb.add(seed_article, progress=False)
    assert report.added == [str(seed_article)] and report.ok
    answer = kb.ask("who said it was their fight?", k=3)
    top = answer.passages[0]
    assert "their fight" in top.text and "John Kerry" in top.text
    assert top.title == "US on Iraq: 'Their fight'" and top.published == "2014-01-05"
    article = kb.article(top.article_id)
    assert article.text[top.start:top.end] == top.text
    assert answer.text == "John Kerry" and answer.confidence >= kb.reader.threshold
    assert [p.rank for p in answer.passages] == [1, 2, 3]
    begin, end = top.answer_span  # the reader puts the passage it answered from first
    assert top.text[begin:end] == "John Kerry"
    assert article.text[top.start + begin:top.start + end] == "John Kerry"
    assert not any(p.answer_span for p in answer.passages[1:])
    for _, _, text in kb.backend.article_chunks(top.article_id):
        assert "Skip to" not in text and "Image: Reuters" not in text and "bk/msh" not in text


def test_sample_questions_rank_their_article_first_and_the_answer_in_the_top_five(kb):
    article_ids = {}
    for path in sorted(SAMPLES.iterdir()):
        report = kb.add(path, progress=False)
        article_ids[path.name] = {source_id(source) for source in report.added}
    questions = [json.loads(line) for line in (SAMPLES.parent / "questions.jsonl").open()]
    for q in (q for q in questions if q["answers"]):
        passages = kb.ask(q["question"], k=5).passages
        assert passages[0].article_id in article_ids[q["article"]], q["question"]
        assert any(a in p.text for p in passages for a in q["answers"]), q["question"]


def test_adding_the_same_files_again_changes_nothing(kb):
    first = kb.add(SAMPLES, progress=False)
    assert len(first.added) == 6 and first.ok
    chunks, generation = kb.backend.count_chunks(), kb.backend.generation
    second = kb.add(SAMPLES, progress=False)
    assert second.added == [] and sorted(second.unchanged) == sorted(first.added)
    assert kb.backend.count_chunks() == chunks and kb.backend.generation == generation
    assert len(kb) == 6


def test_an_edited_file_replaces_its_old_chunks(kb, tmp_path):
    path = tmp_path / "story.txt"
    path.write_text("Old headline\n\nThe harbour bridge reopened on Tuesday after repairs.\n")
    kb.add(path, progress=False)
    old_ids = _vector_ids(kb)
    path.write_text("New headline\n\nThe harbour bridge closed again on Friday after a crash.\n")
    report = kb.add(path, progress=False)
    assert report.updated == [str(path)] and len(kb) == 1
    texts = [t for _, _, t in kb.backend.article_chunks(kb.articles()[0].id)]
    assert texts == ["The harbour bridge closed again on Friday after a crash."]
    assert kb.articles()[0].title == "New headline"
    assert _consistent(kb) and not set(old_ids) & set(_vector_ids(kb))


def test_same_text_under_two_sources_is_stored_twice_but_shown_once(kb):
    text = "Rescue boats reached the island village of Tarnholm before dawn on Sunday."
    kb.add_articles([Article(source="wire-a", title="Boats reach Tarnholm", text=text),
                     Article(source="wire-b", title="Boats reach Tarnholm", text=text),
                     Article(source="other", title="Budget", text="The budget passed.")],
                    progress=False)
    assert len(kb) == 3
    passages = kb.ask("Which village did the rescue boats reach?", k=3).passages
    assert [p.text for p in passages].count(text) == 1
    assert len(passages) == 2


def test_remove_deletes_article_chunks_and_vectors(kb):
    kb.add(SAMPLES, progress=False)
    target = next(a for a in kb.articles() if "comet" in a.title)
    assert kb.remove(target.id)
    assert kb.article(target.id) is None and len(kb) == 5 and _consistent(kb)
    assert all("comet" not in p.text for p in kb.ask("Who discovered the comet?", k=5).passages)
    assert not kb.remove(target.id)
    source = kb.articles()[0].source
    assert kb.remove(source) and len(kb) == 4  # by source too


def test_index_persists_and_reopens(tmp_path, encoder):
    folder = tmp_path / "index"
    first = ArticleQA(folder, encoder=encoder)
    first.add(SAMPLES, progress=False)
    expected = first.ask("How many power banks were recalled?").passages[0].text
    first.close()
    reopened = ArticleQA(folder, encoder=encoder)
    assert len(reopened) == 6
    assert reopened.ask("How many power banks were recalled?").passages[0].text == expected


def test_stale_or_missing_vector_file_is_rebuilt_from_sqlite(tmp_path, encoder):
    folder = tmp_path / "index"
    kb = ArticleQA(folder, encoder=encoder)
    kb.add(SAMPLES, progress=False)
    kb.close()
    for cache in folder.glob("vectors-*.faiss"):
        cache.unlink()
    kb = ArticleQA(folder, encoder=encoder)
    assert _consistent(kb) and len(kb.backend.vectors) == kb.backend.count_chunks() > 0
    assert len(list(folder.glob("vectors-*.faiss"))) == 1


def test_other_chunking_is_refused_with_advice(tmp_path, encoder):
    folder = tmp_path / "index"
    ArticleQA(folder, encoder=encoder).close()
    with pytest.raises(IndexMismatch, match="chunked with .* open it without index options"):
        ArticleQA(folder, encoder=encoder, chunking=ChunkSettings(target_tokens=64))


def test_other_model_is_refused_with_advice(tmp_path, encoder):
    folder = tmp_path / "index"
    ArticleQA(folder, encoder=encoder).close()
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest.update(model="some-org/other-model", model_sha256="0" * 64)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="built with model 'some-org/other-model'.*--model"):
        ArticleQA(folder, encoder=encoder)


def test_changed_model_weights_are_refused_saying_what_differs(tmp_path, encoder):
    """The same model name with other weights: the advice must not name the same model again."""
    folder = tmp_path / "index"
    ArticleQA(folder, encoder=encoder).close()
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    (folder / MANIFEST_FILE).write_text(json.dumps({**manifest, "model_sha256": "0" * 64}))
    with pytest.raises(IndexMismatch) as refused:
        ArticleQA(folder, encoder=encoder)
    message = str(refused.value)
    assert "sha256 " + "0" * 64 in message and encoder.checksum in message
    assert "the model files changed" in message and "--model" not in message


def test_other_schema_is_refused_with_advice(tmp_path, encoder):
    folder = tmp_path / "index"
    ArticleQA(folder, encoder=encoder).close()
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest["schema_version"] = 0
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="schema v0.*Build a new index"):
        ArticleQA(folder, encoder=encoder)


def _bm25_titles(kb: ArticleQA, words: str) -> set[str]:
    return {p.title for p in kb.search(words, 5, mode="bm25")[0]}


def _ferry_story(folder: Path, title: str = "Skarholm ferry cancelled") -> Path:
    story = folder / "ferry.jsonl"
    story.write_text(json.dumps(
        {"title": title, "text": "The night crossing was called off because of the storm."}))
    return story


def test_bm25_matches_title_words_and_follows_replacement_and_removal(kb, tmp_path):
    story = _ferry_story(tmp_path)
    kb.add(story, progress=False)
    assert _bm25_titles(kb, "Skarholm") == {"Skarholm ferry cancelled"}
    kb.add(_ferry_story(tmp_path, "Night crossing called off"), progress=False)
    assert _bm25_titles(kb, "Skarholm") == set()
    assert _bm25_titles(kb, "crossing") == {"Night crossing called off"}
    kb.remove(kb.backend.articles()[0].id)
    assert _bm25_titles(kb, "crossing") == set()


def test_schema_v2_index_is_upgraded_in_place_without_re_embedding(tmp_path, encoder):
    folder = tmp_path / "index"
    kb = ArticleQA(folder, encoder=encoder)
    kb.add(_ferry_story(tmp_path), progress=False)
    ids = _vector_ids(kb)
    kb.close()
    db = sqlite3.connect(folder / "articles.sqlite3")
    db.executescript("""
        DROP TRIGGER chunks_fts_insert; DROP TRIGGER chunks_fts_delete; DROP TABLE chunks_fts;
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
            text, content='chunks', content_rowid='id', tokenize='porter unicode61');
        INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild');
        CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END;
        CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
            INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
        END;
        UPDATE meta SET value = '2' WHERE key = 'schema_version';""")
    db.close()
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    (folder / MANIFEST_FILE).write_text(json.dumps({**manifest, "schema_version": 2}))
    kb = ArticleQA(folder, encoder=encoder)
    assert kb.backend.stored_schema_version == 4 and kb.manifest.schema_version == 4
    assert json.loads((folder / MANIFEST_FILE).read_text())["schema_version"] == 4
    assert _vector_ids(kb) == ids
    assert _bm25_titles(kb, "Skarholm") == {"Skarholm ferry cancelled"}
    kb.close()


def test_an_index_from_the_heuristic_reader_era_opens_and_answers(tmp_path, encoder):
    """Schema v3 kept a spaCy analysis per article and its manifest said so; the neural
    reader needs neither, so opening it drops the table and keeps every vector."""
    folder = tmp_path / "index"
    kb = ArticleQA(folder, encoder=encoder)
    kb.add(_ferry_story(tmp_path), progress=False)
    ids = _vector_ids(kb)
    kb.close()
    db = sqlite3.connect(folder / "articles.sqlite3")
    db.executescript("""
        CREATE TABLE analyses (article_id TEXT PRIMARY KEY, spans TEXT NOT NULL,
                               sentence_vectors BLOB NOT NULL);
        INSERT INTO analyses SELECT id, '{}', x'00' FROM articles;
        UPDATE meta SET value = '3' WHERE key = 'schema_version';""")
    db.close()
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    (folder / MANIFEST_FILE).write_text(json.dumps({**manifest, "schema_version": 3,
                                                    "analysis": True}))
    kb = ArticleQA(folder, encoder=encoder)
    assert kb.backend.stored_schema_version == 4 and _vector_ids(kb) == ids
    assert "analysis" not in json.loads((folder / MANIFEST_FILE).read_text())
    tables = {r[0] for r in kb.backend.db.execute("SELECT name FROM sqlite_master")}
    assert "analyses" not in tables
    answer = kb.ask("Why was the night crossing called off?")
    assert answer.text and "storm" in answer.text
    kb.close()


def test_a_folder_that_is_not_an_index_is_refused(tmp_path, encoder):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(IndexMismatch, match="holds no ArticleQA index"):
        ArticleQA(tmp_path, encoder=encoder)


@pytest.mark.parametrize(
    ("question", "k", "message"),
    [("", 5, "question is empty"), ("   \n ", 5, "question is empty"),
     ("w" * 10_000, 5, "10,000 characters; the limit is 2,000"),
     ("who?", 0, "k must be between 1 and 100"), ("who?", 10_000, "k must be between")],
)
def test_bad_questions_get_clear_errors(kb, question, k, message):
    with pytest.raises(ValueError, match=message):
        kb.ask(question, k=k)


def test_unanswerable_question_gets_no_answer_but_passages(kb, seed_article):
    kb.add(seed_article, progress=False)
    answer = kb.ask("How much military aid did the US send to Iraq in 2013?")
    assert answer.text is None and answer.confidence < kb.reader.threshold
    assert answer.passages


def test_filters_by_source_and_date(kb):
    kb.add(SAMPLES, progress=False)
    late = kb.ask("What happened?", k=10, since="2026-04-01")
    assert {p.published for p in late.passages} <= {"2026-04-06", "2026-05-09"}
    only = kb.ask("What happened?", k=10, sources=["rail-strike"])
    assert {p.title for p in only.passages} == {
        "Westmark rail drivers to strike for 48 hours over pay"}
    assert kb.ask("What happened?", since="2030-01-01").passages == []
    with pytest.raises(ValueError, match="is not a date"):
        kb.ask("What happened?", since="last week")


def test_retrieval_modes_agree_on_an_easy_question(kb):
    kb.add(SAMPLES, progress=False)
    for mode in ("hybrid", "hybrid-weighted", "dense", "bm25"):
        passages, timings = kb.search("Ampwell P2 power bank recall", 3, mode=mode)
        assert "Ampwell" in passages[0].text, mode
        assert set(timings) == {"encode", "search"}
    with pytest.raises(ValueError, match="unknown retrieval mode"):
        kb.search("anything", 3, mode="magic")


def test_asking_an_empty_index_returns_no_passages(kb):
    answer = kb.ask("anything at all?")
    assert answer.passages == [] and answer.text is None


def test_good_items_of_a_bad_batch_are_indexed(kb, tmp_path):
    shutil.copy(SAMPLES / "rail-strike.md", tmp_path / "good.md")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "picture.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (tmp_path / "mixed.jsonl").write_text(
        '{"title": "Ferry", "text": "The night ferry to Skarholm was cancelled."}\n{broken\n')
    report = kb.add([tmp_path, tmp_path / "missing.md"], progress=False)
    assert sorted(report.added) == sorted([str(tmp_path / "good.md"), f"{tmp_path}/mixed.jsonl:1"])
    reasons = dict(report.failed)
    assert reasons[str(tmp_path / "empty.txt")] == "empty file"
    assert "PNG" in reasons[str(tmp_path / "picture.txt")]
    assert "invalid JSON" in reasons[f"{tmp_path}/mixed.jsonl:2"]
    assert "no such file" in reasons[str(tmp_path / "missing.md")]
    assert len(kb) == 2 and _consistent(kb)


def test_an_article_that_cannot_be_chunked_is_refused_alone(kb, monkeypatch):
    """Whatever fails inside one article (a library limit, a bug) is that article's reason;
    the rest of the batch is indexed."""
    chunk = kb.ingester.chunk

    def fragile(article):
        if "poison" in article.text:
            raise ValueError("text of length 1199961 exceeds the limit")
        return chunk(article)

    monkeypatch.setattr(kb.ingester, "chunk", fragile)
    report = kb.add_articles([Article(source="a.txt", title="Ferry", text="The ferry sailed."),
                              Article(source="b.txt", title="Bad", text="poison " * 10)],
                             progress=False)
    assert report.added == ["a.txt"] and len(kb) == 1
    assert report.failed == [("b.txt", "could not be chunked: text of length 1199961 exceeds "
                                       "the limit")]


def test_ingest_streams_batch_by_batch_and_the_last_copy_of_a_source_wins(kb, monkeypatch):
    """Each article is committed once the next one is read and chunked (batches of one chunk,
    one article looked ahead, one batch embedding while the next is chunked), and a source
    that comes twice ends as its last copy, reported once."""
    monkeypatch.setattr("qa.ingest.LOOKAHEAD", 1)
    kb.ingester.batch_chunks = 1
    stored_when_read: list[int] = []

    def articles():
        for n in range(4):
            stored_when_read.append(len(kb))
            yield Article(source=f"s{n}.txt", title=f"Story {n}", text=f"Ferry {n} sailed.")
        stored_when_read.append(len(kb))
        yield Article(source="s1.txt", title="Story 1", text="Ferry 1 sailed late.")

    report = kb.add_articles(articles(), progress=False)
    assert stored_when_read == [0, 0, 1, 2, 3]
    assert report.added == ["s0.txt", "s1.txt", "s2.txt", "s3.txt"]
    assert not report.updated and not report.unchanged and len(kb) == 4
    assert [a.text for a in kb.articles() if a.source == "s1.txt"] == ["Ferry 1 sailed late."]

    again = kb.add_articles(articles(), progress=False)
    assert again.unchanged == ["s0.txt", "s2.txt", "s3.txt"] and again.updated == ["s1.txt"]
    assert [a.text for a in kb.articles() if a.source == "s1.txt"] == ["Ferry 1 sailed late."]
