"""Reading windows into answer spans, without torch: the part of the reader that ``ask`` runs.

A question and each passage become windows of ``max_length`` tokens (question first); a forward
pass gives every token a start and an end logit; the best span of each passage is the best
start + end pair over its windows, and the lowest [CLS] pair ("no answer here") is the evidence
against it. The forward pass is ONNX Runtime's int8 model (`OnnxWindows`) when answering and
torch's while training (qa/span_model.py); both go through `score_windows`. ``reader.json``
beside a reader's weights records its base model and each shard's sha256 (`verified_card`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embeddings.encoder import resolve_model, sha256_of

CARD_FILE = "reader.json"
MAX_ANSWER_TOKENS = 30
MAX_QUESTION_TOKENS = 64
INPUTS = ("input_ids", "attention_mask", "token_type_ids")

# windows (as `encode` returns them) -> start and end logits, [window, token]
Forward = Callable[[dict], tuple[np.ndarray, np.ndarray]]


class ReaderWeightsError(RuntimeError):
    """The reader's weights are missing, damaged or not the expected ones; says what to do."""


def verified_card(folder: Path) -> tuple[dict, str]:
    """The card of the reader in ``folder`` and the path of its base model, once each shard
    matches the sha256 the card records and the base model (which supplies the word
    embeddings) is the one it was trained on."""
    card_path = folder / CARD_FILE
    if not card_path.is_file():
        raise ReaderWeightsError(f"{card_path} is missing: the reader's weights are not in "
                                 f"{folder}; reinstall ArticleQA or pass another reader.")
    card = json.loads(card_path.read_text())
    for name, expected in card["shards"].items():
        path = folder / name
        if not path.is_file():
            raise ReaderWeightsError(f"{path} is missing; restore it (git checkout {folder}) "
                                     "or retrain with `articleqa train-reader`.")
        actual = sha256_of(path)
        if actual != expected:
            raise ReaderWeightsError(
                f"{path} has sha256 {actual}, expected {expected}: the reader's weights are "
                f"damaged or were replaced; restore them (git checkout {folder}) or retrain.")
    base, base_sha = resolve_model(card["base"])
    if card.get("base_sha256") not in (None, base_sha):
        raise ReaderWeightsError(
            f"the reader in {folder} was trained on base weights {card['base_sha256']}, but "
            f"{base} has {base_sha}: install the base model it was trained on.")
    return card, base


def weights_sha256(card: dict) -> str:
    """One checksum for a reader's weights: its shards' and its base model's."""
    parts = json.dumps({"shards": card["shards"], "base": card.get("base_sha256")},
                       sort_keys=True)
    return hashlib.sha256(parts.encode()).hexdigest()


@dataclass(frozen=True)
class SpanScore:
    """The best span of one text (character offsets into it) and the evidence against it."""

    start: int
    end: int
    score: float  # start + end logit of the span
    null: float  # the lowest no-answer logit sum over the text's windows

    @property
    def margin(self) -> float:
        return self.score - self.null


def truncated_question(tokenizer, question: str) -> str:
    """The question cut to `MAX_QUESTION_TOKENS` word pieces, as training and reading see it."""
    ids = tokenizer(question, add_special_tokens=False)["input_ids"][:MAX_QUESTION_TOKENS]
    return tokenizer.decode(ids)


def encode(tokenizer, question: str, texts: Sequence[str], max_length: int, stride: int):
    """Question + each text as windows of ``max_length`` tokens overlapping by ``stride``."""
    question = truncated_question(tokenizer, question)
    return tokenizer([question] * len(texts), list(texts), truncation="only_second",
                     max_length=max_length, stride=stride, return_overflowing_tokens=True,
                     return_offsets_mapping=True, padding=True, return_tensors="np")


def best_spans(start: np.ndarray, end: np.ndarray, offsets: np.ndarray, context: np.ndarray,
               owners: np.ndarray, n_texts: int, paragraphs: np.ndarray | None = None,
               max_answer_tokens: int = MAX_ANSWER_TOKENS) -> list[SpanScore | None]:
    """Per text, the highest-scoring span over its windows (None for a text without one).
    ``context`` marks each window's tokens of the text, ``owners`` the text of each window,
    ``paragraphs`` the paragraph of its text each token is in."""
    best: list[SpanScore | None] = [None] * n_texts
    nulls = [np.inf] * n_texts
    band = np.triu(np.ones((start.shape[1],) * 2, bool))
    band &= ~np.triu(band, max_answer_tokens)
    for w in range(start.shape[0]):
        if not context[w].any():
            continue
        t = int(owners[w])
        nulls[t] = min(nulls[t], float(start[w, 0] + end[w, 0]))
        pair = start[w][:, None] + end[w][None, :]
        allowed = band & context[w][:, None] & context[w][None, :]
        if paragraphs is not None:  # an answer never runs across a paragraph break
            allowed &= paragraphs[w][:, None] == paragraphs[w][None, :]
        pair = np.where(allowed, pair, -np.inf)
        a, b = np.unravel_index(int(np.argmax(pair)), pair.shape)
        if best[t] is None or pair[a, b] > best[t].score:
            best[t] = SpanScore(int(offsets[w, a, 0]), int(offsets[w, b, 1]), float(pair[a, b]),
                                0.0)
    return [None if s is None else SpanScore(s.start, s.end, s.score, nulls[t])
            for t, s in enumerate(best)]


def score_windows(forward: Forward, tokenizer, question: str, texts: Sequence[str],
                  max_length: int, stride: int) -> list[SpanScore | None]:
    """Every window of every text through ``forward``, then each text's best span."""
    if not texts:
        return []
    encoded = encode(tokenizer, question, texts, max_length, stride)
    offsets = encoded["offset_mapping"]
    owners = encoded["overflow_to_sample_mapping"]
    context = (encoded["token_type_ids"] == 1) & (offsets[..., 1] > offsets[..., 0])
    start, end = forward(encoded)
    breaks = [np.array([m.start() for m in re.finditer(r"\n\s*\n", text)]) for text in texts]
    paragraphs = np.stack([np.searchsorted(breaks[owners[w]], offsets[w, :, 0])
                           for w in range(len(owners))])
    return best_spans(start, end, offsets, context, owners, len(texts), paragraphs)


class OnnxWindows:
    """The reader's int8 model on ONNX Runtime, each window its own run (a `Forward`).

    As with the encoder, dynamic quantisation scales activations per run, so one window per
    run makes a window's logits depend on that window only, not on what it was batched with,
    and nothing is spent on padding. Runs go in parallel, one single-threaded run per CPU.
    """

    def __init__(self, path: Path, threads: int):
        from embeddings.onnx_int8 import single_run_session

        self.session = single_run_session(path)
        self.pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def _run(self, window: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.session.run(None, window)
        return start[0], end[0]

    def __call__(self, encoded: dict) -> tuple[np.ndarray, np.ndarray]:
        lengths = encoded["attention_mask"].sum(1)
        windows = [{name: encoded[name][w:w + 1, :n].astype(np.int64) for name in INPUTS}
                   for w, n in enumerate(lengths)]
        shape = encoded["input_ids"].shape
        start, end = np.full(shape, -1e4, np.float32), np.full(shape, -1e4, np.float32)
        runs = self.pool.map(self._run, windows) if self.pool else map(self._run, windows)
        for w, (s, e) in enumerate(runs):
            start[w, :len(s)], end[w, :len(e)] = s, e
        return start, end
