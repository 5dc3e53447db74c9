"""Sentence-aware chunks that fit the encoder, with character offsets into the article.

Chunks are whole sentences packed up to a token target, counted with the encoder's own
tokenizer, overlapping by a sentence so an answer on a boundary is whole in one of them.
A sentence longer than the encoder's limit is cut at token boundaries into several chunks:
nothing is ever silently truncated by the model.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import blingfire
import numpy as np

_PARAGRAPH = re.compile(r"[^\n]+")

TokenCounter = Callable[[Sequence[str]], list[int]]
TokenSplitter = Callable[[str, int], list[tuple[int, int]]]


@dataclass(frozen=True)
class ChunkSettings:
    """How articles are cut. ``max_chunks`` keeps only an article's first chunks: one chunk of
    ``max_tokens`` reproduces the one-truncated-vector-per-document baselines (MTEB, BEIR)."""

    target_tokens: int = 160
    overlap_sentences: int = 1
    max_tokens: int = 254
    max_chunks: int | None = None

    def as_dict(self) -> dict:
        """The settings a manifest records (unset options left out, so older indexes match)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Chunk:
    start: int
    end: int
    text: str


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence; line breaks always end one (headings, captions)."""
    spans = []
    for paragraph in _PARAGRAPH.finditer(text):
        block = paragraph.group()
        if not block.strip():
            continue
        offsets = _sentence_offsets(block)
        base = paragraph.start()
        spans.extend((base + s, base + e) for s, e in offsets if block[s:e].strip())
    return spans


def _sentence_offsets(text: str) -> list[tuple[int, int]]:
    """blingfire's sentence spans of ``text`` in characters. Its Python wrapper maps the
    library's UTF-8 byte offsets to characters in a loop over every byte, which was a quarter
    of ingest's work besides the model; here ASCII needs no mapping and other text one numpy
    pass (the byte -> character index is the running count of UTF-8 lead bytes)."""
    data = text.encode("utf-8")
    size = 2 * len(data) + 1
    out, starts, ends = ctypes.create_string_buffer(size), (ctypes.c_int32 * size)(), \
        (ctypes.c_int32 * size)()
    count = blingfire.blingfire.TextToSentencesWithOffsets(
        ctypes.c_char_p(data), ctypes.c_int(len(data)), ctypes.byref(out), ctypes.byref(starts),
        ctypes.byref(ends), ctypes.c_int(size))
    if count <= 0 or count > size:
        return []
    sentences = out.value.count(b"\n") + 1
    first = np.frombuffer(starts, np.int32, sentences)
    last = np.frombuffer(ends, np.int32, sentences) + 1  # the library's ends are inclusive
    if len(data) != len(text):
        lead = np.frombuffer(data, np.uint8) & 0xC0 != 0x80
        char_of_byte = np.append(np.cumsum(lead) - 1, len(text))
        first, last = char_of_byte[first], char_of_byte[np.minimum(last, len(data))]
    return list(zip(first.tolist(), last.tolist(), strict=True))


def _split_long(sentence: str, offset: int, budget: int, count_tokens: TokenCounter,
                split_tokens: TokenSplitter) -> list[tuple[int, int, int]]:
    """Token windows of an over-long sentence, re-counted so that none exceeds ``budget``.

    A window cut inside a word can count more once it stands alone ("##ina" becomes "ina"),
    so the window size shrinks by the excess until every piece fits.
    """
    size = budget
    while True:
        spans = split_tokens(sentence, size)
        counts = count_tokens([sentence[s:e] for s, e in spans])
        if max(counts) <= budget or size == 1:
            return [(offset + s, offset + e, n) for (s, e), n in zip(spans, counts, strict=True)]
        size = max(1, size - (max(counts) - budget))


def chunk_text(
    text: str,
    count_tokens: TokenCounter,
    split_tokens: TokenSplitter,
    settings: ChunkSettings = ChunkSettings(),
    reserved_tokens: int = 0,
) -> list[Chunk]:
    """Pack sentences into chunks of at most ``target_tokens`` (less ``reserved_tokens``)."""
    budget = max(16, min(settings.target_tokens, settings.max_tokens) - reserved_tokens)
    units: list[tuple[int, int, int]] = []  # start, end, tokens
    spans = split_sentences(text)
    if not spans:
        return []
    for (start, end), n in zip(spans, count_tokens([text[s:e] for s, e in spans]), strict=True):
        if n <= budget:
            units.append((start, end, n))
        else:
            units.extend(_split_long(text[start:end], start, budget, count_tokens, split_tokens))

    chunks: list[Chunk] = []
    i = 0
    while i < len(units):
        j, used = i, 0
        while j < len(units) and (j == i or used + units[j][2] <= budget):
            used += units[j][2]
            j += 1
        start, end = units[i][0], units[j - 1][1]
        chunks.append(Chunk(start, end, text[start:end]))
        if j >= len(units) or len(chunks) == settings.max_chunks:
            break
        back = min(settings.overlap_sentences, j - i - 1)
        while back and sum(u[2] for u in units[j - back:j]) > budget // 2:
            back -= 1
        i = j - back
    return chunks
