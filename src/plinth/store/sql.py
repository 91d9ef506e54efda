"""The SQL metadata store: SQLite (single machine) and Postgres (team mode).

One class serves both backends through SQLAlchemy 2; the schema comes from the Alembic
migrations in ``migrations/`` (:meth:`SqlStore.migrate`), never from ``create_all``.

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

import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event, func, or_, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DataError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from plinth.domain import AdapterFormat, AdapterRecord, ModelFormat, ModelRecord
from plinth.errors import ErrorCode, PlinthError
from plinth.store.base import MetadataStore
from plinth.store.schema import AdapterRow, ModelRow

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_BUSY_TIMEOUT_MS = 10_000
DEFAULT_CONNECT_TIMEOUT_S = 10.0
# Execution option that makes a SQLite transaction start with BEGIN IMMEDIATE.
WRITE_OPTION = "plinth_write"
# Key of the Postgres advisory lock that serialises concurrent migrations.
_PG_MIGRATION_LOCK = 0x706C696E7468  # "plinth"


# -- URLs ------------------------------------------------------------------------------------
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


def _install_sqlite_hooks(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module; _on_begin emits BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode=WAL")
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


# -- the store -------------------------------------------------------------------------------
class SqlStore(MetadataStore):
    """The metadata store on SQLite or Postgres.

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
        self._engine = create_store_engine(
            url, busy_timeout_ms=busy_timeout_ms, connect_timeout_s=connect_timeout_s, echo=echo
        )
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"SqlStore({self.display_url!r})"

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` (default the newest); safe to run concurrently."""
        with self._errors(), migration_connection(self._engine) as conn:
            command.upgrade(alembic_config(conn), revision)

    def downgrade(self, revision: str = "base") -> None:
        """Downgrade the schema to ``revision`` (developer tool; ``base`` drops everything)."""
        with self._errors(), migration_connection(self._engine) as conn:
            command.downgrade(alembic_config(conn), revision)

    def schema_revision(self) -> str | None:
        with self._errors(), self._engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def ping(self) -> None:
        with self._errors(), self._engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def close(self) -> None:
        self._engine.dispose()

    # -- models ------------------------------------------------------------------------------
    def add_model(self, record: ModelRecord) -> ModelRecord:
        row = _row_from_record(record)
        try:
            with self._session(write=True) as s:
                s.add(row)
                s.flush()
                s.refresh(row)
                stored = _record_from_row(row)
        except DataError as e:  # Postgres: a value too long for its column, out of range...
            reason = str(e.orig).strip().splitlines()[0]
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, f"model {record.name!r} cannot be stored: {reason}"
            ) from None
        except IntegrityError as e:
            if not _is_unique_violation(e):
                raise
            if "pk_models" in str(e.orig) or "models.id" in str(e.orig):
                raise PlinthError(
                    ErrorCode.ALREADY_EXISTS, f"model id {row.id!r} already exists", details={"id": row.id}
                ) from None
            raise PlinthError(
                ErrorCode.ALREADY_EXISTS,
                f"model {record.name!r} already exists",
                details={"kind": "model", "name": record.name},
            ) from None
        return stored

    def get_model(self, name: str) -> ModelRecord:
        record = self.find_model(name)
        if record is None:
            raise _model_not_found(name)
        return record

    def find_model(self, name: str) -> ModelRecord | None:
        with self._session() as s:
            row = s.scalar(select(ModelRow).where(ModelRow.name == name))
            return None if row is None else _record_from_row(row)

    def list_models(self) -> list[ModelRecord]:
        with self._session() as s:
            records = [_record_from_row(r) for r in s.scalars(select(ModelRow))]
        # Sorted here, not by ORDER BY: collations differ between SQLite and Postgres.
        return sorted(records, key=lambda r: r.name)

    def delete_model(self, name: str) -> ModelRecord:
        with self._session(write=True) as s:
            row = s.scalar(select(ModelRow).where(ModelRow.name == name).with_for_update())
            if row is None:
                raise _model_not_found(name)
            record = _record_from_row(row)
            s.delete(row)
        return record

    def count_models_with_digest(self, digest: str) -> int:
        with self._session() as s:
            return s.scalar(select(func.count()).select_from(ModelRow).where(ModelRow.digest == digest)) or 0

    # -- adapters ----------------------------------------------------------------------------
    def add_adapter(self, record: AdapterRecord) -> AdapterRecord:
        row = _adapter_row_from_record(record)
        try:
            with self._session(write=True) as s:
                # Checked first for a clear error; the foreign key still guards against a
                # base model deleted concurrently (Postgres), mapped the same way below.
                if s.scalar(select(ModelRow.id).where(ModelRow.name == record.base_model)) is None:
                    raise _model_not_found(record.base_model)
                s.add(row)
                s.flush()
                s.refresh(row)
                stored = _adapter_record_from_row(row)
        except DataError as e:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, f"adapter {record.model_id} cannot be stored: {_reason(e)}"
            ) from None
        except IntegrityError as e:
            if _is_foreign_key_violation(e):
                raise _model_not_found(record.base_model) from None
            if not _is_unique_violation(e):
                raise
            if "pk_adapters" in str(e.orig) or "adapters.id" in str(e.orig):
                raise PlinthError(
                    ErrorCode.ALREADY_EXISTS, f"adapter id {row.id!r} already exists", details={"id": row.id}
                ) from None
            raise PlinthError(
                ErrorCode.ALREADY_EXISTS,
                f"adapter {record.model_id} already exists",
                details=_adapter_details(record.base_model, record.name),
            ) from None
        return stored

    def get_adapter(self, base_model: str, name: str) -> AdapterRecord:
        record = self.find_adapter(base_model, name)
        if record is None:
            raise _adapter_not_found(base_model, name)
        return record

    def find_adapter(self, base_model: str, name: str) -> AdapterRecord | None:
        with self._session() as s:
            row = s.scalar(_adapter_query(base_model, name))
            return None if row is None else _adapter_record_from_row(row)

    def list_adapters(self, base_model: str | None = None) -> list[AdapterRecord]:
        query = select(AdapterRow)
        if base_model is not None:
            query = query.where(AdapterRow.base_model == base_model)
        with self._session() as s:
            records = [_adapter_record_from_row(r) for r in s.scalars(query)]
        # Sorted here, not by ORDER BY: collations differ between SQLite and Postgres.
        return sorted(records, key=lambda r: (r.base_model, r.name))

    def delete_adapter(self, base_model: str, name: str) -> AdapterRecord:
        with self._session(write=True) as s:
            row = s.scalar(_adapter_query(base_model, name).with_for_update())
            if row is None:
                raise _adapter_not_found(base_model, name)
            record = _adapter_record_from_row(row)
            s.delete(row)
        return record

    def count_adapters_with_digest(self, digest: str) -> int:
        query = (
            select(func.count())
            .select_from(AdapterRow)
            .where(or_(AdapterRow.digest == digest, AdapterRow.gguf_digest == digest))
        )
        with self._session() as s:
            return s.scalar(query) or 0

    def update_adapter_gguf(self, base_model: str, name: str, gguf_digest: str | None) -> AdapterRecord:
        try:
            with self._session(write=True) as s:
                row = s.scalar(_adapter_query(base_model, name).with_for_update())
                if row is None:
                    raise _adapter_not_found(base_model, name)
                row.gguf_digest = gguf_digest
                s.flush()
                record = _adapter_record_from_row(row)
        except DataError as e:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"GGUF digest of adapter {base_model}:{name} cannot be stored: {_reason(e)}",
                param="gguf_digest",
            ) from None
        return record


# -- mapping ---------------------------------------------------------------------------------
def _model_not_found(name: str) -> PlinthError:
    return PlinthError(
        ErrorCode.MODEL_NOT_FOUND, f"model {name!r} does not exist", details={"kind": "model", "name": name}
    )


def _row_from_record(record: ModelRecord) -> ModelRow:
    parameters = dict(record.parameters or {})
    try:
        json.dumps(parameters, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"parameters of model {record.name!r} must be JSON-serialisable: {e}",
            param="parameters",
        ) from None
    return ModelRow(
        id=record.id or uuid4().hex,
        name=record.name,
        format=ModelFormat(record.format).value,
        runtime=record.runtime,
        digest=record.digest,
        size_bytes=record.size_bytes,
        architecture=record.architecture,
        context_length=record.context_length,
        chat_template=record.chat_template,
        license=record.license,
        source=record.source,
        builtin=record.builtin,
        parameters=parameters,
        created_at=record.created_at or datetime.now(UTC),
    )


def _record_from_row(row: ModelRow) -> ModelRecord:
    return ModelRecord(
        id=row.id,
        name=row.name,
        format=ModelFormat(row.format),
        runtime=row.runtime,
        digest=row.digest,
        size_bytes=row.size_bytes,
        architecture=row.architecture,
        context_length=row.context_length,
        chat_template=row.chat_template,
        license=row.license,
        source=row.source,
        builtin=row.builtin,
        parameters=dict(row.parameters or {}),
        created_at=row.created_at,
    )


def _adapter_details(base_model: str, name: str) -> dict[str, Any]:
    return {"kind": "adapter", "base_model": base_model, "name": name, "model_id": f"{base_model}:{name}"}


def _adapter_not_found(base_model: str, name: str) -> PlinthError:
    return PlinthError(
        ErrorCode.NOT_FOUND,
        f"adapter {base_model}:{name} does not exist",
        details=_adapter_details(base_model, name),
    )


def _adapter_query(base_model: str, name: str) -> Any:
    return select(AdapterRow).where(AdapterRow.base_model == base_model, AdapterRow.name == name)


def _json_or_invalid(value: object, what: str, param: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{what} must be JSON-serialisable: {e}", param=param) from None


def _adapter_row_from_record(record: AdapterRecord) -> AdapterRow:
    model_id = record.model_id
    try:
        fmt = AdapterFormat(record.format).value
    except ValueError:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"adapter {model_id} has unknown format {record.format!r}; "
            f"use {', '.join(f.value for f in AdapterFormat)}",
            param="format",
        ) from None
    modules = record.target_modules
    if isinstance(modules, str | bytes) or not all(isinstance(m, str) for m in modules or ()):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"target_modules of adapter {model_id} must be a list of strings, got {modules!r}",
            param="target_modules",
        )
    target_modules = list(modules or ())
    parameters = dict(record.parameters or {})
    _json_or_invalid(parameters, f"parameters of adapter {model_id}", "parameters")
    alpha = None if record.alpha is None else float(record.alpha)
    if alpha is not None and not math.isfinite(alpha):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"alpha of adapter {model_id} must be a finite number, got {alpha}",
            param="alpha",
        )
    return AdapterRow(
        id=record.id or uuid4().hex,
        base_model=record.base_model,
        name=record.name,
        format=fmt,
        digest=record.digest,
        gguf_digest=record.gguf_digest,
        size_bytes=record.size_bytes,
        rank=record.rank,
        alpha=alpha,
        target_modules=target_modules,
        source=record.source,
        parameters=parameters,
        created_at=record.created_at or datetime.now(UTC),
    )


def _adapter_record_from_row(row: AdapterRow) -> AdapterRecord:
    return AdapterRecord(
        id=row.id,
        base_model=row.base_model,
        name=row.name,
        format=AdapterFormat(row.format),
        digest=row.digest,
        gguf_digest=row.gguf_digest,
        size_bytes=row.size_bytes,
        rank=row.rank,
        alpha=row.alpha,
        target_modules=list(row.target_modules or []),
        source=row.source,
        parameters=dict(row.parameters or {}),
        created_at=row.created_at,
    )


def _reason(e: DataError) -> str:
    """The first line of the database's message (Postgres: value too long, out of range...)."""
    lines = str(e.orig if e.orig is not None else e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def _is_foreign_key_violation(e: IntegrityError) -> bool:
    orig = e.orig
    if getattr(orig, "sqlstate", None) == "23503":  # psycopg: foreign_key_violation
        return True
    if getattr(orig, "sqlite_errorname", "") == "SQLITE_CONSTRAINT_FOREIGNKEY":
        return True
    return "FOREIGN KEY constraint failed" in str(orig)


def _is_unique_violation(e: IntegrityError) -> bool:
    orig = e.orig
    if getattr(orig, "sqlstate", None) == "23505":  # psycopg: unique_violation
        return True
    if getattr(orig, "sqlite_errorname", "") in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"):
        return True
    return "UNIQUE constraint failed" in str(orig)
