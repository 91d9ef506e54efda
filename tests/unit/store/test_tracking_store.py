"""Runs, metrics, artifacts and the registry in the metadata store, on SQLite and Postgres."""

from __future__ import annotations

import threading
from uuid import uuid4

import pytest

from plinth.domain.tracking import ArtifactKind, EvalReport, MetricPoint, ModelVersion, Run, RunArtifact, RunStatus
from plinth.errors import ErrorCode, PlinthError
from plinth.store.sql import SqlStore


def _run(store: SqlStore, **kw) -> Run:  # type: ignore[no-untyped-def]
    return store.create_run(Run(id=uuid4().hex, name=kw.pop("name", "r"), kind=kw.pop("kind", "lora"), status=RunStatus.RUNNING, **kw))


def test_runs_lifecycle_and_filters(store: SqlStore) -> None:
    a = _run(store, name="a", params={"lr": 0.1, "lora": {"rank": 8}}, job_id="job-1", base_model="m", dataset="d@1")
    b = _run(store, name="b", kind="eval")
    assert store.get_run(a.id).params == {"lr": 0.1, "lora": {"rank": 8}}
    assert store.find_run_by_job("job-1").id == a.id  # type: ignore[union-attr]
    assert {r.id for r in store.list_runs(kind="eval")} == {b.id}
    done = store.update_run(a.id, status=RunStatus.FINISHED, summary={"loss": 1.5}, ended=True)
    assert done.status == RunStatus.FINISHED and done.ended_at is not None and done.summary == {"loss": 1.5}
    merged = store.update_run(a.id, summary={"val": 2.0})
    assert merged.summary == {"loss": 1.5, "val": 2.0}
    assert [r.id for r in store.list_runs(status=RunStatus.RUNNING)] == [b.id]
    with pytest.raises(PlinthError) as e:
        store.get_run("nope")
    assert e.value.code == ErrorCode.NOT_FOUND
    with pytest.raises(PlinthError) as e:
        _run(store, params={"bad": float("nan")})
    assert e.value.code == ErrorCode.INVALID_REQUEST


def test_metrics_are_ordered_and_a_step_logged_again_replaces_it(store: SqlStore) -> None:
    r = _run(store)
    store.log_metrics(r.id, [MetricPoint("train/loss", s, 3.0 - s / 10) for s in range(1, 6)])
    store.log_metrics(r.id, [MetricPoint("val/loss", 5, 2.5)])
    # a resumed run logs steps 4-5 again
    store.log_metrics(r.id, [MetricPoint("train/loss", 4, 9.0), MetricPoint("train/loss", 5, 8.0)])
    m = store.get_metrics(r.id)
    assert [p.step for p in m["train/loss"]] == [1, 2, 3, 4, 5]
    assert [p.value for p in m["train/loss"]][-2:] == [9.0, 8.0]
    assert list(store.get_metrics(r.id, ["val/loss"])) == ["val/loss"]
    with pytest.raises(PlinthError):
        store.log_metrics(r.id, [MetricPoint("x", 1, float("inf"))])
    with pytest.raises(PlinthError) as e:
        store.log_metrics("missing", [MetricPoint("x", 1, 1.0)])
    assert e.value.code == ErrorCode.NOT_FOUND


def test_artifacts_and_cascade(store: SqlStore) -> None:
    r = _run(store)
    store.add_run_artifact(RunArtifact(r.id, "adapter", ArtifactKind.ADAPTER, "sha256:" + "a" * 64, 10))
    store.add_run_artifact(RunArtifact(r.id, "adapter", ArtifactKind.ADAPTER, "sha256:" + "b" * 64, 12))  # replaced
    (only,) = store.list_run_artifacts(r.id)
    assert only.digest.endswith("b" * 64) and only.size_bytes == 12
    store.log_metrics(r.id, [MetricPoint("x", 1, 1.0)])
    store.delete_run(r.id)
    assert store.list_run_artifacts(r.id) == [] and store.get_metrics(r.id) == {}


def _version(name: str, **kw) -> ModelVersion:  # type: ignore[no-untyped-def]
    base = dict(
        name=name,
        version=0,
        kind="adapter",
        base_model="base",
        base_digest="sha256:x",
        served_as=f"base:{name}-v{{version}}",
        artifact_digest="sha256:y",
    )
    return ModelVersion(**{**base, **kw})


def test_registry_versions_aliases_reports(store: SqlStore) -> None:
    store.create_registered_model("acme", "desc")
    with pytest.raises(PlinthError) as e:
        store.create_registered_model("acme")
    assert e.value.code == ErrorCode.ALREADY_EXISTS
    r = _run(store)
    v1 = store.add_model_version(_version("acme", run_id=r.id, dataset="d@1", recipe={"rank": 8}, metrics={"loss": 1.0}))
    v2 = store.add_model_version(_version("acme"))
    assert (v1.version, v2.version) == (1, 2)
    assert v1.served_as == "base:acme-v1" and v2.served_as == "base:acme-v2"
    store.set_model_version_digest("acme", 1, "sha256:z")
    store.update_model_version_card("acme", 1, "# card")
    got = store.get_model_version("acme", 1)
    assert got.artifact_digest == "sha256:z" and got.model_card == "# card" and got.recipe == {"rank": 8}
    store.set_alias("acme", "production", 1)
    store.set_alias("acme", "production", 2)
    store.set_alias("acme", "staging", 1)
    rm = store.get_registered_model("acme")
    assert rm.latest_version == 2 and rm.aliases == {"production": 2, "staging": 1}
    with pytest.raises(PlinthError) as e:
        store.set_alias("acme", "x", 9)
    assert e.value.code == ErrorCode.NOT_FOUND
    store.add_eval_report(
        EvalReport(
            id=uuid4().hex,
            model="acme@1",
            dataset="d@1",
            split="validation",
            metrics={"rouge_l": 0.3},
            registry_name="acme",
            registry_version=1,
        )
    )
    assert [x.metrics for x in store.list_eval_reports(registry_name="acme", registry_version=1)] == [{"rouge_l": 0.3}]
    assert [v.version for v in store.find_versions_by_served_id("base:acme-v2")] == [2]
    store.delete_model_version("acme", 1)  # its alias goes with it
    assert store.get_registered_model("acme").aliases == {"production": 2}
    store.delete_run(r.id)  # a version survives its run (run_id set null)
    gone = store.delete_registered_model("acme")
    assert [v.version for v in gone] == [2]
    assert store.find_registered_model("acme") is None


def test_concurrent_writers_get_distinct_version_numbers(store_url: str) -> None:
    s = SqlStore(store_url)
    s.migrate()
    s.create_registered_model("busy")
    numbers: list[int] = []
    errors: list[BaseException] = []

    def add() -> None:
        w = SqlStore(store_url)
        try:
            for _ in range(3):
                numbers.append(w.add_model_version(_version("busy")).version)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            w.close()

    threads = [threading.Thread(target=add) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s.close()
    assert not errors
    assert sorted(numbers) == list(range(1, 13))
