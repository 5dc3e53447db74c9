"""Uploads stay inside the index folder whatever their name; refusals say why; escaping."""

from __future__ import annotations

from pathlib import Path

import pytest

from ui import library, render


@pytest.mark.parametrize("name, expected", [
    ("report.txt", "report.txt"),
    ("../../etc/passwd", "passwd"),
    ("../../evil.TXT", "evil.txt"),
    ("/etc/cron.d/job.md", "job.md"),
    ("..\\..\\windows\\win.ini.html", "win-ini.html"),
    ("..", "upload"),
    (".bashrc", "upload.bashrc"),
    ("naïve café.json", "naive-cafe.json"),
    ("a b;rm -rf *.jsonl", "a-b-rm-rf.jsonl"),
    ("", "upload"),
])
def test_safe_name(name, expected):
    assert library.safe_name(name) == expected


@pytest.mark.parametrize("name", ["../../outside.txt", "/tmp/abs.txt", "..\\..\\x.txt",
                                  "sub/dir/../../../y.md"])
def test_uploads_never_leave_the_index_folder(tmp_path, name):
    index = tmp_path / "index"
    index.mkdir()
    source = tmp_path / "incoming"
    source.write_text("Some article text.")
    stored = library.store_upload(source, name, index)
    assert stored.parent == (index / "uploads").resolve()
    assert stored.read_text() == "Some article text."
    assert not (tmp_path / "outside.txt").exists()


def test_uploads_folder_symlinked_outside_is_refused(tmp_path):
    index = tmp_path / "index"
    index.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (index / "uploads").symlink_to(tmp_path / "elsewhere")
    source = tmp_path / "incoming"
    source.write_text("text")
    with pytest.raises(library.UploadRefused, match="outside the index folder"):
        library.store_upload(source, "a.txt", index)


def test_refusals_say_why(tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"x" * 2048)
    with pytest.raises(library.UploadRefused, match="unsupported type .pdf"):
        library.store_upload(big, "paper.pdf", tmp_path)
    with pytest.raises(library.UploadRefused, match="no extension"):
        library.store_upload(big, "../../etc/passwd", tmp_path)
    with pytest.raises(library.UploadRefused, match="over the 0 MiB limit"):
        library.store_upload(big, "big.txt", tmp_path, max_bytes=1024)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(library.UploadRefused, match="empty"):
        library.store_upload(empty, "empty.md", tmp_path)


def test_add_items_reports_each_file_and_url(location, encoder, tmp_path, monkeypatch):
    """On each backend; a database keeps no files, so uploads go to $ARTICLEQA_FILES."""
    from qa import ArticleQA

    monkeypatch.setenv("ARTICLEQA_FILES", str(tmp_path / "files"))
    kb = ArticleQA(location, encoder=encoder)
    expected = tmp_path / "files" if location.startswith("postgresql") else Path(location)
    assert kb.files == expected
    good = tmp_path / "harbour.txt"
    good.write_text("Harbour pilots strike\n\nPilots at Lowmere harbour stopped work on "
                    "Friday over new shift rules, their association said.")
    bad = tmp_path / "slides.pdf"
    bad.write_bytes(b"%PDF")
    rows = library.add_items(kb, [good, bad], "ftp://example.org/a\nnot a url")
    results = {(r.file, r.result) for r in rows}
    assert ("harbour.txt", "added") in results
    assert ("slides.pdf", "failed") in results
    assert ("ftp://example.org/a", "failed") in results
    assert (kb.files / "uploads" / "harbour.txt").is_file()
    again = library.add_items(kb, [good], "")
    assert [(r.file, r.result) for r in again] == [("harbour.txt", "unchanged")]
    assert library.summary(rows).startswith("1 added")
    kb.close()


def test_markdown_escaping_keeps_markup_literal():
    text = "<script>alert(1)</script> [x](javascript:alert(2)) **b** $x$ `c` & \"q\""
    escaped = render.md_text(text)
    for raw in "<>[]()*`$\"":
        assert raw not in escaped
    assert " &#38; " in escaped
    assert "&#60;script&#62;" in escaped
    assert render.html_text("<img src=x onerror=alert(1)> ${x}") == (
        "&lt;img src=x onerror=alert(1)&gt; &#36;{x}")


def test_highlight_marks_the_span_and_escapes_around_it():
    out = render.highlighted("a <b> Kerry said", (6, 11), render.html_text, "<mark>", "</mark>")
    assert out == "a &lt;b&gt; <mark>Kerry</mark> said"
    assert render.highlighted("abc", (2, 9), render.html_text, "<m>", "</m>") == "abc"


def test_chat_backend_passes_the_filters_and_blank_dates_mean_no_limit():
    from ui.app import ChatBackend

    calls = []

    class RecordingKb:
        def ask(self, question, k, **filters):
            calls.append((question, k, filters))

    backend = ChatBackend(RecordingKb())
    backend.ask("who won?", 3, ["rail-strike.md"], " 2026-01-01 ", "")
    backend.ask("who won?")
    assert calls == [
        ("who won?", 3, {"sources": ("rail-strike.md",), "since": "2026-01-01", "until": None}),
        ("who won?", 5, {"sources": (), "since": None, "until": None}),
    ]
