"""Jobs, queues, priority classes and workers of the durable job queue (no I/O).

The queue follows Kueue's model, scaled down to one metadata store:

* a :class:`PriorityClass` is a named priority value (``low`` 100, ``normal`` 500,
  ``high`` 1000 are created at start-up);
* a :class:`Queue` has a resource quota (CPU threads, memory bytes, GPUs); a job is
  admitted only while the sum of the requests of the queue's running jobs plus its own
  fits the quota, and a higher-priority job may preempt lower-priority running jobs of
  its queue to make room;
* a :class:`Job` requests :class:`Resources`, runs in its own process on a worker, and
  moves through :class:`JobState`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

# Names of queues, priority classes and job kinds: used in URLs and on the command line.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
JOB_ID_RE = re.compile(r"^job-[0-9a-f]{20}$")
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
MAX_LABELS = 32
MAX_LABEL_VALUE = 256

DEFAULT_QUEUE = "default"
DEFAULT_PRIORITY_CLASS = "normal"
BUILTIN_PRIORITY_CLASSES: tuple[tuple[str, int, str], ...] = (
    ("low", 100, "Best-effort work; the first to be preempted."),
    ("normal", 500, "The default."),
    ("high", 1000, "Urgent work; preempts lower classes when its queue is full."),
)


class JobState(str, enum.Enum):
    QUEUED = "queued"  # waiting for admission (new, preempted, requeued after a lost worker, retried)
    RUNNING = "running"  # admitted, leased by a worker, its process running
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class StopRequest(str, enum.Enum):
    """What a running job is asked to do; the executor sees it through ``ctx.should_stop()``."""

    CANCEL = "cancel"  # stop for good; the job ends ``cancelled``
    PREEMPT = "preempt"  # checkpoint, stop; the job is requeued and later resumed


class JobReason(str, enum.Enum):
    """Why a job is in its state (the last transition)."""

    SUBMITTED = "submitted"
    ADMITTED = "admitted"
    PREEMPTED = "preempted"  # requeued to make room for a higher-priority job
    WORKER_LOST = "worker_lost"  # its worker stopped heartbeating (killed, crashed, cut off)
    WORKER_SHUTDOWN = "worker_shutdown"  # its worker stopped cleanly and handed the job back
    PROCESS_KILLED = "process_killed"  # the job's process died from a signal
    PROCESS_EXITED = "process_exited"  # the job's process exited without reporting a result
    RETRIED = "retried"
    COMPLETED = "completed"
    EXECUTOR_ERROR = "executor_error"  # the executor raised
    MEMORY_LIMIT = "memory_limit"  # the job's processes used more memory than it requested
    CANCELLED = "cancelled"
    STOP_TIMEOUT = "stop_timeout"  # asked to stop, did not within the grace period, killed
    UNKNOWN_KIND = "unknown_kind"  # no executor of this kind on the worker
    TOO_MANY_RESTARTS = "too_many_restarts"


@dataclass(frozen=True)
class Resources:
    """A request or a quota: CPU threads, memory in bytes, GPUs."""

    cpu: int = 1
    memory: int = 1 << 30
    gpus: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu + other.cpu, self.memory + other.memory, self.gpus + other.gpus)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu - other.cpu, self.memory - other.memory, self.gpus - other.gpus)

    def fits_in(self, room: Resources) -> bool:
        return self.cpu <= room.cpu and self.memory <= room.memory and self.gpus <= room.gpus

    def exceeding(self, limit: Resources) -> list[str]:
        """Names of the dimensions where ``self`` is larger than ``limit``."""
        return [n for n in ("cpu", "memory", "gpus") if getattr(self, n) > getattr(limit, n)]

    def as_dict(self) -> dict[str, int]:
        return {"cpu": self.cpu, "memory": self.memory, "gpus": self.gpus}

    @staticmethod
    def zero() -> Resources:
        return Resources(0, 0, 0)


@dataclass(frozen=True)
class PriorityClass:
    name: str
    value: int
    description: str = ""
    created_at: datetime | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "description": self.description,
            "created_at": _iso(self.created_at),
        }


class PreemptionPolicy(str, enum.Enum):
    """Whether a queue's jobs may preempt each other (Kueue's ``withinClusterQueue``)."""

    LOWER_PRIORITY = "lower_priority"  # a waiting job may preempt running jobs of lower priority
    NEVER = "never"


@dataclass(frozen=True)
class Queue:
    name: str
    quota: Resources
    preemption: PreemptionPolicy = PreemptionPolicy.LOWER_PRIORITY
    description: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: the project whose jobs the queue takes ("": every project's)
    project: str = ""

    def public_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "quota": self.quota.as_dict(),
            "preemption": self.preemption.value,
            "description": self.description,
            "project": self.project or None,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True)
class JobProgress:
    """The latest progress a job reported: ``done`` of ``total`` steps, a message, metrics."""

    done: float = 0
    total: float | None = None
    message: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))

    def public_dict(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "total": self.total,
            "fraction": self.fraction,
            "message": self.message,
            "metrics": self.metrics,
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True)
class Job:
    """One unit of work in the queue.

    ``attempt`` counts how often the job was started (admitted); it is the fencing token:
    a job's process may write progress, logs and its result only while the stored attempt
    is still its own, so a process that lost its lease can never overwrite a newer
    attempt. ``restarts`` counts requeues after lost workers or killed processes (capped by
    ``max_restarts``); preemptions are counted separately and never fail a job.
    """

    id: str
    kind: str
    spec: dict[str, Any]
    queue: str
    priority_class: str
    priority: int
    resources: Resources
    state: JobState = JobState.QUEUED
    reason: JobReason = JobReason.SUBMITTED
    message: str | None = None
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    attempt: int = 0
    restarts: int = 0
    max_restarts: int = 2
    preemptions: int = 0
    stop_request: StopRequest | None = None
    stop_requested_at: datetime | None = None
    preempted_by: str | None = None
    worker_id: str | None = None
    process_id: int | None = None  # pid of the process running the current attempt
    lease_expires_at: datetime | None = None
    gpu_ids: tuple[int, ...] = ()
    progress: JobProgress = field(default_factory=JobProgress)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    created_at: datetime | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    #: the project the job runs for (None when submitted: the store's scope)
    project: str | None = None

    def with_(self, **changes: Any) -> Job:
        return replace(self, **changes)

    def public_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "labels": self.labels,
            "state": self.state.value,
            "reason": self.reason.value,
            "message": self.message,
            "queue": self.queue,
            "priority_class": self.priority_class,
            "priority": self.priority,
            "resources": self.resources.as_dict(),
            "spec": self.spec,
            "attempt": self.attempt,
            "restarts": self.restarts,
            "max_restarts": self.max_restarts,
            "preemptions": self.preemptions,
            "stop_request": self.stop_request.value if self.stop_request else None,
            "preempted_by": self.preempted_by,
            "worker_id": self.worker_id,
            "process_id": self.process_id,
            "lease_expires_at": _iso(self.lease_expires_at),
            "gpu_ids": list(self.gpu_ids),
            "progress": self.progress.public_dict(),
            "result": self.result,
            "error": self.error,
            "idempotency_key": self.idempotency_key,
            "project": self.project,
            "created_at": _iso(self.created_at),
            "queued_at": _iso(self.queued_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True)
class JobLogLine:
    """One persisted log line; ``seq`` grows monotonically per store, so ``after=seq``
    tails a job's log without gaps. ``stream`` is ``log`` (the executor's ``ctx.log``),
    ``system`` (the queue's own notes: admitted, preempted, requeued...) or ``stderr``
    (the tail of a crashed process's output)."""

    seq: int
    job_id: str
    attempt: int
    stream: str
    line: str
    created_at: datetime | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "attempt": self.attempt,
            "stream": self.stream,
            "line": self.line,
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True)
class WorkerInfo:
    """A worker supervisor: where it runs, what it offers, when it last heartbeated."""

    id: str
    hostname: str
    pid: int
    capacity: Resources
    queues: tuple[str, ...] = ()  # empty: every queue
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    process_started: float | None = None  # the supervisor process's start time (pid reuse check)
    stopped_at: datetime | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "hostname": self.hostname,
            "pid": self.pid,
            "capacity": self.capacity.as_dict(),
            "queues": list(self.queues),
            "started_at": _iso(self.started_at),
            "heartbeat_at": _iso(self.heartbeat_at),
            "stopped_at": _iso(self.stopped_at),
        }


@dataclass(frozen=True)
class JobFilter:
    states: tuple[JobState, ...] = ()
    kind: str | None = None
    queue: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    worker_id: str | None = None
    limit: int = 100
    before: str | None = None  # a job id: only jobs created before it (paging, newest first)


def format_bytes(n: int) -> str:
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


def format_resources(r: Resources) -> str:
    return f"{r.cpu} CPU, {format_bytes(r.memory)}, {r.gpus} GPU"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# -- what the store and the scheduler exchange ------------------------------------------------
@dataclass(frozen=True)
class JobControl:
    """What a job's process needs to know between steps (read by ``ctx.should_stop()``)."""

    state: JobState
    attempt: int
    stop_request: StopRequest | None
    lease_expires_at: datetime | None


@dataclass(frozen=True)
class SchedulingSnapshot:
    """Everything one scheduling pass decides on, read in one transaction."""

    queues: dict[str, Queue]
    running: list[Job]  # every running job, on every worker
    queued: list[Job]  # queued jobs, highest priority first, then oldest first
    now: datetime


@dataclass(frozen=True)
class Admission:
    job: Job
    gpu_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Preemption:
    victim: Job
    preemptor: Job


@dataclass
class SchedulingPlan:
    admit: list[Admission] = field(default_factory=list)
    preempt: list[Preemption] = field(default_factory=list)


@dataclass
class ScheduleOutcome:
    """What a pass did: jobs this worker must start, victims asked to stop, jobs reaped."""

    admitted: list[Job] = field(default_factory=list)
    preempted: list[Preemption] = field(default_factory=list)
    requeued: list[Job] = field(default_factory=list)  # reaped: lost worker, back in the queue
    failed: list[Job] = field(default_factory=list)  # reaped: out of restarts
    cancelled: list[Job] = field(default_factory=list)  # reaped: cancel was pending


def new_job_id(now_ms: int, random_hex: str) -> str:
    """``job-`` + 12 hex digits of the creation time in ms + 8 random hex digits: ids sort
    by creation time, so ``ORDER BY id`` is submission order."""
    return f"job-{now_ms & 0xFFFFFFFFFFFF:012x}{random_hex[:8]}"
