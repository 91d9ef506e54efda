"""The Alembic migrations produce exactly the schema the ORM classes describe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import plinth
from plinth.store.schema import Base
from plinth.store.sql import MIGRATIONS_DIR, SqlStore, head_revision


def _diff(store: SqlStore) -> list[object]:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))


def _tables(store: SqlStore) -> set[str]:
    with store.engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def test_migrations_match_models(store: SqlStore) -> None:
    assert _diff(store) == []


def test_named_constraints_and_indexes(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        insp = inspect(conn)
        assert {i["name"] for i in insp.get_indexes("models")} >= {"ix_models_digest"}
        uniques = {u["name"] for u in insp.get_unique_constraints("models")}
        assert "uq_models_name" in uniques
        if store.dialect_name == "postgresql":  # SQLite does not report primary key names
            assert insp.get_pk_constraint("models")["name"] == "pk_models"
            assert insp.get_pk_constraint("adapters")["name"] == "pk_adapters"
        assert {i["name"] for i in insp.get_indexes("adapters")} >= {"ix_adapters_digest"}
        assert "uq_adapters_base_model_name" in {u["name"] for u in insp.get_unique_constraints("adapters")}
        (fk,) = insp.get_foreign_keys("adapters")
        assert fk["referred_table"] == "models"
        assert fk["constrained_columns"] == ["base_model"] and fk["referred_columns"] == ["name"]
        assert (fk.get("options") or {}).get("ondelete", "").upper() == "CASCADE"
        if store.dialect_name == "postgresql":  # SQLite does not report foreign key names
            assert fk["name"] == "fk_adapters_base_model_models"


def test_head_is_the_newest_revision() -> None:
    assert head_revision() == "0008"


def test_downgrade_to_base_and_upgrade_again(store: SqlStore) -> None:
    assert {"models", "adapters"} <= _tables(store)
    store.downgrade("base")
    assert store.schema_revision() is None
    assert not {"models", "adapters"} & _tables(store)
    store.migrate()
    assert store.schema_revision() == head_revision()
    assert _diff(store) == []


def test_downgrade_one_step_and_upgrade_again(store: SqlStore) -> None:
    """0002 down drops only the adapters table; the catalog survives; 0002 up restores it."""
    from plinth.domain import ModelFormat, ModelRecord

    store.add_model(ModelRecord(name="tiny", format=ModelFormat.GGUF, runtime="llamacpp", digest=None, size_bytes=1))
    store.downgrade("0001")
    assert store.schema_revision() == "0001"
    tables = _tables(store)
    assert "models" in tables and "adapters" not in tables
    assert store.get_model("tiny").name == "tiny"
    store.migrate()
    assert store.schema_revision() == head_revision()
    assert "adapters" in _tables(store)
    assert store.list_adapters("tiny") == []
    assert _diff(store) == []


def test_alembic_cli_with_x_url(tmp_path: Path) -> None:
    """The developer path: alembic -c src/plinth/store/migrations/alembic.ini -x url=..."""
    db = tmp_path / "cli.db"
    env = dict(os.environ)
    src = str(Path(plinth.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env.pop("PLINTH_DATABASE_URL", None)
    ini = MIGRATIONS_DIR / "alembic.ini"
    run = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ini), "-x", f"url=sqlite:///{db}", "upgrade", "head"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    with SqlStore(f"sqlite:///{db}") as s:
        assert s.schema_revision() == head_revision()
        assert _diff(s) == []
