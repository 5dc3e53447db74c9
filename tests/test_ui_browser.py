"""The chat in a real browser: Debian's Chromium driven by Playwright for Python.

Asks the DW seed question and a follow-up, uploads an article and asks about it, and checks
that an article full of markup (script, onerror, javascript: links, template syntax) shows
as literal text and runs nothing. Screenshots go to artifacts/; the one over the sample
articles alone (the README's demo) also to docs/chat.png when ARTICLEQA_UPDATE_DOCS=1.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES
from tests.live_server import ARTIFACTS, CHROMIUM, CHROMIUM_FLAGS, start_server

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"the browser tests drive Debian's Chromium, and {CHROMIUM} is absent: install it "
    "with `sudo apt-get install chromium fonts-dejavu-core` (as .ci/run does), then rerun")
TIMEOUT = 30_000  # ms

# Our own words: a fictional festival page whose text carries markup that must stay inert.
XSS_ARTICLE = """<img src=x onerror="window.__xss='title';alert('title')"> \
Lantern festival <b>returns</b> to Quillby

April 2, 2026

<script>window.__xss='script';alert("script")</script> [click here](javascript:alert('md')) \
**not bold** The lantern festival in Quillby will return this spring, organiser Maren \
Tolliver said. <img src=x onerror="window.__xss='img';alert('img')"> ${window.__xss='tpl'} \
<a href="javascript:window.__xss='link';alert('link')">festival page</a> `code` \
<iframe src="javascript:alert('frame')"></iframe>

Tolliver said about 400 paper lanterns will be floated on the Quillby mill pond after a \
three-year pause. Tickets cost 9 euros.
"""

UPLOAD_ARTICLE = """Tern Island ferry gets a new electric vessel

June 11, 2026

The Tern Island ferry service will switch to a battery-powered boat named Marsh Wren from \
1 July, the island council said on Wednesday. Harbour master Ottilie Brannagh said the \
vessel can carry 84 passengers and 12 cars and recharges in 40 minutes at the mainland pier.
"""


@pytest.fixture(scope="module")
def live(encoder, seed_article):
    return start_server(encoder, [SAMPLES, seed_article])


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT)  # answers take a while on a busy 2-core machine
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS,
                                              headless=True)
        yield chromium
        chromium.close()


def open_chat(browser, url: str):
    """A fresh browser context on the chat; alert() and friends are recorded and dismissed."""
    context = browser.new_context(viewport={"width": 1360, "height": 980})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.dialogs = []

    def on_dialog(dialog):
        page.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(url + "/", wait_until="domcontentloaded")
    page.locator("#aq-question textarea").wait_for()
    return context, page


@pytest.fixture
def page(browser, live):
    context, page = open_chat(browser, live.url)
    yield page
    context.close()


def ask(page, question: str):
    """Type a question, press Enter, wait until the streamed answer is complete."""
    from playwright.sync_api import expect

    bots = page.locator("#aq-chat [data-testid='bot']")
    before = bots.count()
    box = page.locator("#aq-question textarea")
    box.fill(question)
    box.press("Enter")
    expect(bots).to_have_count(before + 1)  # arrives with Ask disabled, in the same update
    expect(page.locator("#aq-ask")).to_be_enabled()  # enabled again once the stream is over
    last = bots.nth(before)
    expect(last).to_contain_text(re.compile(r"\[\d+\]"))  # cited, or the closest passages
    return last


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=False)
    return path


def upload(page, name: str, text: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    file = tmp_path / name
    file.write_text(text, encoding="utf-8")
    page.get_by_role("tab", name="Library").click()
    page.locator("#aq-upload input[type=file]").set_input_files(str(file))
    stem, suffix = name.rsplit(".", 1)  # Gradio may lay the name out as "stem .suffix"
    expect(page.locator("#aq-upload")).to_contain_text(
        re.compile(re.escape(stem) + r"\s*\." + re.escape(suffix)))
    page.locator("#aq-add").click()
    expect(page.locator("#aq-add-status")).to_contain_text("1 added")
    expect(page.locator("#aq-add-results")).to_contain_text("added")
    page.get_by_role("tab", name="Chat").click()


def test_question_follow_up_sources_and_screenshot(page, live):
    from playwright.sync_api import expect

    first = ask(page, "who said it was their fight?")
    expect(first).to_contain_text("Kerry")
    expect(first).to_contain_text("[1]")
    if live.kb.ask("who said it was their fight?").text is not None:
        expect(first.locator("strong").first).to_have_text("John Kerry")
    expect(page.locator("#aq-sources .aq-source").first).to_contain_text("John Kerry")
    expect(page.locator("#aq-sources")).to_contain_text("US on Iraq")

    follow = ask(page, "where was he speaking?")
    expect(follow).to_contain_text("Searched for: where was John Kerry speaking?")
    expect(page.locator("#aq-searched")).to_contain_text("he → John Kerry")
    expect(page.locator("#aq-sources")).to_contain_text("Jerusalem")

    page.locator("#aq-open-source label").first.click()
    expect(page.locator("#aq-article mark.aq-passage")).to_be_visible()
    expect(page.locator("#aq-article")).to_contain_text("Fallujah")  # the whole article
    assert shot(page, "chat.png").stat().st_size > 10_000
    assert page.dialogs == []


def test_two_browser_sessions_keep_separate_conversations(browser, live):
    """Each browser session has its own turns (gr.State): the same follow-up, asked in two
    sessions whose first questions differ, resolves to each session's own person."""
    from playwright.sync_api import expect

    kerry_context, kerry = open_chat(browser, live.url)
    mayor_context, mayor = open_chat(browser, live.url)
    try:
        expect(ask(kerry, "who said it was their fight?")).to_contain_text("Kerry")
        expect(ask(mayor, "Who was elected mayor of Greyholm?")).to_contain_text("Arneberg")
        ask(kerry, "what did he say?")  # asked after the other session's first question
        expect(kerry.locator("#aq-searched")).to_contain_text("he → John Kerry")
        ask(mayor, "what did he say?")
        expect(mayor.locator("#aq-searched")).to_contain_text("he → Solveig Arneberg")
        expect(kerry.locator("#aq-searched")).not_to_contain_text("Arneberg")
        expect(mayor.locator("#aq-searched")).not_to_contain_text("Kerry")
        assert kerry.dialogs == [] and mayor.dialogs == []
    finally:
        kerry_context.close()
        mayor_context.close()


def test_the_readme_demo_over_the_sample_articles(browser, encoder):
    """What `make demo` shows: a sample question answered with its citation, a follow-up
    resolved, the sources panel; the screenshot is the README's (ARTICLEQA_UPDATE_DOCS=1)."""
    from playwright.sync_api import expect

    from ui.cli import sample_articles

    samples = start_server(encoder, [sample_articles()], name="samples")
    context, page = open_chat(browser, samples.url)
    try:
        first = ask(page, "Who was elected mayor of Greyholm?")
        expect(first).to_contain_text("Arneberg")
        expect(page.locator("#aq-sources .aq-source").first).to_contain_text("Greyholm")
        ask(page, "What share of the vote did she win?")
        expect(page.locator("#aq-searched")).to_contain_text("she → Solveig Arneberg")
        expect(page.locator("#aq-sources")).to_contain_text("percent")
        path = shot(page, "chat-samples.png")
        assert path.stat().st_size > 10_000 and page.dialogs == []
    finally:
        context.close()
    if os.environ.get("ARTICLEQA_UPDATE_DOCS"):
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(path, ROOT / "docs" / "chat.png")


def test_no_answer_is_said_plainly_with_passages(page, live):
    from playwright.sync_api import expect

    question = "How much did a ticket for the Northern Shield final cost?"
    assert live.kb.ask(question).text is None  # the samples never say
    reply = ask(page, question)
    expect(reply).to_contain_text("No answer found")
    expect(page.locator("#aq-sources .aq-source")).not_to_have_count(0)


def test_upload_a_file_and_ask_about_it(page, live, tmp_path):
    from playwright.sync_api import expect

    upload(page, "tern-ferry.txt", UPLOAD_ARTICLE, tmp_path)
    stored = live.kb.files / "uploads" / "tern-ferry.txt"
    assert stored.is_file()
    reply = ask(page, "How many passengers can the Marsh Wren carry?")
    expect(page.locator("#aq-sources .aq-source").first).to_contain_text("84 passengers")
    expect(reply).to_contain_text("[1]")
    shot(page, "chat-upload.png")


def test_unicode_named_uploads_are_both_added(page, live, tmp_path):
    """Two non-Latin names in one go: once both became upload.txt and one article was lost."""
    from playwright.sync_api import expect

    texts = {"東京.txt": "Tokyo tram fares rise\n\nTram fares in Tokyo rise by 20 yen in May.",
             "Москва.txt": "Moscow metro adds a line\n\nA new metro line opened in Moscow."}
    files = []
    for name, text in texts.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        files.append(str(tmp_path / name))
    page.get_by_role("tab", name="Library").click()
    page.locator("#aq-upload input[type=file]").set_input_files(files)
    for name in texts:
        stem, suffix = name.rsplit(".", 1)
        expect(page.locator("#aq-upload")).to_contain_text(
            re.compile(re.escape(stem) + r"\s*\." + re.escape(suffix)))
    page.locator("#aq-add").click()
    expect(page.locator("#aq-add-status")).to_contain_text("2 added, 0 updated, 0 unchanged, "
                                                           "0 failed")
    for name, text in texts.items():
        expect(page.locator("#aq-add-results")).to_contain_text(name)
        expect(page.locator("#aq-articles")).to_contain_text(text.split("\n")[0])
        assert (live.kb.files / "uploads" / name).read_text(encoding="utf-8") == text


def test_refused_upload_says_why(page, tmp_path):
    """Gradio refuses a wrong type in the browser with a toast; the server checks again
    (tests/test_ui_library.py) for clients that skip the browser."""
    from playwright.sync_api import expect

    file = tmp_path / "notes.pdf"
    file.write_bytes(b"%PDF-1.4 not an article")
    page.get_by_role("tab", name="Library").click()
    page.locator("#aq-upload input[type=file]").set_input_files(str(file))
    expect(page.get_by_text("Invalid file type: notes.pdf")).to_be_visible()
    page.locator("#aq-add").click()
    expect(page.locator("#aq-add-status")).to_contain_text("Choose files or paste URLs")


def test_markup_in_an_article_renders_inert(page, live, tmp_path):
    from playwright.sync_api import expect

    upload(page, "lantern-festival.txt", XSS_ARTICLE, tmp_path)
    ask(page, "How many paper lanterns will be floated on the Quillby mill pond?")
    sources = page.locator("#aq-sources")
    expect(sources).to_contain_text("<script>window.__xss='script'")
    expect(sources).to_contain_text('<img src=x onerror="window.__xss=\'title\'')
    page.locator("#aq-open-source label").first.click()
    article = page.locator("#aq-article")
    expect(article).to_contain_text("<a href=\"javascript:window.__xss='link'")
    expect(article).to_contain_text("${window.__xss='tpl'}")
    # the chat shows the title and passage text literally too
    ask(page, "Who is organising the lantern festival in Quillby?")
    chat = page.locator("#aq-chat")
    expect(chat).to_contain_text("<img src=x onerror=")
    expect(chat).to_contain_text("**not bold**")
    expect(chat).to_contain_text("[click here](javascript:alert('md'))")
    page.get_by_role("tab", name="Library").click()
    expect(page.locator("#aq-articles")).to_contain_text("<img src=x onerror=")
    page.get_by_role("tab", name="Chat").click()
    page.wait_for_timeout(500)  # give any injected handler the chance to fire
    injected = page.evaluate("""() => ({
        xss: window.__xss || null,
        img: document.querySelectorAll('img[src="x"]').length,
        onerror: document.querySelectorAll('[onerror]').length,
        js_links: document.querySelectorAll('a[href^="javascript:" i]').length,
        iframes: document.querySelectorAll('iframe').length,
        scripts: [...document.scripts].filter(s => s.textContent.includes('__xss')).length,
        bold: [...document.querySelectorAll('#aq-chat strong')]
              .filter(s => s.textContent.includes('not bold')).length,
    })""")
    assert injected == {"xss": None, "img": 0, "onerror": 0, "js_links": 0, "iframes": 0,
                        "scripts": 0, "bold": 0}
    assert page.dialogs == []
    shot(page, "chat-markup.png")
