"""What every part of the SQL store shares: the engine, sessions, and mapping of database
errors to :class:`~plinth.errors.PlinthError`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from plinth.domain.numbers import INT64_MAX
from plinth.errors import ErrorCode, PlinthError
from plinth.store.sql.engine import (
    DEFAULT_BUSY_TIMEOUT_MS,
    DEFAULT_CONNECT_TIMEOUT_S,
    WRITE_OPTION,
    create_store_engine,
    mask_url,
)


class SqlBase:
    """The engine and session plumbing. Each area of the store is a mixin over this class
    (``catalog.py``, ...); :class:`plinth.store.sql.SqlStore` combines them.

    ``url`` is kept as given (it may hold a password); ``display_url`` masks the password
    and is what messages show.
    """

    def __init__(
        self,
        url: str,
        *,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        echo: bool = False,
    ) -> None:
        self.url = url
        self.display_url = mask_url(url)
        self._engine = create_store_engine(url, busy_timeout_ms=busy_timeout_ms, connect_timeout_s=connect_timeout_s, echo=echo)
        event.listen(self._engine, "handle_error", _note_out_of_range)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display_url!r})"

    def __enter__(self) -> SqlBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._engine.dispose()

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect_name(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    # -- plumbing ----------------------------------------------------------------------------
    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (OperationalError, InterfaceError) as e:
            reason = str(e.orig if e.orig is not None else e).strip().splitlines()
            locked = "locked" in (reason[0] if reason else "")
            raise PlinthError(
                ErrorCode.STORE_UNAVAILABLE,
                f"metadata store {self.display_url} is unavailable: {reason[0] if reason else type(e).__name__}",
                details={"url": self.display_url},
                retry_after=1.0 if locked else None,
            ) from e
        except DataError as e:
            # A value the database refuses (Postgres: a number out of range for its column, a
            # string too long...). The API bounds its numbers first; this is the net under it.
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"the metadata store refused a value: {db_reason(e)}") from e
        except OverflowError as e:
            # sqlite3 refuses a Python int outside 64 bits with a bare OverflowError.
            values = getattr(e, "out_of_range", ())
            shown = ", ".join(str(v) for v in values) or "a number"
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"{shown} is out of the range the metadata store holds ({-INT64_MAX - 1} to {INT64_MAX})",
                details={"values": [str(v) for v in values]} if values else None,
            ) from e

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[Session]:
        """A session in one transaction; a write session commits when the block ends cleanly."""
        with self._errors(), self._sessions() as session:
            if write:
                session.connection(execution_options={WRITE_OPTION: True})
            yield session
            if write:
                session.commit()

    # -- lifecycle ---------------------------------------------------------------------------


def _note_out_of_range(ctx: ExceptionContext) -> None:
    """Attach to a driver's OverflowError the bound integers outside 64 bits, so the answer
    can name them (sqlite3's message names none)."""
    exc = ctx.original_exception
    if not isinstance(exc, OverflowError):
        return
    params: Any = ctx.parameters
    rows = params if isinstance(params, list) else [params]
    values: list[int] = []
    for row in rows:
        items = row.values() if isinstance(row, dict) else row if isinstance(row, (tuple, list)) else ()
        values += [v for v in items if isinstance(v, int) and not isinstance(v, bool) and not -INT64_MAX - 1 <= v <= INT64_MAX]
    exc.out_of_range = values  # type: ignore[attr-defined]


def json_or_invalid(value: object, what: str, param: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{what} must be JSON-serialisable: {e}", param=param) from None


def db_reason(e: DataError) -> str:
    """The first line of the database's message (Postgres: value too long, out of range...)."""
    lines = str(e.orig if e.orig is not None else e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def is_foreign_key_violation(e: IntegrityError) -> bool:
    orig = e.orig
    if getattr(orig, "sqlstate", None) == "23503":  # psycopg: foreign_key_violation
        return True
    if getattr(orig, "sqlite_errorname", "") == "SQLITE_CONSTRAINT_FOREIGNKEY":
        return True
    return "FOREIGN KEY constraint failed" in str(orig)


def is_unique_violation(e: IntegrityError) -> bool:
    orig = e.orig
    if getattr(orig, "sqlstate", None) == "23505":  # psycopg: unique_violation
        return True
    if getattr(orig, "sqlite_errorname", "") in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"):
        return True
    return "UNIQUE constraint failed" in str(orig)
