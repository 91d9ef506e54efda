"""LoRA adapters in the SQL metadata store, on SQLite and (with PLINTH_TEST_DATABASE_URL) Postgres."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from plinth.domain import AdapterFormat, AdapterRecord, ModelFormat, ModelRecord
from plinth.errors import ErrorCode, PlinthError
from plinth.store.sql import SqlStore

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def _model(name: str = "tiny", **kw: object) -> ModelRecord:
    fields: dict[str, object] = {
        "name": name,
        "format": ModelFormat.GGUF,
        "runtime": "llamacpp",
        "digest": "sha256:" + "ab" * 32,
        "size_bytes": 1_000,
    }
    fields.update(kw)
    return ModelRecord(**fields)  # type: ignore[arg-type]


def _adapter(name: str = "style", base: str = "tiny", **kw: object) -> AdapterRecord:
    fields: dict[str, object] = {
        "base_model": base,
        "name": name,
        "format": AdapterFormat.PEFT_LORA,
        "digest": D1,
        "size_bytes": 5_000_000_000,  # > 2**32: needs BIGINT
        "rank": 16,
        "alpha": 32.0,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        "source": "/adapters/style",
        "parameters": {"peft_type": "LORA", "dropout": 0.05, "nested": {"a": None, "b": [1, 2]}},
    }
    fields.update(kw)
    return AdapterRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
def base(store: SqlStore) -> SqlStore:
    """The store with the base model ``tiny`` in it."""
    store.add_model(_model())
    return store


# -- CRUD ------------------------------------------------------------------------------------
def test_add_get_round_trip(base: SqlStore) -> None:
    added = base.add_adapter(_adapter())
    assert added.id and len(added.id) == 32
    assert added.created_at is not None
    got = base.get_adapter("tiny", "style")
    assert got == added
    assert isinstance(got, AdapterRecord)
    assert got.format is AdapterFormat.PEFT_LORA
    assert got.size_bytes == 5_000_000_000
    assert got.rank == 16 and got.alpha == 32.0 and isinstance(got.alpha, float)
    assert got.gguf_digest is None
    assert got.model_id == "tiny:style"
    assert base.find_adapter("tiny", "style") == added


def test_minimal_record_round_trips_nulls(base: SqlStore) -> None:
    rec = AdapterRecord(base_model="tiny", name="bare", format=AdapterFormat.GGUF_LORA, digest=D2, size_bytes=0)
    added = base.add_adapter(rec)
    got = base.get_adapter("tiny", "bare")
    assert got == added
    assert got.rank is None and got.alpha is None and got.source is None and got.gguf_digest is None
    assert got.target_modules == [] and got.parameters == {}
    assert got.format is AdapterFormat.GGUF_LORA


def test_json_round_trip(base: SqlStore) -> None:
    modules = ["z_proj", "q_proj", "gate_proj", "ü_proj"]  # order kept, not sorted
    params = {"peft_type": "LORA", "eos": [2, 32000], "nested": {"a": None, "b": 1.5, "ü": "✓"}, "flag": True}
    base.add_adapter(_adapter(target_modules=modules, parameters=params))
    got = base.get_adapter("tiny", "style")
    assert got.target_modules == modules
    assert got.parameters == params


def test_created_at_is_aware_utc(base: SqlStore) -> None:
    before = datetime.now(UTC)
    added = base.add_adapter(_adapter())
    got = base.get_adapter("tiny", "style")
    assert got.created_at is not None and got.created_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= got.created_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert added.created_at == got.created_at
    when = datetime(2024, 5, 1, 12, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    base.add_adapter(_adapter("other", created_at=when))
    other = base.get_adapter("tiny", "other").created_at
    assert other == when and other is not None and other.utcoffset() == timedelta(0) and other.hour == 10


def test_missing_adapter_not_found(base: SqlStore) -> None:
    assert base.find_adapter("tiny", "ghost") is None
    assert base.find_adapter("no-base", "ghost") is None
    for call in (base.get_adapter, base.delete_adapter):
        with pytest.raises(PlinthError) as ei:
            call("tiny", "ghost")
        assert ei.value.code is ErrorCode.NOT_FOUND
        assert ei.value.message == "adapter tiny:ghost does not exist"
        assert ei.value.http_status == 404
    with pytest.raises(PlinthError) as ei:
        base.update_adapter_gguf("tiny", "ghost", D2)
    assert ei.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(PlinthError) as ei:
        base.get_adapter("no-base", "ghost")
    assert ei.value.code is ErrorCode.NOT_FOUND
    assert ei.value.message == "adapter no-base:ghost does not exist"


def test_list_ordered_by_base_then_name(store: SqlStore) -> None:
    assert store.list_adapters() == []
    for m in ["b-base", "A-base", "a-base"]:
        store.add_model(_model(m))
    for b, n in [("b-base", "y"), ("a-base", "z"), ("A-base", "q"), ("a-base", "b"), ("b-base", "a"), ("a-base", "B")]:
        store.add_adapter(_adapter(n, base=b))
    assert [a.model_id for a in store.list_adapters()] == [
        "A-base:q",
        "a-base:B",
        "a-base:b",
        "a-base:z",
        "b-base:a",
        "b-base:y",
    ]
    assert [a.name for a in store.list_adapters("a-base")] == ["B", "b", "z"]
    assert [a.name for a in store.list_adapters("b-base")] == ["a", "y"]
    assert store.list_adapters("no-such-base") == []


def test_delete_returns_record_and_frees_name(base: SqlStore) -> None:
    added = base.add_adapter(_adapter())
    base.add_adapter(_adapter("keep"))
    assert base.delete_adapter("tiny", "style") == added
    assert base.find_adapter("tiny", "style") is None
    assert [a.name for a in base.list_adapters()] == ["keep"]
    assert base.get_model("tiny").name == "tiny"  # the base is untouched
    base.add_adapter(_adapter())  # the name is free again


# -- uniqueness and the base model -----------------------------------------------------------
def test_duplicate_name_per_base_already_exists(base: SqlStore) -> None:
    base.add_adapter(_adapter())
    with pytest.raises(PlinthError) as ei:
        base.add_adapter(_adapter(digest=D2))
    assert ei.value.code is ErrorCode.ALREADY_EXISTS
    assert "tiny:style" in ei.value.message
    assert ei.value.details["kind"] == "adapter"
    assert len(base.list_adapters()) == 1 and base.get_adapter("tiny", "style").digest == D1
    # the failed insert rolled back cleanly: the store still works
    base.add_adapter(_adapter("style-2"))
    assert [a.name for a in base.list_adapters()] == ["style", "style-2"]


def test_same_name_under_two_bases(base: SqlStore) -> None:
    base.add_model(_model("other"))
    a = base.add_adapter(_adapter(base="tiny"))
    b = base.add_adapter(_adapter(base="other", digest=D2))
    assert a.id != b.id
    assert base.get_adapter("tiny", "style").digest == D1
    assert base.get_adapter("other", "style").digest == D2
    assert [x.model_id for x in base.list_adapters()] == ["other:style", "tiny:style"]


def test_duplicate_id_already_exists(base: SqlStore) -> None:
    assert base.add_adapter(_adapter(id="e" * 32)).id == "e" * 32
    with pytest.raises(PlinthError) as ei:
        base.add_adapter(replace(_adapter("other"), id="e" * 32))
    assert ei.value.code is ErrorCode.ALREADY_EXISTS
    assert "id" in ei.value.message


def test_missing_base_model_not_found(store: SqlStore) -> None:
    with pytest.raises(PlinthError) as ei:
        store.add_adapter(_adapter(base="ghost"))
    assert ei.value.code is ErrorCode.MODEL_NOT_FOUND
    assert ei.value.message == "model 'ghost' does not exist"
    assert store.list_adapters() == []


def test_database_enforces_foreign_key(base: SqlStore) -> None:
    """Below the store's own check: the database rejects an adapter of a missing base
    (on SQLite this needs PRAGMA foreign_keys=ON on the connection)."""
    insert = text(
        "INSERT INTO adapters"
        " (id, base_model, name, format, digest, size_bytes, target_modules, parameters, created_at)"
        " VALUES (:id, :base, 'x', 'gguf-lora', :digest, 1, '[]', '{}', :now)"
    )
    with pytest.raises(IntegrityError), base.engine.begin() as conn:
        conn.execute(insert, {"id": "a" * 32, "base": "ghost", "digest": D1, "now": datetime.now(UTC)})
    assert base.list_adapters() == []


def test_deleting_base_model_cascades(base: SqlStore) -> None:
    base.add_model(_model("other"))
    base.add_adapter(_adapter("one", digest=D1))
    base.add_adapter(_adapter("two", digest=D2, gguf_digest=D3))
    base.add_adapter(_adapter("one", base="other", digest=D3))
    base.delete_model("tiny")
    assert [a.model_id for a in base.list_adapters()] == ["other:one"]
    assert base.list_adapters("tiny") == []
    assert base.find_adapter("tiny", "one") is None
    assert base.count_adapters_with_digest(D1) == 0
    assert base.count_adapters_with_digest(D2) == 0
    assert base.count_adapters_with_digest(D3) == 1
    # a new model of the same name starts without adapters
    base.add_model(_model("tiny"))
    assert base.list_adapters("tiny") == []
    base.add_adapter(_adapter("one"))


# -- digests ---------------------------------------------------------------------------------
def test_count_adapters_with_digest(base: SqlStore) -> None:
    base.add_model(_model("other", digest=D3))  # models do not count here
    base.add_adapter(_adapter("peft", digest=D1, gguf_digest=D2))  # converted: two blobs
    base.add_adapter(_adapter("gguf", format=AdapterFormat.GGUF_LORA, digest=D2, gguf_digest=D2))  # same blob twice
    base.add_adapter(_adapter("peft", base="other", digest=D1))  # not converted
    assert base.count_adapters_with_digest(D1) == 2
    assert base.count_adapters_with_digest(D2) == 2  # one via gguf_digest, one via both columns (counted once)
    assert base.count_adapters_with_digest(D3) == 0
    assert base.count_models_with_digest(D3) == 1
    base.delete_adapter("tiny", "gguf")
    assert base.count_adapters_with_digest(D2) == 1
    base.delete_adapter("tiny", "peft")
    assert base.count_adapters_with_digest(D2) == 0
    assert base.count_adapters_with_digest(D1) == 1


def test_update_adapter_gguf(base: SqlStore) -> None:
    added = base.add_adapter(_adapter())
    updated = base.update_adapter_gguf("tiny", "style", D2)
    assert updated == replace(added, gguf_digest=D2)
    assert base.get_adapter("tiny", "style") == updated
    assert base.count_adapters_with_digest(D2) == 1
    cleared = base.update_adapter_gguf("tiny", "style", None)
    assert cleared.gguf_digest is None and cleared == added
    assert base.count_adapters_with_digest(D2) == 0
    assert base.get_adapter("tiny", "style").gguf_digest is None


# -- invalid values --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("target_modules", "q_proj"),
        ("target_modules", ["q_proj", 3]),
        ("parameters", {"x": object()}),
        ("parameters", {"x": float("nan")}),
        ("alpha", float("inf")),
        ("format", "lora-v9"),
    ],
)
def test_invalid_values_rejected(base: SqlStore, field: str, value: object) -> None:
    with pytest.raises(PlinthError) as ei:
        base.add_adapter(_adapter(**{field: value}))
    assert ei.value.code is ErrorCode.INVALID_REQUEST
    assert ei.value.param == field
    assert base.list_adapters() == []


def test_value_too_long_for_column_is_invalid_request(base: SqlStore) -> None:
    if base.dialect_name == "sqlite":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    with pytest.raises(PlinthError) as ei:
        base.add_adapter(_adapter(digest="x" * 200))
    assert ei.value.code is ErrorCode.INVALID_REQUEST
    assert "tiny:style" in ei.value.message
    base.add_adapter(_adapter())
    with pytest.raises(PlinthError) as ei:
        base.update_adapter_gguf("tiny", "style", "y" * 200)
    assert ei.value.code is ErrorCode.INVALID_REQUEST
    assert base.get_adapter("tiny", "style").gguf_digest is None


# -- concurrency (SQLite) --------------------------------------------------------------------
def test_sqlite_concurrent_adapter_writers(sqlite_url: str) -> None:
    with SqlStore(sqlite_url) as s:
        s.migrate()
        s.add_model(_model())
    n_threads, per_thread = 4, 15
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def writer(t: int) -> None:
        try:
            with SqlStore(sqlite_url) as own:
                start.wait()
                for i in range(per_thread):
                    own.add_adapter(_adapter(f"a-{t}-{i}"))
                    if i % 3 == 0:
                        own.update_adapter_gguf("tiny", f"a-{t}-{i}", D2)
                        own.list_adapters("tiny")
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    with SqlStore(sqlite_url) as s:
        assert len(s.list_adapters("tiny")) == n_threads * per_thread
        assert s.count_adapters_with_digest(D2) == n_threads * 5
