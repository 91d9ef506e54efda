"""Tables of the deployments area: deployments, revisions, history, usage records, feedback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKeyConstraint, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plinth.store.schema.base import Base, Scoped, project_column

_ID = BigInteger().with_variant(Integer(), "sqlite")


class DeploymentRow(Scoped, Base):
    """One deployment (:class:`plinth.domain.deployments.Deployment`); ``generation`` is the
    compare-and-set counter every change bumps."""

    __tablename__ = "deployments"

    project: Mapped[str] = project_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    stable_revision: Mapped[int] = mapped_column(Integer)
    canary_revision: Mapped[int | None] = mapped_column(Integer)
    canary_percent: Mapped[float] = mapped_column(Float)
    canary_started_at: Mapped[datetime | None]
    rules: Mapped[list[Any]] = mapped_column(JSON)
    gate: Mapped[list[Any]] = mapped_column(JSON)
    window_s: Mapped[int] = mapped_column(Integer)
    auto_rollback: Mapped[bool] = mapped_column(Boolean)
    generation: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DeploymentRevisionRow(Scoped, Base):
    """One immutable revision: its targets as JSON (model as given, pinned id, weight,
    attachments, generation defaults)."""

    __tablename__ = "deployment_revisions"
    __table_args__ = (ForeignKeyConstraint(["project", "deployment"], ["deployments.project", "deployments.name"], ondelete="CASCADE"),)

    project: Mapped[str] = project_column(primary_key=True)
    deployment: Mapped[str] = mapped_column(String(128), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    targets: Mapped[list[Any]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class DeploymentEventRow(Scoped, Base):
    """The history of a deployment: created, canary, traffic, promoted, rolled back (by hand or
    automatically, with the reason), gate refusals, rule changes."""

    __tablename__ = "deployment_events"
    __table_args__ = (
        Index("ix_deployment_events_deployment_id", "deployment", "id"),
        ForeignKeyConstraint(["project", "deployment"], ["deployments.project", "deployments.name"], ondelete="CASCADE"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    project: Mapped[str] = project_column()
    deployment: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    revision: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]]


class UsageRow(Scoped, Base):
    """One /v1 chat or text completion request: who, which deployment revision and model
    version answered, tokens, latency, outcome. No foreign keys: usage outlives keys and
    deployments."""

    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_records_at", "at"),
        Index("ix_usage_records_response_id", "response_id"),
        Index("ix_usage_records_deployment_at", "deployment", "at"),
        Index("ix_usage_records_key_id_at", "key_id", "at"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    project: Mapped[str] = project_column()
    at: Mapped[datetime]
    response_id: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(8))
    model: Mapped[str] = mapped_column(String(300))
    served_model: Mapped[str] = mapped_column(String(300))
    model_version: Mapped[str | None] = mapped_column(String(300))
    deployment: Mapped[str | None] = mapped_column(String(128))
    revision: Mapped[int | None] = mapped_column(Integer)
    role: Mapped[str | None] = mapped_column(String(8))
    key_id: Mapped[str | None] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    latency_s: Mapped[float] = mapped_column(Float)
    blocked: Mapped[bool] = mapped_column(Boolean)


class FeedbackRow(Scoped, Base):
    """A rating of one response, with the deployment revision and model version that answered."""

    __tablename__ = "feedback"
    __table_args__ = (
        Index("ix_feedback_response_id", "response_id"),
        Index("ix_feedback_deployment_at", "deployment", "at"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    project: Mapped[str] = project_column()
    at: Mapped[datetime]
    response_id: Mapped[str] = mapped_column(String(80))
    rating: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str | None] = mapped_column(String(16))
    deployment: Mapped[str | None] = mapped_column(String(128))
    revision: Mapped[int | None] = mapped_column(Integer)
    model_version: Mapped[str | None] = mapped_column(String(300))
    served_model: Mapped[str | None] = mapped_column(String(300))
