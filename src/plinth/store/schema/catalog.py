"""Tables of the model catalog: models and their LoRA adapters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from plinth.store.schema.base import Base, Scoped, project_column


class ModelRow(Scoped, Base):
    """One model of the catalog (:class:`plinth.domain.ModelRecord`); built-in models are
    shared (project ``""``)."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("project", "name"),)
    __shareable__ = True

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4().hex
    project: Mapped[str] = project_column()
    name: Mapped[str] = mapped_column(String(128))
    format: Mapped[str] = mapped_column(String(32))
    runtime: Mapped[str] = mapped_column(String(32))
    digest: Mapped[str | None] = mapped_column(String(80), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    architecture: Mapped[str | None] = mapped_column(String(128))
    context_length: Mapped[int | None] = mapped_column(Integer)
    chat_template: Mapped[str | None] = mapped_column(Text)
    license: Mapped[str | None] = mapped_column(String())  # unbounded: GGUF files may carry long ones
    source: Mapped[str | None] = mapped_column(Text)
    builtin: Mapped[bool]
    parameters: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class AdapterRow(Scoped, Base):
    """One LoRA adapter of a base model (:class:`plinth.domain.AdapterRecord`).

    ``base_model`` names a model the adapter's project sees (its own or a shared one), so it
    has no foreign key (a key cannot point into two projects); the catalog deletes a model's
    adapters in the transaction that deletes the model. The unique constraint on ``(project,
    base_model, name)`` also serves as the index adapters are looked up by.
    """

    __tablename__ = "adapters"
    __table_args__ = (UniqueConstraint("project", "base_model", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4().hex
    project: Mapped[str] = project_column()
    base_model: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    format: Mapped[str] = mapped_column(String(32))
    digest: Mapped[str] = mapped_column(String(80), index=True)
    gguf_digest: Mapped[str | None] = mapped_column(String(80))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    rank: Mapped[int | None] = mapped_column(Integer)
    alpha: Mapped[float | None] = mapped_column(Float)
    target_modules: Mapped[list[str]] = mapped_column(JSON)
    source: Mapped[str | None] = mapped_column(Text)
    parameters: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
