"""The SQL schema, as SQLAlchemy 2 declarative tables.

These classes describe the tables; they never leave :mod:`plinth.store` (the store returns
domain objects). The tables themselves are created by the Alembic migrations under
``migrations/versions``, never by ``create_all``; ``tests/unit/store/test_migrations.py``
checks that the migrations and these classes agree.

Every constraint and index gets its name from :data:`NAMING_CONVENTION`, so the names are
the same on SQLite and Postgres and a later migration can refer to them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    Postgres stores ``timestamp with time zone``; SQLite has no time zones, so the value is
    stored as UTC without an offset and UTC is attached again when it is read. Values bound
    must be aware (a naive datetime is taken to be UTC already).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
    }


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
