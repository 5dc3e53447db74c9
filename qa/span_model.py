"""Our extractive reader's network: a BERT-like encoder with start/end span heads.

The no-answer score is the [CLS] token's start + end logits (the SQuAD 2.0 convention), so one
forward pass gives both the best span of each window and how strongly the window says "not
here". Weights are saved as fp16 safetensors shards of at most 16 MiB each, without the word
embeddings: those stay frozen in training, so they are taken from the base model at load time
rather than stored twice. ``reader.json`` beside the shards records the base model, the shards'
sha256 and the fitted abstention threshold; a shard whose checksum differs is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from embeddings.encoder import sha256_of

WORD_EMBEDDINGS = "encoder.embeddings.word_embeddings.weight"
CARD_FILE = "reader.json"
SHARD_BYTES = 16 * 1024 * 1024
MAX_ANSWER_TOKENS = 30
MAX_QUESTION_TOKENS = 64


class ReaderWeightsError(RuntimeError):
    """The reader's weights are missing, damaged or not the expected ones; says what to do."""


class SpanModel(nn.Module):
    """Encoder + a linear layer giving each token a start and an end logit."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.span_head = nn.Linear(encoder.config.hidden_size, 2)

    @classmethod
    def from_base(cls, base: str | Path) -> SpanModel:
        from transformers import AutoModel

        return cls(AutoModel.from_pretrained(str(base), add_pooling_layer=False))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        logits = self.span_head(hidden).float()
        padding = attention_mask == 0
        start, end = logits.unbind(-1)
        return start.masked_fill(padding, -1e4), end.masked_fill(padding, -1e4)

    def freeze_word_embeddings(self) -> None:
        self.encoder.embeddings.word_embeddings.weight.requires_grad_(False)

    def trained_state(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen word embeddings (a copy of the base model's)."""
        return {k: v for k, v in self.state_dict().items() if k != WORD_EMBEDDINGS}


def save_weights(model: SpanModel, folder: Path, card: dict) -> dict:
    """Write fp16 shards (each <= 16 MiB) and ``reader.json``; returns the card written."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("reader-*.safetensors"):
        old.unlink()
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in model.trained_state().items():
        half = tensor.detach().to(torch.float16).contiguous().cpu()
        nbytes = half.numel() * 2
        if size and size + nbytes > SHARD_BYTES - 64 * 1024:
            shards.append({})
            size = 0
        shards[-1][name] = half
        size += nbytes
    files = {}
    for i, shard in enumerate(shards):
        path = folder / f"reader-{i + 1:02d}.safetensors"
        save_file(shard, str(path))
        files[path.name] = sha256_of(path)
    card = {**card, "shards": files}
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return card


def load_weights(folder: Path) -> tuple[SpanModel, str, dict]:
    """The reader in ``folder`` (model, base model path for its tokenizer, card). Each shard is
    checked against the sha256 its card records, and the base model (which supplies the word
    embeddings) against the one it was trained on."""
    from safetensors.torch import load_file

    from embeddings.encoder import resolve_model

    card_path = folder / CARD_FILE
    if not card_path.is_file():
        raise ReaderWeightsError(f"{card_path} is missing: the reader's weights are not in "
                                 f"{folder}; reinstall ArticleQA or pass another reader.")
    card = json.loads(card_path.read_text())
    state: dict[str, torch.Tensor] = {}
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
        state.update(load_file(str(path)))
    base, base_sha = resolve_model(card["base"])
    if card.get("base_sha256") not in (None, base_sha):
        raise ReaderWeightsError(
            f"the reader in {folder} was trained on base weights {card['base_sha256']}, but "
            f"{base} has {base_sha}: install the base model it was trained on.")
    model = SpanModel.from_base(base)
    state = {k: v.float() for k, v in state.items()}
    state[WORD_EMBEDDINGS] = model.state_dict()[WORD_EMBEDDINGS]
    model.load_state_dict(state)
    return model.eval(), base, card


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


def encode(tokenizer, question: str, texts: Sequence[str], max_length: int, stride: int):
    """Question + each text as windows of ``max_length`` tokens overlapping by ``stride``."""
    ids = tokenizer(question, add_special_tokens=False)["input_ids"][:MAX_QUESTION_TOKENS]
    question = tokenizer.decode(ids)
    return tokenizer([question] * len(texts), list(texts), truncation="only_second",
                     max_length=max_length, stride=stride, return_overflowing_tokens=True,
                     return_offsets_mapping=True, padding=True, return_tensors="pt")


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


def score_spans(model: SpanModel, tokenizer, question: str, texts: Sequence[str],
                max_length: int = 192, stride: int = 64) -> list[SpanScore | None]:
    """One batched forward pass over every window of every text."""
    if not texts:
        return []
    encoded = encode(tokenizer, question, texts, max_length, stride)
    offsets = encoded["offset_mapping"].numpy()
    owners = encoded["overflow_to_sample_mapping"].numpy()
    context = (encoded["token_type_ids"].numpy() == 1) & (offsets[..., 1] > offsets[..., 0])
    device = next(model.parameters()).device  # a GPU while training there
    with torch.inference_mode():
        start, end = model(*(encoded[k].to(device)
                             for k in ("input_ids", "attention_mask", "token_type_ids")))
    breaks = [np.array([m.start() for m in re.finditer(r"\n\s*\n", text)]) for text in texts]
    paragraphs = np.stack([np.searchsorted(breaks[owners[w]], offsets[w, :, 0])
                           for w in range(len(owners))])
    return best_spans(start.cpu().numpy(), end.cpu().numpy(), offsets, context, owners,
                      len(texts), paragraphs)
