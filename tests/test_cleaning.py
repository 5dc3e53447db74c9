"""Cleaning scraped text: boilerplate out, headline and dateline into metadata, markup decoded."""

from __future__ import annotations

import pytest

from qa.articles import Article, load_file
from qa.cleaning import clean_text, markdown_to_text, normalise, parse_date
from tests.conftest import SAMPLES


def _only_article(path) -> Article:
    items = list(load_file(path))
    assert len(items) == 1 and isinstance(items[0], Article), items
    return items[0]


def _assert_clean(article: Article, title: str, published: str,
                  gone: list[str], kept: list[str]) -> None:
    assert article.title == title
    assert article.published == published
    for line in gone:
        assert line not in article.text, f"{line!r} should have been cleaned out"
    for sentence in kept:
        assert sentence in article.text, f"{sentence!r} should have been kept"
    assert not article.text.startswith(title), "the headline is metadata, not passage text"


def test_seed_article_comes_out_clean(seed_article):
    article = _only_article(seed_article)
    _assert_clean(
        article,
        title="US on Iraq: 'Their fight'",
        published="2014-01-05",
        gone=["Skip to", "Irak Falludscha 4.1.2014", "Image: Reuters", "bk/msh (AP, Reuters)",
              "January 5, 2014"],
        kept=[
            "US Secretary of State John Kerry has offered Iraq support, but said the country's "
            "battle with jihadists in the province of Anbar was \"their fight.\"",
            "\"This is a fight that belongs to the Iraqis,\" he added.",
            "a process that became known as the \"Awakening.\"",
        ],
    )
    assert article.text.endswith("\"Awakening.\"")


def test_team_sample_scrape_comes_out_clean():
    article = _only_article(SAMPLES / "norrbridge-flood.txt")
    _assert_clean(
        article,
        title="Norrbridge evacuates riverside homes as the Wend bursts its banks",
        published="2026-03-03",
        gone=["Skip to", "Volunteers fill sandbags", "Image: Nordpress",
              "ml/ds (NPA, Baltwire)", "March 3, 2026"],
        kept=[
            "Emergency crews in Norrbridge moved more than 320 households out of the low-lying "
            "Eastmill district on Monday night",
            "Council approves emergency fund",
            "Opposition councillor Marta Sjödahl backed the fund",
            "\"This was a warning we chose not to hear,\" she said.",
        ],
    )
    assert article.text.startswith("Emergency crews in Norrbridge")
    assert article.text.endswith("could take up to ten days.")


def test_boilerplate_lines_go_but_sentences_that_mention_them_stay():
    raw = "\n".join([
        "Share", "Advertisement", "Read more", "© 2026 Hollin Valley Courier",
        "Shares in the company rose after the council read more of the report.",
        "The council met on Monday.",
        "Photo: dpa",
    ])
    text = clean_text(raw, find_header=False).text
    assert text.split("\n") == [
        "Shares in the company rose after the council read more of the report.",
        "The council met on Monday.",  # a full sentence before a credit line is not a caption
    ]


def test_without_header_detection_the_first_line_stays_in_the_text():
    raw = "A short first line\n\nJanuary 5, 2014\n\nThe body sentence is here."
    assert clean_text(raw, find_header=False).text == raw
    cleaned = clean_text(raw)
    assert (cleaned.title, cleaned.published) == ("A short first line", "2014-01-05")
    assert cleaned.text == "The body sentence is here."


def test_html_entities_are_decoded():
    assert normalise("Ren&eacute;e &amp; Co &mdash; &#8220;quoted&#8221; &#x27;x&#39;") == (
        "Renée & Co — “quoted” 'x'")
    assert normalise("a&nbsp;&nbsp; b\u00a0\tc") == "a b c"
    cleaned = clean_text("Caf&eacute; owners protest\n\nThey said &quot;no&quot; to the rent.")
    assert cleaned.title == "Café owners protest"
    assert cleaned.text == 'They said "no" to the rent.'


def test_normalise_unifies_newlines_and_drops_control_characters():
    assert normalise("one\r\ntwo\rthree\x07\x00\n\n\n\n\nfour  ") == "one\ntwo\nthree\n\nfour"


def test_markdown_front_matter_becomes_fields_and_markup_goes():
    markdown = (
        "---\n"
        'title: "Harbour plans approved"\n'
        "date: 2026-02-03\n"
        "author: A. Writer\n"
        "---\n"
        "# Harbour plans *approved*\n\n"
        "Some **bold** words, _emphasis_ and *stars*, a [link text](https://example.org/x) "
        "and `code`.\n"
        "![a photo of the harbour](harbour.png)\n\n"
        "> A quoted line.\n\n"
        "## Second heading\n\n"
        "snake_case_name and 2*3*4 stay as they are.\n"
    )
    text, fields = markdown_to_text(markdown)
    assert fields == {"title": "Harbour plans approved", "date": "2026-02-03",
                      "author": "A. Writer"}
    lines = [line for line in text.split("\n") if line.strip()]
    assert lines == [
        "Harbour plans approved",
        "Some bold words, emphasis and stars, a link text and code.",
        "A quoted line.",
        "Second heading",
        "snake_case_name and 2*3*4 stay as they are.",
    ]
    for markup in ("---", "author:", "https://example.org", "harbour.png", "#", "**", "`"):
        assert markup not in text


def test_markdown_without_front_matter_has_no_fields():
    text, fields = markdown_to_text("Plain *text* with [a link](http://x.org).")
    assert (text, fields) == ("Plain text with a link.", {})


@pytest.mark.parametrize(("line", "iso"), [
    ("January 5, 2014", "2014-01-05"),
    ("5 January 2014", "2014-01-05"),
    ("2014-01-05", "2014-01-05"),
    ("Published: 2014-01-05", "2014-01-05"),
    ("Updated on March 3, 2026", "2026-03-03"),
    ("*Published 2026-02-14*", "2026-02-14"),
    ("Monday, January 6, 2014 10:32", "2014-01-06"),
    ("05.01.2014", "2014-01-05"),  # dotted dates are day first (German, DW's own style)
    ("Heavy fighting in Iraq", None),
    ("In 2014 the war began.", None),
    ("Irak Falludscha 4.1.2014", None),  # a caption holding a date is not a dateline
    ("2014", None),
    ("March 3", None),
    ("31 February 2020", None),
    ("1850-01-01", None),
    ("", None),
])
def test_parse_date(line, iso):
    assert parse_date(line) == iso
