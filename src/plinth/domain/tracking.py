"""Experiment tracking and the model registry (no I/O).

A **run** is one piece of tracked work — a fine-tuning job, an evaluation, an export —
with its parameters, per-step metrics, system metrics, artifacts and final metrics. A
**registered model** is a name (``acme-faq``) with numbered **versions**; each version
records exactly what produced it (its lineage): the base model and its digest, the dataset
version, the run, the recipe configuration, the metrics, the artifact's digest, and the
evaluation reports made of it. **Aliases** (``production``, ``staging``) point at versions.

Served model ids of the registry: ``acme-faq@3`` (a version), ``acme-faq@production`` (an
alias) and ``acme-faq`` (the ``production`` alias when set, else the latest version).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

REGISTRY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
METRIC_KEY_RE = re.compile(r"^[A-Za-z0-9_./-]{1,128}$")


class RunStatus(str, enum.Enum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PREEMPTED = "preempted"  # stopped to make room; resumes as the same run


class ArtifactKind(str, enum.Enum):
    ADAPTER = "adapter"  # a PEFT directory (LoRA or prompt tuning)
    MODEL = "model"  # a full model directory (safetensors)
    GGUF = "gguf"  # an exported GGUF (model or LoRA)
    CHECKPOINT = "checkpoint"
    REPORT = "report"
    PLOT = "plot"
    FILE = "file"


@dataclass(frozen=True)
class Run:
    id: str
    name: str
    kind: str  # "lora", "full", "prompt_tuning", "eval", "export"...
    status: RunStatus
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    job_id: str | None = None
    base_model: str | None = None
    dataset: str | None = None  # name@version
    summary: dict[str, Any] = field(default_factory=dict)  # final metrics
    error: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "status": self.status.value,
            "params": self.params,
            "tags": self.tags,
            "job_id": self.job_id,
            "base_model": self.base_model,
            "dataset": self.dataset,
            "summary": self.summary,
            "error": self.error,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "duration_s": (self.ended_at - self.started_at).total_seconds() if self.started_at and self.ended_at else None,
        }


@dataclass(frozen=True)
class MetricPoint:
    key: str
    step: int
    value: float
    at: datetime | None = None


@dataclass(frozen=True)
class RunArtifact:
    run_id: str
    name: str
    kind: ArtifactKind
    digest: str
    size_bytes: int
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "digest": self.digest,
            "size_bytes": self.size_bytes,
            "meta": self.meta,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str = ""
    latest_version: int = 0
    aliases: dict[str, int] = field(default_factory=dict)
    created_at: datetime | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "latest_version": self.latest_version,
            "aliases": self.aliases,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


@dataclass(frozen=True)
class ModelVersion:
    """One registered version and its lineage.

    ``kind`` is ``adapter`` (served as ``base:adapter_name``) or ``model`` (a full model,
    served as the catalog model ``served_as``). ``served_as`` is the catalog id that serves
    it. ``base_digest`` is the base model's sha256, ``artifact_digest`` the adapter's or
    model's. ``recipe`` is the training configuration as run; ``metrics`` the run's final
    metrics; ``evaluations`` the ids of evaluation reports made of this version.
    """

    name: str
    version: int
    kind: str  # "adapter" | "model"
    base_model: str
    base_digest: str | None
    served_as: str
    artifact_digest: str
    run_id: str | None = None
    dataset: str | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    model_card: str = ""
    created_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def public_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "kind": self.kind,
            "base_model": self.base_model,
            "base_digest": self.base_digest,
            "served_as": self.served_as,
            "artifact_digest": self.artifact_digest,
            "run_id": self.run_id,
            "dataset": self.dataset,
            "recipe": self.recipe,
            "metrics": self.metrics,
            "description": self.description,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


@dataclass(frozen=True)
class EvalReport:
    """An evaluation of a served model id on a dataset version (stored on the registry
    version when the model id is one)."""

    id: str
    model: str  # the model id evaluated (served id)
    dataset: str  # name@version
    split: str
    metrics: dict[str, Any]
    registry_name: str | None = None
    registry_version: int | None = None
    run_id: str | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)  # a few predictions, for people to read
    created_at: datetime | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "dataset": self.dataset,
            "split": self.split,
            "metrics": self.metrics,
            "registry": f"{self.registry_name}@{self.registry_version}" if self.registry_name else None,
            "run_id": self.run_id,
            "samples": self.samples,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }
