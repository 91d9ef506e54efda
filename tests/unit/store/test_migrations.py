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
        assert {i["name"] for i in insp.get_indexes("models")} >= {"ix_models_digest", "ix_models_project"}
        uniques = {u["name"] for u in insp.get_unique_constraints("models")}
        assert "uq_models_project_name" in uniques  # names are unique per project
        if store.dialect_name == "postgresql":  # SQLite does not report primary key names
            assert insp.get_pk_constraint("models")["name"] == "pk_models"
            assert insp.get_pk_constraint("adapters")["name"] == "pk_adapters"
            assert insp.get_pk_constraint("datasets")["name"] == "pk_datasets"
        assert insp.get_pk_constraint("datasets")["constrained_columns"] == ["project", "name"]
        assert {i["name"] for i in insp.get_indexes("adapters")} >= {"ix_adapters_digest"}
        assert "uq_adapters_project_base_model_name" in {u["name"] for u in insp.get_unique_constraints("adapters")}
        # a project's adapter may sit on a shared base model: no foreign key to models
        assert insp.get_foreign_keys("adapters") == []
        (fk,) = insp.get_foreign_keys("dataset_versions")
        assert fk["referred_table"] == "datasets"
        assert fk["constrained_columns"] == ["project", "dataset"] and fk["referred_columns"] == ["project", "name"]
        assert (fk.get("options") or {}).get("ondelete", "").upper() == "CASCADE"
        if store.dialect_name == "postgresql":  # SQLite does not report foreign key names
            assert fk["name"] == "fk_dataset_versions_project_datasets"


def test_head_is_the_newest_revision() -> None:
    assert head_revision() == "0015"


def test_0009_moves_existing_rows_into_the_default_project_and_shares_builtins(store: SqlStore) -> None:
    store.downgrade("0008")
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO models (id, name, format, runtime, digest, size_bytes, builtin, parameters, created_at) VALUES "
            "('a', 'embedded', 'gguf', 'llamacpp', NULL, 1, TRUE, '{}', '2026-01-01'), "
            "('b', 'mine', 'gguf', 'llamacpp', NULL, 1, FALSE, '{}', '2026-01-01')"
        )
        conn.exec_driver_sql(
            "INSERT INTO datasets (name, description, latest_version, created_at, updated_at) "
            "VALUES ('faq', '', 0, '2026-01-01', '2026-01-01')"
        )
    store.migrate()
    with store.engine.connect() as conn:
        models = dict(conn.exec_driver_sql("SELECT name, project FROM models").fetchall())
        assert models == {"embedded": "", "mine": "default"}
        assert conn.exec_driver_sql("SELECT project, name FROM datasets").fetchall() == [("default", "faq")]
        assert conn.exec_driver_sql("SELECT name FROM projects").fetchall() == [("default",)]
    assert _diff(store) == []


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
    with store.engine.connect() as conn:  # (the ORM describes the newest schema)
        assert conn.exec_driver_sql("SELECT name FROM models").fetchall() == [("tiny",)]
    store.migrate()
    assert store.get_model("tiny").name == "tiny"
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
