"""The SQL metadata store, on SQLite and (with PLINTH_TEST_DATABASE_URL) Postgres."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import plinth
from plinth.domain import ModelFormat, ModelRecord
from plinth.errors import ErrorCode, PlinthError
from plinth.store import MetadataStore, open_store
from plinth.store.sql import SqlStore, head_revision, mask_url, normalize_url


def _record(name: str = "tiny", **kw: object) -> ModelRecord:
    fields: dict[str, object] = {
        "name": name,
        "format": ModelFormat.GGUF,
        "runtime": "llamacpp",
        "digest": "sha256:" + "ab" * 32,
        "size_bytes": 123_456_789_012,  # > 2**32: needs BIGINT
        "architecture": "llama",
        "context_length": 8192,
        "chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}",
        "license": "apache-2.0",
        "source": "/models/tiny.gguf",
        "builtin": False,
        "parameters": {"quantization": "Q4_K_M", "eos": [2, 32000], "nested": {"a": None, "b": 1.5}},
    }
    fields.update(kw)
    return ModelRecord(**fields)  # type: ignore[arg-type]


# -- models --------------------------------------------------------------------------------
def test_add_get_round_trip(store: SqlStore) -> None:
    added = store.add_model(_record())
    assert added.id and len(added.id) == 32
    assert added.created_at is not None
    got = store.get_model("tiny")
    assert got == added
    assert isinstance(got, ModelRecord)
    assert got.format is ModelFormat.GGUF
    assert got.size_bytes == 123_456_789_012
    assert got.chat_template == _record().chat_template


def test_json_parameters_round_trip(store: SqlStore) -> None:
    params = {"quantization": "Q4_K_M", "eos": [2, 32000], "nested": {"a": None, "b": 1.5, "ü": "✓"}}
    store.add_model(_record(parameters=params))
    assert store.get_model("tiny").parameters == params


def test_non_json_parameters_rejected(store: SqlStore) -> None:
    with pytest.raises(PlinthError) as ei:
        store.add_model(_record(parameters={"x": object()}))
    assert ei.value.code is ErrorCode.INVALID_REQUEST
    assert store.find_model("tiny") is None


def test_long_license_text_round_trips(store: SqlStore) -> None:
    license_text = "Permission is hereby granted... " * 300
    store.add_model(_record(license=license_text))
    assert store.get_model("tiny").license == license_text


def test_value_too_long_for_column_is_invalid_request(store: SqlStore) -> None:
    if store.dialect_name == "sqlite":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    with pytest.raises(PlinthError) as ei:
        store.add_model(_record(architecture="x" * 200))
    assert ei.value.code is ErrorCode.INVALID_REQUEST
    assert "'tiny'" in ei.value.message


def test_created_at_is_aware_utc(store: SqlStore) -> None:
    before = datetime.now(UTC)
    added = store.add_model(_record())
    got = store.get_model("tiny")
    assert got.created_at is not None and got.created_at.tzinfo is not None
    assert got.created_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= got.created_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert added.created_at == got.created_at


def test_created_at_other_zone_is_stored_as_utc(store: SqlStore) -> None:
    cet = timezone(timedelta(hours=2))
    when = datetime(2024, 5, 1, 12, 30, 0, 123456, tzinfo=cet)
    store.add_model(_record(created_at=when))
    got = store.get_model("tiny").created_at
    assert got == when
    assert got is not None and got.utcoffset() == timedelta(0) and got.hour == 10


def test_find_and_list(store: SqlStore) -> None:
    assert store.find_model("nope") is None
    assert store.list_models() == []
    for name in ["b-model", "A-model", "a-model", "c.model"]:
        store.add_model(_record(name, builtin=name == "c.model"))
    names = [m.name for m in store.list_models()]
    assert names == sorted(names) == ["A-model", "a-model", "b-model", "c.model"]
    assert store.find_model("c.model") is not None and store.find_model("c.model").builtin  # type: ignore[union-attr]


def test_duplicate_name_already_exists(store: SqlStore) -> None:
    store.add_model(_record())
    with pytest.raises(PlinthError) as ei:
        store.add_model(_record(digest=None))
    assert ei.value.code is ErrorCode.ALREADY_EXISTS
    assert "'tiny'" in ei.value.message
    assert len(store.list_models()) == 1
    # the failed insert rolled back cleanly: the store still works
    store.add_model(_record("tiny-2"))
    assert [m.name for m in store.list_models()] == ["tiny", "tiny-2"]


def test_missing_model_not_found(store: SqlStore) -> None:
    with pytest.raises(PlinthError) as ei:
        store.get_model("ghost")
    assert ei.value.code is ErrorCode.MODEL_NOT_FOUND
    assert ei.value.message == "model 'ghost' does not exist"
    assert ei.value.http_status == 404
    with pytest.raises(PlinthError) as ei:
        store.delete_model("ghost")
    assert ei.value.code is ErrorCode.MODEL_NOT_FOUND


def test_delete_returns_record(store: SqlStore) -> None:
    added = store.add_model(_record())
    assert store.delete_model("tiny") == added
    assert store.find_model("tiny") is None
    # the name is free again
    store.add_model(_record())


def test_count_models_with_digest(store: SqlStore) -> None:
    d1, d2 = "sha256:" + "11" * 32, "sha256:" + "22" * 32
    store.add_model(_record("a", digest=d1))
    store.add_model(_record("b", digest=d1))
    store.add_model(_record("c", digest=d2))
    store.add_model(_record("remote", format=ModelFormat.REMOTE, runtime="openai", digest=None, size_bytes=0))
    assert store.count_models_with_digest(d1) == 2
    assert store.count_models_with_digest(d2) == 1
    assert store.count_models_with_digest("sha256:" + "33" * 32) == 0
    store.delete_model("a")
    assert store.count_models_with_digest(d1) == 1


def test_given_id_and_duplicate_id(store: SqlStore) -> None:
    added = store.add_model(_record(id="f" * 32))
    assert added.id == "f" * 32
    with pytest.raises(PlinthError) as ei:
        store.add_model(replace(_record("other"), id="f" * 32))
    assert ei.value.code is ErrorCode.ALREADY_EXISTS


# -- lifecycle -----------------------------------------------------------------------------
def test_migrate_idempotent_and_revision(empty_store_url: str) -> None:
    with SqlStore(empty_store_url) as s:
        assert s.schema_revision() is None
        s.migrate()
        rev = s.schema_revision()
        assert rev == head_revision()
        s.add_model(_record())
        s.migrate()
        assert s.schema_revision() == rev
        assert s.get_model("tiny").name == "tiny"


def test_ping(store: SqlStore) -> None:
    store.ping()


def test_open_store_by_scheme(sqlite_url: str) -> None:
    s = open_store(sqlite_url)
    try:
        assert isinstance(s, SqlStore) and isinstance(s, MetadataStore)
        s.ping()
    finally:
        s.close()


@pytest.mark.parametrize("url", ["mysql://root@localhost/db", "redis://x", "/just/a/path"])
def test_open_store_unknown_scheme(url: str) -> None:
    with pytest.raises(PlinthError) as ei:
        open_store(url)
    assert ei.value.code is ErrorCode.INVALID_REQUEST
    scheme = url.split("://")[0] if "://" in url else ""
    assert repr(scheme) in ei.value.message


def test_url_helpers() -> None:
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    masked = mask_url("postgresql://alice:s3cret@db.example:5432/plinth")
    assert "s3cret" not in masked and "alice" in masked and "db.example" in masked


def test_unreachable_postgres_is_store_unavailable() -> None:
    # Port 1 on localhost refuses at once; the password must not show in the message.
    s = SqlStore("postgresql://alice:s3cret@127.0.0.1:1/plinth", connect_timeout_s=2)
    try:
        for call in (s.ping, s.list_models, s.migrate):
            with pytest.raises(PlinthError) as ei:
                call()
            assert ei.value.code is ErrorCode.STORE_UNAVAILABLE
            assert "s3cret" not in ei.value.message
            assert "127.0.0.1:1" in ei.value.message
    finally:
        s.close()


def test_unusable_sqlite_path_is_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-directory.db").mkdir()
    s = SqlStore(f"sqlite:///{tmp_path / 'a-directory.db'}")
    try:
        with pytest.raises(PlinthError) as ei:
            s.ping()
        assert ei.value.code is ErrorCode.STORE_UNAVAILABLE
    finally:
        s.close()


def test_sqlite_connection_settings(sqlite_url: str) -> None:
    with SqlStore(sqlite_url, busy_timeout_ms=1234) as s:
        s.migrate()
        with s.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_sqlite_parent_directory_created(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "er" / "plinth.db"
    with SqlStore(f"sqlite:///{db}") as s:
        s.migrate()
    assert db.is_file()


# -- concurrency (SQLite) ------------------------------------------------------------------
def test_sqlite_concurrent_writers(sqlite_url: str) -> None:
    with SqlStore(sqlite_url) as s:
        s.migrate()
    n_threads, per_thread = 4, 25
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def writer(t: int) -> None:
        try:
            with SqlStore(sqlite_url) as own:
                start.wait()
                for i in range(per_thread):
                    own.add_model(_record(f"m-{t}-{i}"))
                    if i % 5 == 0:  # interleave reads with the writes
                        own.list_models()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    with SqlStore(sqlite_url) as s:
        names = {m.name for m in s.list_models()}
    assert names == {f"m-{t}-{i}" for t in range(n_threads) for i in range(per_thread)}


def test_sqlite_concurrent_read_then_write_transactions(sqlite_url: str) -> None:
    """Deleting (read then write in one transaction) from many threads never hits 'locked'."""
    with SqlStore(sqlite_url) as s:
        s.migrate()
        for i in range(40):
            s.add_model(_record(f"m-{i}"))
    errors: list[BaseException] = []
    deleted: list[str] = []

    def deleter(t: int) -> None:
        try:
            with SqlStore(sqlite_url) as own:
                for i in range(t, 40, 4):
                    deleted.append(own.delete_model(f"m-{i}").name)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=deleter, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(deleted) == sorted(f"m-{i}" for i in range(40))


_MIGRATE_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from plinth.store.sql import SqlStore
    url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    store = SqlStore(url)
    ready.touch()
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    store.migrate()
    print(store.schema_revision())
    store.close()
    """
)


def test_two_processes_migrate_at_once(empty_store_url: str, tmp_path: Path) -> None:
    store_url = empty_store_url
    env = dict(os.environ)
    src = str(Path(plinth.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    go = tmp_path / "go"
    procs = []
    for i in range(2):
        ready = tmp_path / f"ready-{i}"
        procs.append(
            (
                ready,
                subprocess.Popen(
                    [sys.executable, "-c", _MIGRATE_SCRIPT, store_url, str(ready), str(go)],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    deadline = time.monotonic() + 60
    while not all(r.exists() for r, _ in procs) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    for _, p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip() == head_revision()
    with SqlStore(store_url) as s:
        assert s.schema_revision() == head_revision()
        s.add_model(_record())
        assert [m.name for m in s.list_models()] == ["tiny"]


def test_the_embedded_models_runtime_follows_the_setting(tmp_path: Path) -> None:
    from plinth.config import load_settings
    from plinth.services import build_services

    for runtime in ("torch", "llamacpp", "torch"):
        s = build_services(load_settings(home=tmp_path / "home", embedded_runtime=runtime))
        try:
            assert s.catalog.ensure_embedded().runtime == runtime
            assert s.store.get_model("smollm2-135m-instruct").runtime == runtime
        finally:
            s.close()
    store = SqlStore(f"sqlite:///{tmp_path / 'home' / 'plinth.db'}")
    with pytest.raises(PlinthError) as e:
        store.set_model_runtime("nope", "torch")
    assert e.value.code == ErrorCode.MODEL_NOT_FOUND
    store.close()
