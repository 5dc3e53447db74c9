"""What built an index: backend, model, weights checksum, dimension, chunking, schema version.

Vectors from one model mean nothing to another, and chunks cut one way do not match a
re-ingest cut another way, so an index is only ever opened with what built it. The embedded
backend keeps the manifest in ``manifest.json``; a database keeps it in a table.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

TITLE_AND_TEXT = "title + text"
TEXT_ONLY = "text"
EMBEDDED = "sqlite+faiss"  # what indexes from before the backend was recorded used


class IndexMismatch(RuntimeError):
    """The index was built with another backend, model, chunking or schema."""


@dataclass(frozen=True)
class Manifest:
    model: str
    model_sha256: str | None
    dimension: int
    chunking: dict
    schema_version: int
    passage_format: str = TITLE_AND_TEXT
    backend: str = EMBEDDED

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        try:
            fields = json.loads(text)
            fields.pop("analysis", None)  # schema v2/v3: the old reader's spaCy pass
            return cls(**fields)
        except (json.JSONDecodeError, TypeError) as exc:
            raise IndexMismatch(
                f"{where} is not an ArticleQA manifest ({exc}); point --index elsewhere "
                "or delete it to start afresh") from exc

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
        if (self.model, self.model_sha256) != (wanted.model, wanted.model_sha256):
            raise IndexMismatch(
                f"{where} was built with model {self.model!r} (sha256 {self.model_sha256}), "
                f"not {wanted.model!r} (sha256 {wanted.model_sha256}). Open it with "
                f"--model {self.model!r}, or {rebuild}.")
        if (self.chunking, self.passage_format) != (wanted.chunking, wanted.passage_format):
            raise IndexMismatch(
                f"{where} was chunked with {self.chunking}, passages {self.passage_format!r}; "
                f"not {wanted.chunking}, {wanted.passage_format!r}: open it without index "
                f"options, or {rebuild}.")
