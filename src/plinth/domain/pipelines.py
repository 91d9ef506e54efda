"""Pipelines, their runs and steps, triggers and trigger events (automation, issue 15).

A pipeline is a named, versioned DAG of steps (its ``spec``: see
:mod:`plinth.automation.pipelines`); applying a changed spec adds a version. A run executes
one version with parameters; each step's state, job, inputs digest and outputs are stored, so
a new server process resumes unfinished runs. A trigger starts runs of a pipeline (schedule,
new data, an alert, manual); each decision is a trigger event.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: pipeline, step and trigger names
PIPELINE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
STEP_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RUN_ID_RE = re.compile(r"^run-[0-9a-f]{20}$")


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


class RunState(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


class StepState(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CACHED = "cached"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self not in (StepState.PENDING, StepState.RUNNING)

    @property
    def done_ok(self) -> bool:
        """Later steps may use its outputs."""
        return self in (StepState.SUCCEEDED, StepState.CACHED)


class TriggerKind(str, enum.Enum):
    SCHEDULE = "schedule"
    DATASET = "dataset"
    KNOWLEDGE_BASE = "knowledge_base"
    ALERT = "alert"
    MANUAL = "manual"


@dataclass(frozen=True)
class Pipeline:
    name: str
    version: int
    spec: dict[str, Any]
    digest: str
    description: str = ""
    project: str = ""
    created_at: datetime | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "digest": self.digest,
            "spec": self.spec,
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True)
class PipelineStep:
    """One step of one run."""

    run_id: str
    name: str
    position: int
    state: StepState = StepState.PENDING
    attempt: int = 0
    job_id: str | None = None
    inputs_digest: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    cached_from: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_try_at: datetime | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "attempt": self.attempt,
            "job_id": self.job_id,
            "inputs_digest": self.inputs_digest,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "message": self.message,
            "cached_from": self.cached_from,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "next_try_at": _iso(self.next_try_at),
        }


@dataclass(frozen=True)
class PipelineRun:
    id: str
    pipeline: str
    version: int
    params: dict[str, Any]
    state: RunState = RunState.PENDING
    reason: str = ""
    trigger: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    project: str = ""
    owner: str | None = None
    lease_until: datetime | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "version": self.version,
            "params": self.params,
            "state": self.state.value,
            "reason": self.reason,
            "trigger": self.trigger,
            "message": self.message,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
        }


@dataclass(frozen=True)
class Trigger:
    name: str
    pipeline: str
    kind: TriggerKind
    spec: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    cooldown_s: float = 0.0
    enabled: bool = True
    #: what the trigger last saw and did: last_fired_at (ISO), last_key, seen (new data), checked_at (schedule)
    state: dict[str, Any] = field(default_factory=dict)
    project: str = ""
    created_at: datetime | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pipeline": self.pipeline,
            "kind": self.kind.value,
            "spec": self.spec,
            "params": self.params,
            "cooldown_s": self.cooldown_s,
            "enabled": self.enabled,
            "state": self.state,
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True)
class TriggerEvent:
    """Why a trigger fired, or did not (``cooldown``, ``duplicate``, ``condition false``)."""

    trigger: str
    at: datetime
    fired: bool
    reason: str
    key: str = ""
    run_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "trigger": self.trigger,
            "at": _iso(self.at),
            "fired": self.fired,
            "reason": self.reason,
            "key": self.key,
            "run_id": self.run_id,
            "details": self.details,
        }
