"""Loaders for every input kind, URLs against a local server, and one test per kind of bad input."""

from __future__ import annotations

import http.server
import json
import pathlib
import shutil
import socket
import threading
import time

import pytest

from qa.articles import Article, Refused, iter_articles, load_url, source_id
from tests.conftest import SAMPLES

BODY = ("The harbour council met on Tuesday evening. It approved a new budget for the ferry.\n\n"
        "\"We are pleased,\" said the mayor.")


def _load(*inputs) -> tuple[list[Article], list[Refused]]:
    items = list(iter_articles(inputs))
    articles = [item for item in items if isinstance(item, Article)]
    refused = [item for item in items if isinstance(item, Refused)]
    assert len(articles) + len(refused) == len(items)
    return articles, refused


def _one_article(*inputs) -> Article:
    articles, refused = _load(*inputs)
    assert not refused and len(articles) == 1, (articles, refused)
    return articles[0]


def _one_refusal(*inputs) -> Refused:
    articles, refused = _load(*inputs)
    assert not articles and len(refused) == 1, (articles, refused)
    return refused[0]


# --- loaders -----------------------------------------------------------------------------------

def test_txt_file_with_header(tmp_path):
    path = tmp_path / "harbour.txt"
    path.write_text("Harbour council approves ferry budget\n\nJanuary 5, 2014\n\n" + BODY)
    article = _one_article(path)
    assert article.source == str(path) and article.id == source_id(str(path))
    assert article.title == "Harbour council approves ferry budget"
    assert article.published == "2014-01-05"
    assert article.text == BODY
    assert article.url is None and article.notes == []


def test_txt_file_without_header_is_titled_by_its_name(tmp_path):
    path = tmp_path / "ferry-budget.txt"
    path.write_text(BODY)
    article = _one_article(path)
    assert (article.title, article.published, article.text) == ("ferry-budget", None, BODY)


def test_markdown_sample_heading_and_date_become_metadata():
    article = _one_article(SAMPLES / "rail-strike.md")
    assert article.title == "Westmark rail drivers to strike for 48 hours over pay"
    assert article.published == "2026-02-14"
    assert article.text.startswith("Train drivers on the Westmark Regional Rail network")
    assert "\nWhat the two sides want\n" in article.text
    for markup in ("#", "*Published", "Published 2026"):
        assert markup not in article.text


def test_markdown_front_matter_gives_title_and_date(tmp_path):
    path = tmp_path / "note.md"
    path.write_text('---\ntitle: "Ferry budget passes"\ndate: 2026-02-03\n---\n\n'
                    "The council **approved** the [budget](https://example.org/b) on Tuesday.\n")
    article = _one_article(path)
    assert (article.title, article.published) == ("Ferry budget passes", "2026-02-03")
    assert article.text == "The council approved the budget on Tuesday."


def test_html_sample_main_text_only():
    article = _one_article(SAMPLES / "observatory-comet.html")
    assert article.title == (
        "Kestrel Ridge astronomers find a new comet heading for the inner Solar System")
    assert article.published == "2026-03-19"
    assert article.text.startswith("Astronomers at the Kestrel Ridge Observatory have discovered")
    assert article.text.endswith("Friends & Patrons of Kestrel Ridge society.")
    for kept in ("Renée Duquesne, who leads the observatory’s small-bodies group",
                 "“This is the answer.”"):
        assert kept in article.text
    for gone in (
        "Subscribe", "Opinion",                                   # nav
        "News from the valley",                                   # site header
        "Related stories", "braces for budget cut",               # aside
        "All rights reserved", "Privacy",                         # footer
        "dataLayer", "DOMContentLoaded",                          # script
        "Stacked image of C/2026 F2", "Photo: Kestrel",           # figcaption
        "&eacute;", "&rsquo;", "&amp;", "<",                      # markup
    ):
        assert gone not in article.text, gone


def test_json_object_sample():
    article = _one_article(SAMPLES / "sports-final.json")
    url = "https://example.org/sport/2026/05/09/castmere-rovers-northern-shield-final"
    assert article.source == article.url == url  # a record's identity is its URL
    assert article.title == "Castmere Rovers win Northern Shield with extra-time header"
    assert article.published == "2026-05-09"
    assert article.metadata == {"file": str(SAMPLES / "sports-final.json"),
                                "source": "Northern Sports Wire"}
    assert article.text.startswith("Castmere Rovers won the Northern Shield")


def test_json_list_and_articles_wrapper_with_field_aliases(tmp_path):
    records = [
        {"id": "a1", "title": "First", "content": "The content field holds this text.",
         "published_at": "2026-01-02T10:00:00Z"},
        {"id": "a2", "title": "Second", "body": "The body field holds this text."},
    ]
    listed, wrapped = tmp_path / "list.json", tmp_path / "wrapped.json"
    listed.write_text(json.dumps(records))
    wrapped.write_text(json.dumps({"articles": records}))
    for path in (listed, wrapped):
        articles, refused = _load(path)
        assert not refused
        assert [(a.source, a.title, a.text, a.published) for a in articles] == [
            (f"{path}#a1", "First", "The content field holds this text.", "2026-01-02"),
            (f"{path}#a2", "Second", "The body field holds this text.", None),
        ]


@pytest.mark.parametrize("body", [
    "<p>The council met on Tuesday. It approved the ferry budget.</p>",
    "The council met on <span>Tuesday</span>. It approved the ferry budget.",
    "<p>The council met on Tuesday.</p><p>It approved the ferry budget.</p>",
    "<html><body><nav><a href='/'>Home</a></nav><article><p>The council met on Tuesday."
    "</p><p>It approved the ferry budget.</p></article></body></html>",
])
def test_record_with_an_html_body_gives_its_text(tmp_path, body):
    path = tmp_path / "feed.jsonl"
    path.write_text(json.dumps({"id": "r1", "title": "Ferry budget", "body": body}) + "\n")
    article = _one_article(path)
    assert article.title == "Ferry budget"
    assert article.text.replace("\n", " ") == (
        "The council met on Tuesday. It approved the ferry budget.")


def test_jsonl_sample_uses_body_alias_and_urls_as_identity():
    articles, refused = _load(SAMPLES / "exports.jsonl")
    assert not refused
    assert [(a.source, a.published, a.metadata["source"]) for a in articles] == [
        ("https://example.org/business/2026/01/27/pellucid-labs-ampwell-recall", "2026-01-27",
         "Coastline Business Daily"),
        ("https://example.org/politics/2026/04/06/greyholm-mayor-election-result", "2026-04-06",
         "Greyholm Gazette"),
    ]
    assert articles[0].text.startswith("Pellucid Labs, a 38-person electronics company")
    assert "exp-0001" not in articles[0].text


def test_jsonl_record_identity_survives_reordering(tmp_path):
    path = tmp_path / "feed.jsonl"
    lines = [
        json.dumps({"id": 7, "title": "Seven", "content": "Record seven has its own id."}),
        json.dumps({"title": "Anonymous", "text": "This record has neither id nor URL."}),
        json.dumps({"_id": "x9", "title": "Nine", "body": "Record nine has an _id."}),
    ]
    path.write_text("\n".join(lines) + "\n")
    first = {a.title: a.id for a in _load(path)[0]}
    assert first == {"Seven": source_id(f"{path}#7"), "Anonymous": source_id(f"{path}:2"),
                     "Nine": source_id(f"{path}#x9")}
    path.write_text("\n".join([lines[2], "", lines[0]]) + "\n")
    again = {a.title: a.id for a in _load(path)[0]}
    assert again == {"Seven": first["Seven"], "Nine": first["Nine"]}


def test_folder_is_walked_recursively_skipping_hidden_and_unsupported(tmp_path):
    (tmp_path / "a.txt").write_text("Alpha sentence in the top folder.")
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "b.md").write_text("Bravo sentence in a subfolder.")
    (tmp_path / "sub" / "deeper" / "c.txt").write_text("Charlie sentence two levels down.")
    (tmp_path / ".hidden.txt").write_text("Hidden file text.")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "d.txt").write_text("Text inside a hidden folder.")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "notes.docx").write_text("Not a supported type.")
    articles, refused = _load(tmp_path)
    assert not refused
    assert sorted(a.text for a in articles) == [
        "Alpha sentence in the top folder.", "Bravo sentence in a subfolder.",
        "Charlie sentence two levels down."]


def test_sample_folder_loads_every_sample():
    articles, refused = _load(SAMPLES)
    assert not refused
    assert len(articles) == 6 and len({a.id for a in articles}) == 6
    assert all(a.title and a.text for a in articles)


# --- URLs --------------------------------------------------------------------------------------

class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(SAMPLES), **kwargs)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path == "/bogus-charset":
            body = b"<html><body><p>" + BODY.encode() * 3 + b"</p></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=no-such-charset")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_url_html_page_is_loaded_and_cleaned(server):
    url = f"{server}/observatory-comet.html"
    article = _one_article(url)
    assert article.source == article.url == url
    assert article.title.startswith("Kestrel Ridge astronomers find a new comet")
    assert article.published == "2026-03-19"
    assert "Renée Duquesne" in article.text
    assert "Related stories" not in article.text and "dataLayer" not in article.text


def test_url_jsonl_gives_each_record(server):
    articles, refused = _load(f"{server}/exports.jsonl")
    assert not refused and [a.title for a in articles] == [
        "Osterhaven firm Pellucid Labs recalls 12,600 power banks over overheating risk",
        "Arneberg ousts Havelund to become mayor of Greyholm"]


def test_url_404_is_refused_with_the_http_code(server):
    url = f"{server}/no-such-article.html"
    refused = _one_refusal(url)
    assert refused.source == url
    assert refused.reason.startswith("HTTP 404")


def test_url_with_unknown_charset_is_still_read(server):
    article = _one_article(f"{server}/bogus-charset")
    assert "The harbour council met on Tuesday evening." in article.text
    assert article.notes == ["the server declared an unknown charset 'no-such-charset'"]


def test_unreachable_port_is_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refusal = _one_refusal(f"http://127.0.0.1:{port}/article.html")
    assert refusal.reason.startswith("cannot fetch:")
    assert "refused" in refusal.reason.lower()


def test_silent_server_times_out_and_is_refused():
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/article.html"
        started = time.monotonic()
        items = list(load_url(url, timeout=0.5))
        elapsed = time.monotonic() - started
    assert items == [Refused(url, "cannot fetch: timed out")]
    assert elapsed < 5


# --- bad input, one test each ------------------------------------------------------------------

def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    assert _one_refusal(path) == Refused(str(path), "empty file")
    path.write_bytes(b" \n\n\t \r\n")
    assert _one_refusal(path) == Refused(str(path), "empty file")


def test_binary_file_renamed_txt_is_refused(tmp_path):
    path = tmp_path / "photo.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)
    refusal = _one_refusal(path)
    assert refusal.reason == "binary file (a PNG image), not text"


def test_twenty_megabyte_file_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "huge.txt"
    with open(path, "wb") as handle:
        line = b"The flood waters rose again overnight along the river banks.\n"
        handle.write(line * (20 * 2**20 // len(line) + 1))
    assert path.stat().st_size > 20 * 2**20

    def no_reading(self, *args, **kwargs):
        raise AssertionError(f"{self} was read although it is too large")

    monkeypatch.setattr(pathlib.Path, "read_bytes", no_reading)
    monkeypatch.setattr(pathlib.Path, "read_text", no_reading)
    monkeypatch.setattr(pathlib.Path, "open", no_reading)
    refusal = _one_refusal(path)
    assert refusal.source == str(path)
    assert refusal.reason.startswith("file too large: 20.0 MiB, limit 10 MiB")


@pytest.mark.parametrize(("encoding", "text"), [
    ("latin-1", "Café crème à Zürich, naïve façade"),
    ("cp1252", "“Smart quotes” – and a café in Zürich, naïve façade."),
])
def test_legacy_encoded_file_is_decoded_and_noted(tmp_path, encoding, text):
    path = tmp_path / "legacy.txt"
    path.write_bytes(text.encode(encoding))
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    article = _one_article(path)
    assert article.text == text
    assert len(article.notes) == 1 and article.notes[0].startswith("not UTF-8: decoded as ")


def test_jsonl_with_one_broken_line_keeps_the_good_records(tmp_path):
    path = tmp_path / "feed.jsonl"
    path.write_text("\n".join([
        json.dumps({"id": 1, "title": "One", "body": "The first record is fine."}),
        '{"id": 2, "title": "Two", "body": "cut off',
        json.dumps({"id": 3, "title": "Three", "content": "The third record is fine too."}),
    ]) + "\n")
    articles, refused = _load(path)
    assert [(a.source, a.title) for a in articles] == [(f"{path}#1", "One"),
                                                      (f"{path}#3", "Three")]
    assert len(refused) == 1
    assert refused[0].source == f"{path}:2"  # the line number says which line to fix
    assert refused[0].reason == "invalid JSON: Unterminated string starting at column 35"


@pytest.mark.parametrize("page", [
    '<html><head><script>var a = 1;</script></head><body>'
    '<nav><a href="/">Home</a><a href="/news">News</a></nav>'
    '<script>document.write("hello")</script></body></html>',
    '<!DOCTYPE html><html><head><title>Site</title><script src="/app.js"></script></head><body>'
    '<nav class="menu"><ul><li><a href="/">Home</a></li><li><a href="/news/">News</a></li>'
    '<li><a href="/sport/">Sport</a></li></ul></nav>'
    '<script>window.dataLayer = []; init();</script>'
    '<footer><a href="/privacy">Privacy</a> <a href="/contact">Contact</a></footer>'
    '</body></html>',
], ids=["inline-links", "menu-list"])
def test_html_of_only_scripts_and_navigation_is_refused(tmp_path, page):
    path = tmp_path / "menu.html"
    path.write_text(page)
    refusal = _one_refusal(path)
    assert refusal.reason == "no article text found in the HTML (only scripts, menus or markup)"


def test_missing_path_is_refused(tmp_path):
    missing = tmp_path / "nowhere" / "article.txt"
    assert _one_refusal(missing) == Refused(str(missing), "no such file, folder or URL")


def test_unsupported_file_type_is_refused_when_named(tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF-1.7")
    refusal = _one_refusal(path)
    assert refusal.reason.startswith("unsupported file type '.pdf'; supported: ")


def test_folder_with_unreadable_entries_still_loads_the_good_file(tmp_path):
    (tmp_path / "good.txt").write_text("The good article is still here.")
    (tmp_path / "x.txt").symlink_to(tmp_path / "deleted-target.txt")
    (tmp_path / "y.txt").mkdir()
    locked = tmp_path / "locked.txt"
    locked.write_text("The locked article text.")
    locked.chmod(0)
    try:
        items = list(iter_articles([tmp_path]))
    finally:
        locked.chmod(0o644)
    by_source = {item.source: item for item in items}
    assert len(by_source) == len(items) == 3, items  # y.txt is a folder: walked, not a file

    good = by_source[str(tmp_path / "good.txt")]
    assert isinstance(good, Article) and good.text == "The good article is still here."

    dangling = by_source[str(tmp_path / "x.txt")]
    assert isinstance(dangling, Refused)
    assert dangling.reason == "broken symbolic link: its target does not exist"

    # Root reads a mode-000 file; anyone else is refused. Either way the outcome is clean.
    outcome = by_source[str(locked)]
    assert ((isinstance(outcome, Article) and outcome.text == "The locked article text.")
            or (isinstance(outcome, Refused)
                and outcome.reason == "cannot read: Permission denied")), outcome


def test_one_bad_input_does_not_stop_the_batch(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("A good article among bad ones.")
    empty = tmp_path / "empty.md"
    empty.write_text("")
    articles, refused = _load(tmp_path / "missing.txt", empty, good, SAMPLES / "exports.jsonl")
    assert [a.source for a in articles][0] == str(good) and len(articles) == 3
    assert [r.source for r in refused] == [str(tmp_path / "missing.txt"), str(empty)]


def test_copied_sample_keeps_its_text_but_not_its_identity(tmp_path):
    copy = tmp_path / "norrbridge-flood.txt"
    shutil.copy(SAMPLES / "norrbridge-flood.txt", copy)
    original, duplicate = _load(SAMPLES / "norrbridge-flood.txt", copy)[0]
    assert original.text == duplicate.text and original.content_hash == duplicate.content_hash
    assert original.id != duplicate.id


def test_folder_without_supported_files_is_reported(tmp_path):
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    refusal = _one_refusal(tmp_path)
    assert refusal.reason.startswith("folder holds no supported files (.htm, .html")


def test_a_symlink_loop_is_called_a_loop(tmp_path):
    loop = tmp_path / "loop.txt"
    loop.symlink_to(loop)
    (refused,) = list(iter_articles([loop]))
    assert isinstance(refused, Refused)
    assert refused.reason == "symbolic link loop: the link leads back to itself"
