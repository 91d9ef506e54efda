"""Shared pytest fixtures, one section per area."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from plinth.store.artifacts import ArtifactStore
    from plinth.store.sql import SqlStore

# =============================================================================================
# Stores
#
# ``store`` is a migrated SqlStore, run once on a fresh SQLite file and once on a fresh
# Postgres database. The Postgres run needs PLINTH_TEST_DATABASE_URL (e.g.
# postgresql://postgres@127.0.0.1:5432/test): a database plinth_test_<random> is created
# through that URL and dropped afterwards. Without it the Postgres run is skipped, with a
# reason. ``store_url`` gives the same URLs for tests that build their own stores.
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
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database, on each backend."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    """A migrated SqlStore on an empty database, on each backend."""
    from plinth.store.sql import SqlStore

    s = SqlStore(store_url)
    s.migrate()
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
    made there once per session (``smol_dir``) and every runtime given this directory reuses it."""
    return tmp_path_factory.mktemp("plinth-cache")


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
    return dequantised_dir(locate_embedded_gguf(), torch_cache_dir / "torch", digest=_embedded_digest(), dtype_name=dtype)


@pytest.fixture(scope="session")
def smol32_dir(torch_cache_dir: Path) -> Path:
    """The embedded model dequantised to float32, as fine-tuning loads it (``tune`` jobs and
    the recipes train on this copy), once per session. Its name is the one a server's own
    cache uses (``$PLINTH_HOME/cache/torch/<digest>-float32``)."""
    from plinth.formats import locate_embedded_gguf
    from plinth.runtimes.torch_gguf import dequantised_dir

    return dequantised_dir(locate_embedded_gguf(), torch_cache_dir / "torch", digest=_embedded_digest(), dtype_name="float32")
