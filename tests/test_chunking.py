"""Chunking with the real model's tokenizer: exact offsets, the token budget, overlap, long text."""

from __future__ import annotations

import itertools

import pytest

from qa.articles import Article, iter_articles
from qa.chunking import Chunk, ChunkSettings, chunk_text, split_sentences
from tests.conftest import SAMPLES, SEED_ARTICLE

SETTINGS = ChunkSettings()


@pytest.fixture(scope="module")
def articles() -> list[Article]:
    """Every team sample, and the scraped seed when ../shared is there."""
    inputs = [SAMPLES] + ([SEED_ARTICLE] if SEED_ARTICLE.exists() else [])
    loaded = list(iter_articles(inputs))
    assert all(isinstance(a, Article) for a in loaded), loaded
    return loaded


def _chunks(text: str, encoder, **kwargs) -> list[Chunk]:
    return chunk_text(text, encoder.count_tokens, encoder.token_windows, **kwargs)


def test_chunk_offsets_point_into_the_article(articles, encoder):
    assert len(articles) >= 6
    for article in articles:
        chunks = _chunks(article.text, encoder)
        assert len(chunks) >= 2, article.source
        for chunk in chunks:
            assert article.text[chunk.start:chunk.end] == chunk.text
            assert chunk.text == chunk.text.strip() and chunk.text
        assert chunks[0].start == 0 and chunks[-1].end == len(article.text)


def test_the_seed_is_chunked_with_exact_offsets(seed_article, encoder):
    article = next(iter_articles([seed_article]))
    chunks = _chunks(article.text, encoder)
    assert all(article.text[c.start:c.end] == c.text for c in chunks)
    assert any("This is a fight that belongs to the Iraqis" in c.text for c in chunks)


@pytest.mark.parametrize("reserved", [0, 40])
def test_every_chunk_fits_the_token_budget(articles, encoder, reserved):
    budget = SETTINGS.target_tokens - reserved
    for article in articles:
        chunks = _chunks(article.text, encoder, reserved_tokens=reserved)
        counts = encoder.count_tokens([c.text for c in chunks])
        assert max(counts) <= budget, (article.source, counts)
        assert sum(counts) >= encoder.count_tokens([article.text])[0]  # nothing dropped


def test_consecutive_chunks_overlap_by_one_sentence_when_it_fits(articles, encoder):
    overlaps = 0
    for article in articles:
        text = article.text
        sentences = split_sentences(text)
        chunks = _chunks(text, encoder)
        for before, after in itertools.pairwise(chunks):
            last = next(s for s in sentences if s[1] == before.end)
            fits = encoder.count_tokens([text[last[0]:last[1]]])[0] <= SETTINGS.target_tokens // 2
            if fits and last[0] > before.start:
                assert (after.start, before.end) == last, (article.source, before, after)
                overlaps += 1
            else:
                assert after.start >= before.end
            gap = text[before.end:after.start]
            assert not gap.strip(), f"text between chunks was skipped: {gap!r}"
    assert overlaps >= len(articles)


def test_a_long_sentence_without_punctuation_is_split_not_truncated(encoder):
    vocabulary = ["harbour", "council", "extraordinarily", "Norrbridge", "embankment", "vote",
                  "unprecedentedly", "Sjödahl", "river", "and", "the", "floodwater"]
    words = [f"{vocabulary[(i * 7) % len(vocabulary)]}{i}" for i in range(2000)]
    text = " ".join(words)
    assert split_sentences(text) == [(0, len(text))]
    assert encoder.count_tokens([text])[0] > 10 * SETTINGS.target_tokens

    chunks = _chunks(text, encoder)
    assert len(chunks) >= 10
    counts = encoder.count_tokens([c.text for c in chunks])
    assert max(counts) <= SETTINGS.target_tokens, counts
    covered = bytearray(len(text))
    for chunk in chunks:
        assert text[chunk.start:chunk.end] == chunk.text
        covered[chunk.start:chunk.end] = b"\x01" * (chunk.end - chunk.start)
    lost = "".join(ch for ch, hit in zip(text, covered, strict=True) if not hit)
    assert not lost.strip(), f"characters in no chunk: {lost!r}"
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)


def test_split_sentences_ends_a_sentence_at_every_line_break():
    text = ("Council approves emergency fund\n"
            "At an emergency session the council voted 27 to 4. Families are housed nearby.\n\n"
            "   \n"
            "Image caption without a full stop")
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans] == [
        "Council approves emergency fund",
        "At an emergency session the council voted 27 to 4.",
        "Families are housed nearby.",
        "Image caption without a full stop",
    ]


@pytest.mark.parametrize("text", ["", "   ", "\n\n \n"])
def test_empty_text_gives_no_chunks(encoder, text):
    assert _chunks(text, encoder) == []
    assert split_sentences(text) == []


def test_max_chunks_keeps_one_leading_chunk_per_article(articles, encoder):
    whole_doc = ChunkSettings(target_tokens=254, overlap_sentences=0, max_chunks=1)
    for article in articles:
        chunks = _chunks(article.text, encoder, settings=whole_doc, reserved_tokens=10)
        assert len(chunks) == 1 and chunks[0].start == 0, article.source
        assert encoder.count_tokens([chunks[0].text])[0] <= 244
        assert chunks[0].text == _chunks(article.text, encoder, settings=ChunkSettings(
            target_tokens=254, overlap_sentences=0), reserved_tokens=10)[0].text


def test_manifest_records_only_options_that_are_set():
    """Indexes built before ``max_chunks`` existed still match the default settings."""
    assert ChunkSettings().as_dict() == {"target_tokens": 160, "overlap_sentences": 1,
                                         "max_tokens": 254}
    assert ChunkSettings(max_chunks=1).as_dict()["max_chunks"] == 1


def test_a_megabyte_article_is_chunked_whole(encoder):
    """Over a megabyte (beyond the 1,000,000-character limit that used to abort a batch):
    every character lands in a chunk within the token budget, in bounded time."""
    paragraph = " ".join(
        f"On day {n} the harbour council of Tarnholm met about the ferry and the bridge, "
        f"said Councillor Ane Sjödahl, who chairs committee {n % 17}." for n in range(6))
    text = "\n\n".join(f"{paragraph} Report {n}." for n in range(1300))
    assert len(text) > 1_000_000
    chunks = _chunks(text, encoder)
    assert len(chunks) > 1000
    assert max(encoder.count_tokens([c.text for c in chunks])) <= SETTINGS.target_tokens
    assert all(text[c.start:c.end] == c.text for c in chunks)
    covered = bytearray(len(text))
    for chunk in chunks:
        covered[chunk.start:chunk.end] = b"\x01" * (chunk.end - chunk.start)
    assert not "".join(ch for ch, hit in zip(text, covered, strict=True) if not hit).strip()


@pytest.mark.parametrize("text", [
    "The mayor spoke. Then she left! Did anyone follow?",
    "Café au lait — naïve “quotes” über alles. Zweiter Satz hier. 日本語の文。 Another one?",
    "An emoji 😀 inside. And 𝔘nicode letters outside the basic plane. Done",
    "  Leading spaces. Trailing spaces.   ",
    "one",
])
def test_sentence_offsets_match_blingfires_own_wrapper(text):
    import blingfire

    from qa.chunking import _sentence_offsets

    assert _sentence_offsets(text) == [tuple(s) for s in
                                       blingfire.text_to_sentences_and_offsets(text)[1]]
