"""Alembic environment for plinth's metadata store.

Two ways in:

* programmatically, from :meth:`plinth.store.sql.SqlStore.migrate`, which opens the
  connection itself (holding the migration lock, in a transaction) and passes it as
  ``config.attributes["connection"]``;
* from the alembic command line (developers), with the URL from ``-x url=...``,
  ``sqlalchemy.url`` or ``PLINTH_DATABASE_URL``; the same locking applies.

SQLite migrations are rendered in batch mode so later revisions can alter tables.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from plinth.store.schema import Base
from plinth.store.sql import create_store_engine, migration_connection, normalize_url

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("PLINTH_DATABASE_URL")
    )
    if not url:
        raise SystemExit("no database URL: pass -x url=..., set sqlalchemy.url or PLINTH_DATABASE_URL")
    return normalize_url(url)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_store_engine(_url())
    try:
        with migration_connection(engine) as conn:
            _run(conn)
    finally:
        engine.dispose()


if config.config_file_name is not None and "connection" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
