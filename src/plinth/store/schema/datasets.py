"""Tables of versioned datasets (revision 0006).

A version's rows live in the artifact store as one canonical JSONL blob (``digest``); its
train/validation split as a second blob (``split_digest``); the file it came from as a
third (``source_digest``). Versions are immutable; each change adds one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKeyConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plinth.store.schema.base import Base, Scoped, project_column


class DatasetRow(Scoped, Base):
    __tablename__ = "datasets"

    project: Mapped[str] = project_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    latest_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DatasetVersionRow(Scoped, Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (
        Index("ix_dataset_versions_digest", "digest"),
        ForeignKeyConstraint(["project", "dataset"], ["datasets.project", "datasets.name"], ondelete="CASCADE"),
    )

    project: Mapped[str] = project_column(primary_key=True)
    dataset: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    format: Mapped[str] = mapped_column(String(32))
    digest: Mapped[str] = mapped_column(String(71))
    split_digest: Mapped[str] = mapped_column(String(71))
    source_digest: Mapped[str | None] = mapped_column(String(71))
    source_name: Mapped[str | None] = mapped_column(String(512))
    source_format: Mapped[str] = mapped_column(String(16))
    rows: Mapped[int] = mapped_column(Integer)
    train_rows: Mapped[int] = mapped_column(Integer)
    validation_rows: Mapped[int] = mapped_column(Integer)
    split: Mapped[dict[str, Any]] = mapped_column()
    stats: Mapped[dict[str, Any]] = mapped_column()
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
