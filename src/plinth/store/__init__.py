"""Persistence: the metadata store (chosen by URL scheme) and the content-addressed artifact store.

SQLAlchemy and Alembic are imported only when a metadata store is opened, so importing
this package (e.g. for :class:`ArtifactStore`) stays cheap.
"""

from __future__ import annotations

from typing import Any

from plinth.errors import ErrorCode, PlinthError
from plinth.store.artifacts import ArtifactStore
from plinth.store.base import MetadataStore

__all__ = ["ArtifactStore", "MetadataStore", "open_store"]

_SQL_SCHEMES = {"sqlite", "postgresql", "postgres"}


def open_store(url: str, **options: Any) -> MetadataStore:
    """The metadata store for ``url``: ``sqlite:///PATH`` or ``postgresql://user@host:port/db``.

    ``postgresql://`` and ``postgres://`` use the psycopg 3 driver. ``options`` go to the
    implementation (for SQL: ``busy_timeout_ms``, ``connect_timeout_s``, ``echo``). The
    store is not migrated here; call :meth:`MetadataStore.migrate` at start-up.
    """
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme.split("+", 1)[0].lower() in _SQL_SCHEMES:
        from plinth.store.sql import SqlStore

        return SqlStore(url, **options)
    raise PlinthError(
        ErrorCode.INVALID_REQUEST,
        f"unsupported metadata store URL scheme {scheme!r}: use sqlite:///PATH or postgresql://user@host:port/db",
        details={"scheme": scheme},
    )
