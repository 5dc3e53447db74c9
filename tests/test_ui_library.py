"""Uploads stay inside the index folder whatever their name; refusals say why; escaping."""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path

import pytest

from ui import library, render


def h(name: str) -> str:
    """The hash ``safe_name`` appends when sanitising changed a name."""
    return hashlib.sha1(name.encode()).hexdigest()[:8]


WINDOWS = "..\\..\\windows\\win.ini.html"
BIDI = "a\u202egnp.txt"


@pytest.mark.parametrize("name, expected", [
    ("report.txt", "report.txt"),
    ("report-1.txt", "report-1.txt"),
    ("report (1).txt", f"report-1-{h('report (1).txt')}.txt"),
    ("東京.txt", "東京.txt"),
    ("Москва.txt", "Москва.txt"),
    ("हिन्दी.md", "हिन्दी.md"),  # combining vowel signs kept with their letters
    ("../../etc/passwd", f"passwd-{h('../../etc/passwd')}"),
    ("../../evil.TXT", f"evil-{h('../../evil.TXT')}.txt"),
    ("/etc/cron.d/job.md", f"job-{h('/etc/cron.d/job.md')}.md"),
    (WINDOWS, f"win.ini-{h(WINDOWS)}.html"),
    ("..", f"upload-{h('..')}"),
    (".bashrc", f"upload-{h('.bashrc')}.bashrc"),
    ("naïve café.json", f"naïve-café-{h('naïve café.json')}.json"),
    ("a b;rm -rf *.jsonl", f"a-b-rm-rf-{h('a b;rm -rf *.jsonl')}.jsonl"),
    (BIDI, f"a-gnp-{h(BIDI)}.txt"),  # a right-to-left override is replaced
    ("", f"upload-{h('')}"),
])
def test_safe_name(name, expected):
    assert library.safe_name(name) == expected


def test_safe_names_of_distinct_uploads_are_distinct_and_stable():
    names = ["東京.txt", "大阪.txt", "Москва.txt", "report (1).txt", "report-1.txt",
             "report 1.txt", "report_1.txt", "Report.TXT", "Report.txt", "a/b.txt", "b.txt",
             ".txt", "upload.txt", "..", ".", "", "a b.md", "a  b.md", "a\tb.md"]
    stored = [library.safe_name(n) for n in names]
    assert len(set(stored)) == len(names), stored
    assert stored == [library.safe_name(n) for n in names]  # same name, same file
    for name in stored:
        assert name not in (".", "..") and not name.startswith((".", "-"))
        assert "/" not in name and "\\" not in name and "\0" not in name
    # canonically equivalent spellings (macOS sends NFD) are one name
    assert library.safe_name(unicodedata.normalize("NFD", "café.txt")) == "café.txt"


@pytest.mark.parametrize("name", ["東" * 300 + ".txt", "ж" * 254 + ".md", "é" * 400,
                                  "a" * 1000 + ".html", "../" * 200 + "京" * 90 + ".txt"])
def test_long_names_fit_the_file_system(tmp_path, name):
    stored = library.safe_name(name)
    assert len(stored.encode()) <= 255 and len(stored) <= library.MAX_NAME + 20
    assert stored.endswith(Path(name).suffix)
    assert stored != library.safe_name(name[1:])  # shortened names still stay distinct
    (tmp_path / stored).write_text("x")  # the file system accepts it


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


def test_add_items_keeps_unicode_named_uploads_apart(kb, tmp_path):
    """東京.txt, 大阪.txt and Москва.txt once all became upload.txt: one article was lost."""
    texts = {
        "東京.txt": "Tokyo tram fares rise\n\nTram fares in Tokyo rise by 20 yen in May.",
        "大阪.txt": "Osaka opens a river park\n\nOsaka opened a park on the Yodo river.",
        "Москва.txt": "Moscow metro adds a line\n\nA new metro line opened in Moscow.",
    }
    folders = []
    for number, (name, text) in enumerate(texts.items()):
        folder = tmp_path / f"browser{number}"  # Gradio keeps each upload in its own folder
        folder.mkdir()
        (folder / name).write_text(text, encoding="utf-8")
        folders.append(folder / name)
    rows = library.add_items(kb, folders, "")
    assert [(r.file, r.result) for r in rows] == [(n, "added") for n in texts]
    assert library.summary(rows) == "3 added, 0 updated, 0 unchanged, 0 failed"
    stored = {Path(a.source).name: a.text for a in kb.articles()}
    assert set(stored) == set(texts)
    for name, text in texts.items():
        assert text.split("\n\n")[1] in stored[name]
        assert (kb.files / "uploads" / name).read_text(encoding="utf-8") == text

    edited = tmp_path / "edited" / "東京.txt"
    edited.parent.mkdir()
    edited.write_text(texts["東京.txt"].replace("20 yen", "30 yen"), encoding="utf-8")
    again = library.add_items(kb, [edited, folders[1]], "")
    assert [(r.file, r.result) for r in again] == [("東京.txt", "updated"),
                                                    ("大阪.txt", "unchanged")]
    assert len(kb.articles()) == 3
    assert "30 yen" in {Path(a.source).name: a.text for a in kb.articles()}["東京.txt"]


def test_two_uploads_that_would_share_a_file_are_not_both_claimed(kb, tmp_path):
    """The same name from two folders in one upload: the second is refused, not "updated"."""
    first, second = tmp_path / "a" / "notes.txt", tmp_path / "b" / "notes.txt"
    for path, town in ((first, "Lowmere"), (second, "Quillby")):
        path.parent.mkdir()
        path.write_text(f"{town} library reopens\n\nThe {town} library reopened on Monday.")
    rows = library.add_items(kb, [first, second], "")
    assert [(r.file, r.result) for r in rows] == [("notes.txt", "failed"),  # refusals first
                                                   ("notes.txt", "added")]
    failed = [r for r in rows if r.result == "failed"]
    assert len(failed) == 1 and "same stored name as notes.txt" in failed[0].detail
    assert library.summary(rows) == "1 added, 0 updated, 0 unchanged, 1 failed"
    [article] = kb.articles()
    assert "Lowmere" in article.text


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
        ("who won?", 3, {"sources": ("rail-strike.md",), "since": "2026-01-01", "until": None,
                         "context": None}),
        ("who won?", 5, {"sources": (), "since": None, "until": None, "context": None}),
    ]


def test_chat_refuses_an_impossible_date_like_every_other_face(kb):
    """The chat shows this message as "Cannot search: ..."; CLI, Python and HTTP say the same."""
    from ui.app import ChatBackend

    with pytest.raises(ValueError, match=r"^since: '2026-13-45' is not a date"):
        ChatBackend(kb).ask("When did the ferry sail?", 3, since="2026-13-45")
