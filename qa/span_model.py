"""Our extractive reader's network in torch (training, and the export to ONNX): a BERT-like
encoder with start/end span heads.

The no-answer score is the [CLS] token's start + end logits (the SQuAD 2.0 convention), so one
forward pass gives both the best span of each window and how strongly the window says "not
here". Weights are saved as fp16 safetensors shards of at most 16 MiB each, without the word
embeddings: those stay frozen in training, so they are taken from the base model at load time
rather than stored twice. Reading spans out of the logits is qa/spans.py.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from embeddings.encoder import sha256_of
from qa.spans import CARD_FILE, INPUTS, SpanScore, score_windows, verified_card

WORD_EMBEDDINGS = "encoder.embeddings.word_embeddings.weight"
SHARD_BYTES = 16 * 1024 * 1024


class SpanModel(nn.Module):
    """Encoder + a linear layer giving each token a start and an end logit."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.span_head = nn.Linear(encoder.config.hidden_size, 2)

    @classmethod
    def from_base(cls, base: str | Path, attn_implementation: str | None = None) -> SpanModel:
        from transformers import AutoModel

        return cls(AutoModel.from_pretrained(str(base), add_pooling_layer=False,
                                             attn_implementation=attn_implementation))

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


def load_weights(folder: Path, attn_implementation: str | None = None
                 ) -> tuple[SpanModel, str, dict]:
    """The reader in ``folder`` (model, base model path for its tokenizer, card), checked by
    `verified_card`."""
    from safetensors.torch import load_file

    card, base = verified_card(folder)
    state: dict[str, torch.Tensor] = {}
    for name in card["shards"]:
        state.update(load_file(str(folder / name)))
    model = SpanModel.from_base(base, attn_implementation)
    state = {k: v.float() for k, v in state.items()}
    state[WORD_EMBEDDINGS] = model.state_dict()[WORD_EMBEDDINGS]
    model.load_state_dict(state)
    return model.eval(), base, card


def score_spans(model: SpanModel, tokenizer, question: str, texts: Sequence[str],
                max_length: int = 192, stride: int = 64) -> list[SpanScore | None]:
    """Each text's best span, every window in one batched forward pass of ``model``."""
    device = next(model.parameters()).device  # a GPU while training there

    def forward(encoded: dict):
        with torch.inference_mode():
            start, end = model(*(torch.from_numpy(encoded[k]).to(device) for k in INPUTS))
        return start.cpu().numpy(), end.cpu().numpy()

    return score_windows(forward, tokenizer, question, texts, max_length, stride)


def export_onnx(folder: str, dest: Path) -> None:
    """The reader in ``folder`` (verified) as fp32 ONNX: windows in, start and end logits out,
    dynamic batch and sequence axes, traced as the encoder's (`SETTINGS`)."""
    from transformers import AutoTokenizer

    from embeddings.onnx_int8 import SETTINGS

    model, base, _ = load_weights(Path(folder), SETTINGS["attn_implementation"])
    tokenizer = AutoTokenizer.from_pretrained(base)
    example = tokenizer(["who traced it?"] * 2, ["an example passage", "a longer example "
                        "passage, so that one row is padded"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "sequence"} for name in [*INPUTS, "start", "end"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and exporter deprecation chatter
        torch.onnx.export(model, tuple(example[n] for n in INPUTS), str(dest),
                          input_names=list(INPUTS), output_names=["start", "end"],
                          dynamic_axes=axes, opset_version=SETTINGS["opset"],
                          do_constant_folding=True, dynamo=False)
