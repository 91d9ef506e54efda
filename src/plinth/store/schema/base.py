"""The SQL schema's shared base: the declarative ``Base``, naming convention and types.

Every constraint and index gets its name from :data:`NAMING_CONVENTION`, so the names are
the same on SQLite and Postgres and a later migration can refer to them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Dialect, MetaData, String
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


#: the width of a project name (see plinth.domain.projects.PROJECT_NAME_RE)
PROJECT_LEN = 63


class Scoped:
    """A table whose rows belong to a project: every ORM query on it is filtered by the
    scope of the call (see :mod:`plinth.store.sql.scoping`). Each class declares its own
    ``project`` column (part of the primary key where names are the key)."""

    #: whether rows may be shared with every project (project ``""``)
    __shareable__: ClassVar[bool] = False
    #: every subclass declares its own (see :func:`project_column`); this one lets the store's
    #: query criteria name ``Scoped.project`` (SQLAlchemy analyses them on the mixin too)
    project: Mapped[str] = mapped_column(String(PROJECT_LEN), index=True)


def project_column(*, primary_key: bool = False) -> Mapped[str]:
    """The ``project`` column of a :class:`Scoped` table."""
    if primary_key:
        return mapped_column(String(PROJECT_LEN), primary_key=True)
    return mapped_column(String(PROJECT_LEN), index=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
    }
