"""Tables of the model catalog: models and their LoRA adapters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from plinth.store.schema.base import Base


class ModelRow(Base):
    """One model of the catalog (:class:`plinth.domain.ModelRecord`)."""

    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4().hex
    name: Mapped[str] = mapped_column(String(128), unique=True)
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


class AdapterRow(Base):
    """One LoRA adapter of a base model (:class:`plinth.domain.AdapterRecord`).

    ``base_model`` references ``models.name`` with ``ON DELETE CASCADE``: deleting a model
    deletes its adapters in the same statement (SQLite enforces it because every connection
    sets ``PRAGMA foreign_keys=ON``). The unique constraint on ``(base_model, name)`` also
    serves as the index the cascade looks adapters up by.
    """

    __tablename__ = "adapters"
    __table_args__ = (UniqueConstraint("base_model", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4().hex
    base_model: Mapped[str] = mapped_column(String(128), ForeignKey("models.name", ondelete="CASCADE"))
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
