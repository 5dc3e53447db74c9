"""What built an index: backend, model, weights checksum, encoder backend, dimension, chunking,
schema version.

Vectors from one model mean nothing to another, and chunks cut one way do not match a
re-ingest cut another way, so an index is only ever opened with what built it. The embedded
backend keeps the manifest in ``manifest.json``; a database keeps it in a table.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields

from embeddings.encoder import BACKENDS
from qa.chunking import ChunkSettings

TITLE_AND_TEXT = "title + text"
TEXT_ONLY = "text"
EMBEDDED = "sqlite+faiss"  # what indexes from before the backend was recorded used
TORCH = "torch"  # what indexes from before the encoder backend was recorded used
# What to do about a damaged index: its files cannot be re-derived from each other.
RESTORE = ("restore it from a backup, or index the sources again into a new index "
           "(--index NEWDIR or another database)")
_CHUNKING_KEYS = frozenset(f.name for f in fields(ChunkSettings))


class IndexMismatch(RuntimeError):
    """The index was built with another backend, model, chunking or schema, or its files are
    damaged or missing; the message (one line) says which file and what to do."""


@dataclass(frozen=True)
class Manifest:
    model: str
    model_sha256: str | None
    dimension: int
    chunking: dict
    schema_version: int
    passage_format: str = TITLE_AND_TEXT
    backend: str = EMBEDDED
    encoder_backend: str = TORCH

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str, advice: str = RESTORE) -> Manifest:
        """The manifest in ``text``, or `IndexMismatch` naming ``where``, what is wrong with
        it and ``advice`` (what to do)."""
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IndexMismatch(f"{where} is not an ArticleQA manifest (not JSON: {exc}); "
                                f"{advice}") from exc
        problem = _problem(values)
        if problem:
            raise IndexMismatch(f"{where} is not an ArticleQA manifest ({problem}); {advice}")
        values.pop("analysis", None)  # schema v2/v3: the old reader's spaCy pass
        return cls(**values)

    def check(self, wanted: Manifest, where: str, upgradable: tuple[int, ...] = ()) -> None:
        """Refuse to open with anything but what built the index, saying what to do instead."""
        rebuild = (f"build a new index elsewhere (--index NEWDIR or another database) or delete "
                   f"{where} and index the articles again")
        if self.backend != wanted.backend:
            raise IndexMismatch(
                f"{where} holds a {self.backend} index, not {wanted.backend}; open it with the "
                f"ArticleQA it was made for, or {rebuild}.")
        if self.schema_version != wanted.schema_version and self.schema_version not in upgradable:
            raise IndexMismatch(
                f"{where} has index schema v{self.schema_version}; this ArticleQA reads "
                f"v{wanted.schema_version}. {rebuild[0].upper() + rebuild[1:]}.")
        if self.model == wanted.model and self.model_sha256 != wanted.model_sha256:
            raise IndexMismatch(
                f"{where} was built with {self.model!r} weights of sha256 {self.model_sha256}, "
                f"but the {wanted.model!r} on this machine has sha256 {wanted.model_sha256}: "
                "the model files changed (another version of its package, or edited files), "
                "so old and new vectors would not compare. Reinstall the version that built "
                f"the index, or {rebuild}.")
        if self.model != wanted.model:
            raise IndexMismatch(
                f"{where} was built with model {self.model!r} (sha256 {self.model_sha256}), "
                f"not {wanted.model!r} (sha256 {wanted.model_sha256}). Open it with "
                f"--model {self.model!r}, or {rebuild}.")
        if self.encoder_backend != wanted.encoder_backend:
            raise IndexMismatch(
                f"{where} was embedded by the {self.encoder_backend} encoder backend, not "
                f"{wanted.encoder_backend}, whose vectors differ slightly and must not be mixed "
                f"with them: open it with --encoder-backend {self.encoder_backend} (or without "
                f"the option), or {rebuild}.")
        if (self.chunking, self.passage_format) != (wanted.chunking, wanted.passage_format):
            raise IndexMismatch(
                f"{where} was chunked with {self.chunking}, passages {self.passage_format!r}; "
                f"not {wanted.chunking}, {wanted.passage_format!r}: open it without index "
                f"options, or {rebuild}.")


def _problem(values: object) -> str | None:
    """What makes these JSON values no manifest (a hand edit, another program's file)."""
    if not isinstance(values, dict):
        kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
            type(values), "number")
        return f"a JSON {kind}, not an object"
    names = {f.name for f in fields(Manifest)}
    required = {f.name for f in fields(Manifest) if f.default is MISSING}
    if missing := sorted(required - values.keys()):
        return f"no {', '.join(missing)}"
    if unknown := sorted(values.keys() - names - {"analysis"}):
        return f"unknown fields {', '.join(unknown)}"

    def counts(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    chunking = values["chunking"]
    checks = {
        "model": isinstance(values["model"], str),
        "model_sha256": values["model_sha256"] is None or isinstance(values["model_sha256"], str),
        "dimension": counts(values["dimension"]) and values["dimension"] > 0,
        "schema_version": counts(values["schema_version"]),
        "chunking": isinstance(chunking, dict) and chunking.keys() <= _CHUNKING_KEYS
        and all(v is None or counts(v) for v in chunking.values()),
        "passage_format": values.get("passage_format", TITLE_AND_TEXT) in (TITLE_AND_TEXT,
                                                                           TEXT_ONLY),
        "backend": isinstance(values.get("backend", EMBEDDED), str),
        "encoder_backend": values.get("encoder_backend", TORCH) in BACKENDS,
    }
    bad = [name for name, ok in checks.items() if not ok]
    return f"invalid {', '.join(f'{name} {values.get(name)!r}' for name in bad)}" if bad else None
