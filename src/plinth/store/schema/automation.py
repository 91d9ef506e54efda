"""The automation tables (issue 15, revision 0014): pipelines (one row per version), their runs
and the steps of each run, triggers and trigger events. Every table is project-scoped (ADR 0083).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKeyConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plinth.store.schema.base import Base, Scoped, project_column

#: BIGINT on Postgres, INTEGER (the rowid alias, autoincrementing) on SQLite
_ID = BigInteger().with_variant(Integer(), "sqlite")


class PipelineRow(Scoped, Base):
    """One version of a pipeline's spec."""

    __tablename__ = "pipelines"

    project: Mapped[str] = project_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(80))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class PipelineRunRow(Scoped, Base):
    """A run of one pipeline version; ``owner``/``lease_until``: the runner driving it."""

    __tablename__ = "pipeline_runs"
    __table_args__ = (
        Index("ix_pipeline_runs_state", "state"),
        Index("ix_pipeline_runs_pipeline_created_at", "pipeline", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = project_column()
    pipeline: Mapped[str] = mapped_column(String(63))
    version: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    trigger: Mapped[dict[str, Any]] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class PipelineStepRow(Scoped, Base):
    """One step of one run: its state, job, inputs digest (the cache key) and outputs."""

    __tablename__ = "pipeline_steps"
    __table_args__ = (
        ForeignKeyConstraint(["run_id"], ["pipeline_runs.id"], ondelete="CASCADE"),
        Index("ix_pipeline_steps_inputs_digest", "inputs_digest"),
    )

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    project: Mapped[str] = project_column()
    position: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str | None] = mapped_column(String(64))
    inputs_digest: Mapped[str | None] = mapped_column(String(80))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text)
    cached_from: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    next_try_at: Mapped[datetime | None]


class TriggerRow(Scoped, Base):
    __tablename__ = "triggers"

    project: Mapped[str] = project_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(32))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    cooldown_s: Mapped[float] = mapped_column(Float)
    enabled: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class TriggerEventRow(Scoped, Base):
    """Why a trigger fired or did not."""

    __tablename__ = "trigger_events"
    __table_args__ = (
        Index("ix_trigger_events_trigger_id", "trigger", "id"),
        ForeignKeyConstraint(["project", "trigger"], ["triggers.project", "triggers.name"], ondelete="CASCADE"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    project: Mapped[str] = project_column()
    trigger: Mapped[str] = mapped_column(String(63))
    at: Mapped[datetime]
    fired: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(String(300))
    run_id: Mapped[str | None] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
