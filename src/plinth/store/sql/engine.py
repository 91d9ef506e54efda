"""Engines, URLs and migration plumbing of the SQL store.

SQLite notes. Every connection gets ``journal_mode=WAL``, ``synchronous=NORMAL``,
``foreign_keys=ON`` and a busy timeout. The ``sqlite3`` module's own transaction handling
is switched off and the store emits ``BEGIN`` itself (SQLAlchemy's documented recipe):
``BEGIN IMMEDIATE`` for write transactions, so a writer takes the write lock up front and
waits out the busy timeout behind another writer, rather than failing with "database is
locked" when a deferred transaction tries to upgrade its lock; plain ``BEGIN`` for reads.
A connection marked with the execution option :data:`WRITE_OPTION` before its transaction
begins gets ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, CursorResult, Result, make_url
from sqlalchemy.exc import ArgumentError

from plinth.errors import ErrorCode, PlinthError

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
DEFAULT_BUSY_TIMEOUT_MS = 10_000
DEFAULT_CONNECT_TIMEOUT_S = 10.0
# Execution option that makes a SQLite transaction start with BEGIN IMMEDIATE.
WRITE_OPTION = "plinth_write"
# Key of the Postgres advisory lock that serialises concurrent migrations.
_PG_MIGRATION_LOCK = 0x706C696E7468  # "plinth"


# -- URLs ------------------------------------------------------------------------------------
def rowcount(result: Result[Any]) -> int:
    """Rows an INSERT, UPDATE or DELETE touched (``Session.execute`` is typed as returning a
    plain ``Result``; for those statements it is a ``CursorResult``)."""
    return int(cast(CursorResult[Any], result).rowcount or 0)


def normalize_url(url: str) -> str:
    """Point bare ``postgresql://`` and ``postgres://`` URLs at the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _parse_url(url: str) -> Any:
    try:
        return make_url(normalize_url(url))
    except ArgumentError:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"database URL {mask_url(url)!r} is not valid; use sqlite:///PATH or postgresql://user@host:port/db",
        ) from None


# -- engines ---------------------------------------------------------------------------------
def create_store_engine(
    url: str,
    *,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    echo: bool = False,
) -> Engine:
    """An engine configured for the store (pragmas and BEGIN handling on SQLite)."""
    u = _parse_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        _ensure_sqlite_dir(u, url)
        engine = create_engine(u, echo=echo, connect_args={"timeout": busy_timeout_ms / 1000})
        _install_sqlite_hooks(engine, busy_timeout_ms)
        return engine
    if backend == "postgresql":
        return create_engine(
            u,
            echo=echo,
            pool_pre_ping=True,
            connect_args={"connect_timeout": max(1, round(connect_timeout_s))},
        )
    raise PlinthError(
        ErrorCode.INVALID_REQUEST,
        f"unsupported database URL scheme {u.drivername!r}; use sqlite:///PATH or postgresql://...",
    )


def _ensure_sqlite_dir(u: Any, url: str) -> None:
    database = u.database or ""
    if not database or database == ":memory:" or database.startswith("file:") or u.query.get("mode") == "memory":
        return
    try:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PlinthError(
            ErrorCode.STORE_UNAVAILABLE,
            f"metadata store {mask_url(url)} is unavailable: cannot create its directory: {e.strerror or e}",
        ) from e


def _set_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another process holds the database: on a new
    file SQLite can answer "database is locked" at once, without calling the busy handler
    (two processes creating and migrating one database at the same moment)."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    delay = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _install_sqlite_hooks(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module; _on_begin emits BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            _set_wal(cursor, busy_timeout_ms)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside the one transaction a migration runs in, holding the migration lock.

    SQLite: ``BEGIN IMMEDIATE`` (a second process migrating at the same moment waits, then
    finds the schema current), with foreign keys off for the duration as SQLite's ALTER
    TABLE procedure asks, and ``PRAGMA foreign_key_check`` before committing. Postgres: a
    transaction-scoped advisory lock. The transaction commits when the block ends cleanly.
    """
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        raw = conn.connection.driver_connection
        assert raw is not None  # a live connection checked out of the pool
        if sqlite:
            # Outside any transaction (inside one this PRAGMA is a no-op), so on the raw
            # connection, which has no implicit BEGIN (isolation_level is None).
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
                yield conn
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise PlinthError(
                            ErrorCode.INTERNAL,
                            f"migration left {len(broken)} rows violating foreign keys; rolled back",
                            details={"violations": [list(map(str, r)) for r in broken[:20]]},
                        )
        finally:
            if sqlite:
                try:
                    raw.execute("PRAGMA foreign_keys=ON")
                except Exception:  # a broken connection must not go back to the pool as is
                    conn.invalidate()


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the store's migrations, built in code (no alembic.ini)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    """The newest Alembic revision shipped with this plinth (what :meth:`SqlStore.migrate` reaches)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
