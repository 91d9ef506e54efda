"""Shared pytest fixtures, one section per area."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from plinth.store.artifacts import ArtifactStore
    from plinth.store.sql import SqlStore

# =============================================================================================
# Order: the longest test files first (tests/support/order.py says why and lists them)
# =============================================================================================


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from tests.support.order import longest_first

    items[:] = longest_first(items, config.rootpath)


# =============================================================================================
# Stores
#
# ``store`` is a migrated SqlStore, run once on a fresh SQLite file and once on a fresh
# Postgres database. The Postgres run needs PLINTH_TEST_DATABASE_URL (e.g.
# postgresql://postgres@127.0.0.1:5432/test): a database plinth_test_<random> is created
# through that URL and dropped afterwards. Without it the Postgres run is skipped, with a
# reason. ``store_url`` gives the same (migrated) databases for tests that build their own
# stores or services; ``empty_store_url``, ``sqlite_url`` and ``postgres_url`` empty ones.
#
# Migrating costs about 0.5 s on SQLite and 0.25 s on Postgres; hundreds of tests need a
# migrated database, so the migrations run once per session into a template that each test
# copies: a file copy on SQLite, CREATE DATABASE ... TEMPLATE on Postgres (about 0.05 s).
# =============================================================================================

PG_URL_ENV = "PLINTH_TEST_DATABASE_URL"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db' / 'plinth.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from plinth.store.sql import normalize_url

    admin_url = os.environ.get(PG_URL_ENV)
    if not admin_url:
        if os.environ.get("PLINTH_REQUIRE_POSTGRES"):
            pytest.fail(f"PLINTH_REQUIRE_POSTGRES is set but {PG_URL_ENV} is not: the Postgres store run cannot be skipped")
        pytest.skip(f"{PG_URL_ENV} not set (e.g. postgresql://postgres@127.0.0.1:5432/test); Postgres store run skipped")
    name = f"plinth_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield make_url(normalize_url(admin_url)).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_store_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database, on each backend."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database file, made once per session (see the section's comment)."""
    from plinth.store.sql import SqlStore

    path = tmp_path_factory.mktemp("store-template") / "plinth.db"
    s = SqlStore(f"sqlite:///{path}")
    s.migrate()
    with s.engine.connect() as conn:  # everything in the main file, nothing left in the WAL
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    s.close()
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str | None]:
    """A migrated Postgres database to copy (None without PLINTH_TEST_DATABASE_URL)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from plinth.store.sql import SqlStore, normalize_url

    admin_url = os.environ.get(PG_URL_ENV)
    if not admin_url:
        yield None
        return
    name = f"plinth_template_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        s = SqlStore(make_url(normalize_url(admin_url)).set(database=name).render_as_string(hide_password=False))
        s.migrate()
        s.close()  # no connection may stay on a template that is copied
        yield name
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture
def migrated_sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    dest = tmp_path / "db" / "plinth.db"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sqlite_template, dest)
    return f"sqlite:///{dest}"


@pytest.fixture
def migrated_postgres_url(postgres_template: str | None) -> Iterator[str]:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from plinth.store.sql import normalize_url

    admin_url = os.environ.get(PG_URL_ENV)
    if not admin_url or postgres_template is None:
        if os.environ.get("PLINTH_REQUIRE_POSTGRES"):
            pytest.fail(f"PLINTH_REQUIRE_POSTGRES is set but {PG_URL_ENV} is not: the Postgres store run cannot be skipped")
        pytest.skip(f"{PG_URL_ENV} not set (e.g. postgresql://postgres@127.0.0.1:5432/test); Postgres store run skipped")
    name = f"plinth_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
        yield make_url(normalize_url(admin_url)).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of a migrated database, on each backend (a copy of the session's template)."""
    return request.getfixturevalue(f"migrated_{request.param}_url")


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    """A migrated SqlStore, on each backend."""
    from plinth.store.sql import SqlStore

    s = SqlStore(store_url)
    s.migrate()  # at head already: Alembic only reads the revision
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def artifact_store(tmp_path: Path) -> ArtifactStore:
    from plinth.store.artifacts import ArtifactStore

    return ArtifactStore(tmp_path / "artifacts")


# =============================================================================================
# Models
# =============================================================================================


@pytest.fixture(scope="session")
def torch_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``cache_dir`` for torch runtimes in tests: the embedded GGUF's dequantised copy is
    made there once per session (``smol_dir``) and every runtime given this directory reuses it.
    With pytest-xdist the workers share one (beside their own temp folders): a copy is written
    to a folder of its own and renamed into place, so two workers making it at once is safe."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return tmp_path_factory.mktemp("plinth-cache")
    shared = tmp_path_factory.getbasetemp().parent / "plinth-cache"
    shared.mkdir(exist_ok=True)
    return shared


@contextmanager
def _one_worker_at_a_time(shared: Path, dtype: str) -> Iterator[None]:
    """Held while the ``dtype`` copy is looked up or made in the workers' shared cache: the
    long files run first (tests/support/order.py), so both workers ask for the same copy at
    once, and without the lock both would make it (15 to 40 s of both cores); the second now
    waits and finds it made."""
    import fcntl

    with open(shared / f".dequantise-{dtype}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _embedded_digest() -> str:
    """The embedded GGUF's digest as the catalog records it, so dequantised copies made here
    carry the key a server's own cache would use (tests link them into a server's home)."""
    import hashlib

    from plinth.formats import locate_embedded_gguf

    h = hashlib.sha256()
    with open(locate_embedded_gguf(), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


@pytest.fixture(scope="session")
def smol_dir(torch_cache_dir: Path) -> Path:
    """The embedded SmolLM2 GGUF dequantised into a Hugging Face directory (bf16 where the
    CPU computes bf16, as the torch runtime loads it), once per session (about 15 s)."""
    from plinth.formats import locate_embedded_gguf
    from plinth.runtimes import torch_llama as tl
    from plinth.runtimes.torch_gguf import dequantised_dir

    dtype = str(tl.pick_dtype("cpu")).replace("torch.", "")
    with _one_worker_at_a_time(torch_cache_dir, dtype):
        return dequantised_dir(locate_embedded_gguf(), torch_cache_dir / "torch", digest=_embedded_digest(), dtype_name=dtype)


@pytest.fixture(scope="session")
def smol32_dir(torch_cache_dir: Path) -> Path:
    """The embedded model dequantised to float32, as fine-tuning loads it (``tune`` jobs and
    the recipes train on this copy), once per session. Its name is the one a server's own
    cache uses (``$PLINTH_HOME/cache/torch/<digest>-float32``)."""
    from plinth.formats import locate_embedded_gguf
    from plinth.runtimes.torch_gguf import dequantised_dir

    with _one_worker_at_a_time(torch_cache_dir, "float32"):
        return dequantised_dir(locate_embedded_gguf(), torch_cache_dir / "torch", digest=_embedded_digest(), dtype_name="float32")
