"""Fusion and copy collapse on hand-made rankings."""

from __future__ import annotations

import pytest

from qa.retrieval import (
    collapse_copies,
    query_terms,
    reciprocal_rank_fusion,
    weighted_fusion,
)


def test_rrf_sums_reciprocal_ranks_and_keeps_inputs():
    dense = [(1, 0.9), (2, 0.8)]
    lexical = [(2, 12.0), (3, 7.0)]
    fused = dict(reciprocal_rank_fusion([dense, lexical], k=60))
    assert fused[2] == pytest.approx(1 / 62 + 1 / 61)  # rank 2 in dense, rank 1 in BM25
    assert fused[1] == pytest.approx(1 / 61) and fused[3] == pytest.approx(1 / 62)
    assert dense == [(1, 0.9), (2, 0.8)] and lexical == [(2, 12.0), (3, 7.0)]


def test_weighted_fusion_normalises_each_ranking():
    scores = dict(weighted_fusion([(1, 0.9), (2, 0.5)], [(2, 10.0), (3, 0.0)], alpha=0.5))
    assert scores[1] == pytest.approx(0.5) and scores[2] == pytest.approx(0.5)
    assert scores[3] == pytest.approx(0.0)


def test_lightly_edited_copies_collapse_but_different_passages_stay():
    story = ("Rescue boats reached the island village of Tarnholm before dawn on Sunday, "
             "and the coastguard said all forty residents were safe. The storm had cut the "
             "ferry link for three days, and the harbour wall was breached in two places. "
             "Engineers from the county council will inspect the damage on Tuesday, a "
             "spokesperson for the council said, and a temporary pier is planned.")
    texts = {1: story, 2: story.replace("Sunday", "Sunday morning"), 3: "The budget passed.",
             4: story}
    kept = collapse_copies([(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6)], texts.get, k=5)
    assert kept == [(1, 0.9), (3, 0.7)]
    assert collapse_copies([(1, 0.9), (3, 0.7)], texts.get, k=1) == [(1, 0.9)]


def test_query_terms_are_the_content_words():
    assert query_terms("Who said it was their fight? They said so.") == ["said", "fight"]
    assert query_terms("Is it?") == ["is", "it"]  # only stop words: keep them
    assert query_terms("?!") == []
