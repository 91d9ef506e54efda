"""Tables of the job queue: priority classes, queues, jobs, job logs, workers (revision 0006)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from plinth.store.schema.base import Base, Scoped, project_column

# SQLite only auto-increments an INTEGER PRIMARY KEY; Postgres gets a BIGINT identity.
LogSeq = BigInteger().with_variant(Integer(), "sqlite")


class PriorityClassRow(Base):
    __tablename__ = "job_priority_classes"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class QueueRow(Base):
    __tablename__ = "job_queues"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    #: the project whose jobs this queue takes ("": every project's)
    project: Mapped[str] = mapped_column(String(63), default="")
    cpu: Mapped[int] = mapped_column(Integer)
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
    gpus: Mapped[int] = mapped_column(Integer)
    preemption: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class JobRow(Scoped, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state_priority_queued_at", "state", "priority", "queued_at"),
        Index("ix_jobs_worker_id", "worker_id"),
        Index("ix_jobs_queue", "queue"),
        UniqueConstraint("project", "idempotency_key"),
    )

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    project: Mapped[str] = project_column()
    kind: Mapped[str] = mapped_column(String(63))
    name: Mapped[str | None] = mapped_column(String(200))
    labels: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    queue: Mapped[str] = mapped_column(String(63), ForeignKey("job_queues.name", ondelete="RESTRICT"))
    priority_class: Mapped[str] = mapped_column(String(63))
    priority: Mapped[int] = mapped_column(Integer)
    cpu: Mapped[int] = mapped_column(Integer)
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
    gpus: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer)
    restarts: Mapped[int] = mapped_column(Integer)
    max_restarts: Mapped[int] = mapped_column(Integer)
    preemptions: Mapped[int] = mapped_column(Integer)
    stop_request: Mapped[str | None] = mapped_column(String(16))
    stop_requested_at: Mapped[datetime | None]
    preempted_by: Mapped[str | None] = mapped_column(String(24))
    worker_id: Mapped[str | None] = mapped_column(String(120))
    process_id: Mapped[int | None] = mapped_column(Integer)
    lease_expires_at: Mapped[datetime | None]
    gpu_ids: Mapped[list[int]] = mapped_column(JSON)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(71))
    created_at: Mapped[datetime]
    queued_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class JobLogRow(Scoped, Base):
    __tablename__ = "job_logs"
    __table_args__ = (Index("ix_job_logs_job_id_seq", "job_id", "seq"),)

    seq: Mapped[int] = mapped_column(LogSeq, primary_key=True, autoincrement=True)
    project: Mapped[str] = project_column()
    job_id: Mapped[str] = mapped_column(String(24), ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    stream: Mapped[str] = mapped_column(String(16))
    line: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class WorkerRow(Base):
    __tablename__ = "job_workers"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    process_started: Mapped[float | None] = mapped_column(Float)
    cpu: Mapped[int] = mapped_column(Integer)
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
    gpus: Mapped[int] = mapped_column(Integer)
    queues: Mapped[list[str]] = mapped_column(JSON)
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]
