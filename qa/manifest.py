"""What built an index folder: model, weights checksum, dimension, chunking, schema version.

Vectors from one model mean nothing to another, and chunks cut one way do not match a
re-ingest cut another way, so an index is only ever opened with what built it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from qa.store import SCHEMA_VERSION, UPGRADABLE

MANIFEST_FILE = "manifest.json"
TITLE_AND_TEXT = "title + text"
TEXT_ONLY = "text"


class IndexMismatch(RuntimeError):
    """The index folder was built with another model, chunking or schema."""


@dataclass(frozen=True)
class Manifest:
    model: str
    model_sha256: str | None
    dimension: int
    chunking: dict
    passage_format: str = TITLE_AND_TEXT
    schema_version: int = SCHEMA_VERSION

    def write(self, folder: Path) -> None:
        tmp = folder / (MANIFEST_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, folder / MANIFEST_FILE)

    @classmethod
    def read(cls, folder: Path) -> Manifest | None:
        path = folder / MANIFEST_FILE
        if not path.exists():
            return None
        try:
            fields = json.loads(path.read_text())
            fields.pop("analysis", None)  # schema v2/v3: the old reader's spaCy pass
            return cls(**fields)
        except (json.JSONDecodeError, TypeError) as exc:
            raise IndexMismatch(
                f"{path} is not an ArticleQA manifest ({exc}); point --index at another "
                "folder or delete this one to start afresh"
            ) from exc

    def check(self, wanted: Manifest, folder: Path) -> None:
        """Refuse to open with anything but what built the index, saying what to do instead."""
        rebuild = (f"build a new index in another folder (--index NEWDIR) or delete {folder} "
                   "and index the articles again")
        if self.schema_version != wanted.schema_version and self.schema_version not in UPGRADABLE:
            raise IndexMismatch(
                f"{folder} has index schema v{self.schema_version}; this ArticleQA reads "
                f"v{wanted.schema_version}. {rebuild[0].upper() + rebuild[1:]}."
            )
        if (self.model, self.model_sha256) != (wanted.model, wanted.model_sha256):
            raise IndexMismatch(
                f"{folder} was built with model {self.model!r} (sha256 {self.model_sha256}), "
                f"not {wanted.model!r} (sha256 {wanted.model_sha256}). Open it with "
                f"--model {self.model!r}, or {rebuild}."
            )
        if (self.chunking, self.passage_format) != (wanted.chunking, wanted.passage_format):
            raise IndexMismatch(
                f"{folder} was chunked with {self.chunking}, passages {self.passage_format!r}; "
                f"not {wanted.chunking}, {wanted.passage_format!r}: open it without index "
                f"options, or {rebuild}."
            )
