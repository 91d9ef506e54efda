"""Versioned datasets (no I/O).

A dataset is a name with immutable versions ``name@1``, ``name@2``... Each version holds
rows in one of two forms, validated and normalised:

* ``chat``: ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}``
  ending with the assistant's message (what is trained); an assistant message may carry
  ``"weight": 0`` to be shown but not trained on;
* ``prompt_completion``: ``{"prompt": str, "completion": str}``.

A row may also carry ``"split": "train" | "validation"`` (kept), ``"id"`` and
``"metadata"`` (kept). The rows, their train/validation split and the source file are
content-addressed blobs in the artifact store.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DATASET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ROLES = ("system", "user", "assistant")
SPLITS = ("train", "validation")


class DatasetFormat(str, enum.Enum):
    CHAT = "chat"
    PROMPT_COMPLETION = "prompt_completion"


class SourceFormat(str, enum.Enum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


@dataclass(frozen=True)
class DatasetRef:
    """``name`` (the latest version) or ``name@version``."""

    name: str
    version: int | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Dataset:
    name: str
    latest_version: int
    description: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "latest_version": self.latest_version,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable version: where its rows and split are, how big it is, what it came from.

    ``digest`` addresses the canonical rows (JSONL, one normalised row per line);
    ``split_digest`` the split (the indices of the validation rows) — together they are the
    version's identity: adding the same rows with the same split again changes nothing.
    ``split`` records how the split was made (``validation_fraction``, ``seed``).
    """

    dataset: str
    version: int
    format: DatasetFormat
    digest: str
    split_digest: str
    rows: int
    train_rows: int
    validation_rows: int
    source_format: SourceFormat
    split: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    source_digest: str | None = None
    source_name: str | None = None
    note: str | None = None
    created_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"

    def public_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "version": self.version,
            "ref": self.ref,
            "format": self.format.value,
            "rows": self.rows,
            "train_rows": self.train_rows,
            "validation_rows": self.validation_rows,
            "split": self.split,
            "digest": self.digest,
            "split_digest": self.split_digest,
            "source": {"name": self.source_name, "format": self.source_format.value, "digest": self.source_digest},
            "stats": self.stats,
            "note": self.note,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


@dataclass(frozen=True)
class DatasetProblem:
    """One validation problem: where (``line`` of a JSONL/CSV file, ``row`` of Parquet) and what."""

    message: str
    line: int | None = None
    row: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else f"row {self.row}" if self.row is not None else "file"
        return f"{where}: {self.message}"

    def public_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.line is not None:
            out["line"] = self.line
        if self.row is not None:
            out["row"] = self.row
        return out


@dataclass(frozen=True)
class DatasetDiff:
    """What changed from one version to another. Rows are matched by content; a removed and
    an added row with the same prompt (everything before the last assistant message, or the
    ``prompt``) count as one changed row."""

    before: str
    after: str
    added: int
    removed: int
    changed: int
    unchanged: int
    moved_split: int  # rows in both whose train/validation assignment differs
    samples: dict[str, list[Any]] = field(default_factory=dict)

    def public_dict(self) -> dict[str, Any]:
        return {
            "from": self.before,
            "to": self.after,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "moved_split": self.moved_split,
            "samples": self.samples,
        }
