"""Models a user may add: a CrossEncoder re-ranker and an extractive-QA reader.

Neither ships with ArticleQA (no such weights are on PyPI) and nothing is downloaded, so each
is loaded from a local folder or the Hugging Face cache only; when it is not there, the error
says so and how to add it, rather than the system quietly answering without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from qa.reader import Reading

if TYPE_CHECKING:
    from qa.results import Passage

MAX_ANSWER_TOKENS = 30  # the longest answer span the QA model may pick
EXTRACTIVE_THRESHOLD = 0.3  # span probability below which an extractive-QA model abstains
T = TypeVar("T")


class OptionalModelMissing(RuntimeError):
    """A model the user asked for is not available offline; the message says how to add it."""


def _offline(load: Callable[[], T], name: str, role: str) -> T:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        return load()
    except (OSError, ValueError) as exc:
        raise OptionalModelMissing(
            f"{role} {name!r} is not available offline ({str(exc).splitlines()[0]}). ArticleQA "
            "never downloads: on a machine with a network, save the model "
            "(`huggingface-cli download NAME --local-dir DIR`), copy DIR here and pass its path, "
            "or run without it."
        ) from exc


class Reranker:
    """Re-orders retrieved passages by a CrossEncoder's score of (question, passage)."""

    def __init__(self, name_or_path: str):
        from sentence_transformers import CrossEncoder

        self.name = name_or_path
        self.model = _offline(lambda: CrossEncoder(name_or_path, device="cpu"),
                              name_or_path, "CrossEncoder re-ranker")

    def scores(self, question: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        return np.asarray(self.model.predict([(question, t) for t in texts],
                                             show_progress_bar=False), dtype=np.float64)


class ExtractiveReader:
    """A transformers extractive-QA model (start/end heads, SQuAD-style) as the reader: the
    answer is the most probable span over the passages, its confidence that probability.
    Implements `qa.reader.Reader`."""

    def __init__(self, name_or_path: str, threshold: float | None = None,
                 max_length: int = 384):
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer

        self.name = name_or_path
        self.tokenizer = _offline(lambda: AutoTokenizer.from_pretrained(name_or_path),
                                  name_or_path, "Extractive-QA model")
        self.model = _offline(
            lambda: AutoModelForQuestionAnswering.from_pretrained(name_or_path).eval(),
            name_or_path, "Extractive-QA model")
        self.max_length = max_length
        self.threshold = EXTRACTIVE_THRESHOLD if threshold is None else threshold

    def read(self, question: str, passages: Sequence[Passage]) -> Reading:
        import torch

        if not passages:
            return Reading(None, 0.0)
        encoded = self.tokenizer([question] * len(passages), [p.text for p in passages],
                                 truncation="only_second", max_length=self.max_length,
                                 padding=True, return_offsets_mapping=True, return_tensors="pt")
        offsets = encoded.pop("offset_mapping").numpy()
        with torch.inference_mode():
            output = self.model(**encoded)
        starts = torch.log_softmax(output.start_logits, -1).numpy()
        ends = torch.log_softmax(output.end_logits, -1).numpy()
        found = []  # (probability, passage, start, end) in passage characters
        for i in range(len(passages)):
            context = np.array([s == 1 for s in encoded.sequence_ids(i)])
            pair = starts[i][:, None] + ends[i][None, :]
            allowed = (np.triu(np.ones_like(pair, bool))
                       & ~np.triu(np.ones_like(pair, bool), MAX_ANSWER_TOKENS)
                       & context[:, None] & context[None, :])
            pair[~allowed] = -np.inf
            a, b = np.unravel_index(int(np.argmax(pair)), pair.shape)
            found.append((float(np.exp(pair[a, b])), i, int(offsets[i][a][0]),
                          int(offsets[i][b][1])))
        found.sort(reverse=True)
        considered = tuple((passages[i].text[s:e], round(p, 4)) for p, i, s, e in found)
        probability, index, start, end = found[0]
        if probability < self.threshold or end <= start:
            return Reading(None, probability, candidates=considered)
        base = passages[index].start
        return Reading(passages[index].text[start:end], probability, index, base + start,
                       base + end, considered)
