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
from plinth.domain.projects import SHARED, StoreScope
from plinth.errors import ErrorCode, PlinthError
from plinth.store.sql import scoping
from plinth.store.sql.engine import (
    DEFAULT_BUSY_TIMEOUT_MS,
    DEFAULT_CONNECT_TIMEOUT_S,
    WRITE_OPTION,
    create_store_engine,
    mask_url,
)


class RefusedValue(PlinthError):
    """A value the database refused (a driver's DataError: a string too long for its column,
    a number out of range): ``invalid_request``. Store methods that know what they were
    storing catch it and name it."""

    def __init__(self, error: DataError) -> None:
        self.reason = db_reason(error)
        super().__init__(ErrorCode.INVALID_REQUEST, f"the metadata store refused a value: {self.reason}")


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
        strict: bool = False,
    ) -> None:
        self.url = url
        self.display_url = mask_url(url)
        self._engine = create_store_engine(url, busy_timeout_ms=busy_timeout_ms, connect_timeout_s=connect_timeout_s, echo=echo)
        event.listen(self._engine, "handle_error", _note_out_of_range)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        #: strict: a call outside any project scope is a bug (the server); else the system scope
        self.strict = strict
        scoping.install(self._sessions, strict)

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
    def _scope(self) -> StoreScope:
        """The scope of the current call (see :mod:`plinth.store.sql.scoping`)."""
        return scoping.scope_of_call(self.strict)

    def _project(self) -> str:
        """The project the current call names things in and adds rows to."""
        return self._scope().project

    def _visible(self, row: Any) -> Any:
        """The condition "the row is the current project's or shared", for lookups by name and
        listings: in a project scope the session adds it anyway; in the system scope it keeps
        a name meaning the scope project's row."""
        return row.project.in_(self._scope().visible)

    def _own_first(self, row: Any) -> Any:
        """ORDER BY that puts the project's own row before a shared one of the same name."""
        return (row.project == SHARED).asc()

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
            # It stays a DataError too, so a store method that names what it was storing can
            # catch it and say so.
            raise RefusedValue(e) from e
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


def db_reason(e: DataError | RefusedValue) -> str:
    """The first line of the database's message (Postgres: value too long, out of range...)."""
    if isinstance(e, RefusedValue):
        return e.reason
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
