"""Tables of experiment tracking (runs, metrics, artifacts) and the model registry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, ForeignKeyConstraint, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from plinth.store.schema.base import Base, Scoped, project_column


class RunRow(Scoped, Base):
    """One tracked run (:class:`plinth.domain.tracking.Run`)."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = project_column()
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True)
    params: Mapped[dict[str, Any]]
    tags: Mapped[dict[str, Any]]
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    base_model: Mapped[str | None] = mapped_column(String(300))
    dataset: Mapped[str | None] = mapped_column(String(200))
    summary: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class RunMetricRow(Scoped, Base):
    """One value of one metric at one step of a run. A step logged again (a run resumed
    from an earlier checkpoint) replaces the value."""

    __tablename__ = "run_metrics"
    __table_args__ = (UniqueConstraint("run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True)
    project: Mapped[str] = project_column()
    run_id: Mapped[str] = mapped_column(String(32), ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime]


class RunArtifactRow(Scoped, Base):
    __tablename__ = "run_artifacts"
    __table_args__ = (UniqueConstraint("run_id", "name"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True)
    project: Mapped[str] = project_column()
    run_id: Mapped[str] = mapped_column(String(32), ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    digest: Mapped[str] = mapped_column(String(80), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    meta: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class RegisteredModelRow(Scoped, Base):
    __tablename__ = "registered_models"

    project: Mapped[str] = project_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class ModelVersionRow(Scoped, Base):
    """One version of a registered model with its lineage (:class:`ModelVersion`)."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("project", "name", "version"),
        ForeignKeyConstraint(["project", "name"], ["registered_models.project", "registered_models.name"], ondelete="CASCADE"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = project_column()
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    base_model: Mapped[str] = mapped_column(String(128))
    base_digest: Mapped[str | None] = mapped_column(String(80))
    served_as: Mapped[str] = mapped_column(String(300))
    artifact_digest: Mapped[str] = mapped_column(String(80), index=True)
    run_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("runs.id", ondelete="SET NULL"), index=True)
    dataset: Mapped[str | None] = mapped_column(String(200))
    recipe: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    description: Mapped[str] = mapped_column(Text)
    model_card: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class ModelAliasRow(Scoped, Base):
    __tablename__ = "model_aliases"
    __table_args__ = (
        ForeignKeyConstraint(["project", "name"], ["registered_models.project", "registered_models.name"], ondelete="CASCADE"),
    )

    project: Mapped[str] = project_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class EvalReportRow(Scoped, Base):
    __tablename__ = "eval_reports"
    __table_args__ = (Index("ix_eval_reports_registry", "registry_name", "registry_version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = project_column()
    model: Mapped[str] = mapped_column(String(300))
    dataset: Mapped[str] = mapped_column(String(200))
    split: Mapped[str] = mapped_column(String(16))
    metrics: Mapped[dict[str, Any]]
    registry_name: Mapped[str | None] = mapped_column(String(128))
    registry_version: Mapped[int | None] = mapped_column(Integer)
    run_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("runs.id", ondelete="SET NULL"))
    samples: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
