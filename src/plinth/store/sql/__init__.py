"""The SQL metadata store: SQLite (single machine) and Postgres (team mode).

One class serves both backends through SQLAlchemy 2; the schema comes from the Alembic
migrations in ``migrations/`` (:meth:`SqlStore.migrate`), never from ``create_all``.

The store is split by area: ``engine.py`` (URLs, engines, migration locking),
``common.py`` (sessions and database-error mapping, :class:`SqlBase`) and one mixin per
area of the metadata (``catalog.py``: models and adapters; ``serving.py``: attachments of
served model ids; each later area adds its own module). :class:`SqlStore` combines the mixins; each implements the matching area
interface of :class:`plinth.store.base.MetadataStore`.
"""

from __future__ import annotations

from alembic import command
from alembic.runtime.migration import MigrationContext

from plinth.store.base import MetadataStore
from plinth.store.sql.alerts import AlertsSql
from plinth.store.sql.auth import AuthSql
from plinth.store.sql.bias import BiasSql
from plinth.store.sql.catalog import CatalogSql
from plinth.store.sql.datasets import DatasetsSql
from plinth.store.sql.deployments import DeploymentsSql
from plinth.store.sql.drift import DriftSql
from plinth.store.sql.engine import (
    DEFAULT_BUSY_TIMEOUT_MS,
    DEFAULT_CONNECT_TIMEOUT_S,
    MIGRATIONS_DIR,
    WRITE_OPTION,
    alembic_config,
    create_store_engine,
    head_revision,
    mask_url,
    migration_connection,
    normalize_url,
)
from plinth.store.sql.guardrails import GuardrailsSql
from plinth.store.sql.jobs import JobsSql
from plinth.store.sql.knowledge import KnowledgeSql
from plinth.store.sql.pipelines import PipelinesSql
from plinth.store.sql.projects import ProjectsSql
from plinth.store.sql.requests import RequestLogSql
from plinth.store.sql.responses import ResponsesSql
from plinth.store.sql.serving import ServingSql
from plinth.store.sql.tracking import TrackingSql

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "DEFAULT_CONNECT_TIMEOUT_S",
    "MIGRATIONS_DIR",
    "WRITE_OPTION",
    "SqlStore",
    "alembic_config",
    "create_store_engine",
    "head_revision",
    "mask_url",
    "migration_connection",
    "normalize_url",
]


class SqlStore(
    CatalogSql,
    ServingSql,
    KnowledgeSql,
    JobsSql,
    DatasetsSql,
    GuardrailsSql,
    TrackingSql,
    DeploymentsSql,
    AuthSql,
    ProjectsSql,
    RequestLogSql,
    DriftSql,
    AlertsSql,
    BiasSql,
    PipelinesSql,
    ResponsesSql,
    MetadataStore,
):
    """The metadata store on SQLite or Postgres: every area mixin plus the lifecycle."""

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
