"""JobService: everything refused before a job exists, idempotency, queues, priority classes,
and the executor registry."""

from __future__ import annotations

import pytest

from plinth.domain.jobs import JobState, Resources
from plinth.errors import ErrorCode, PlinthError
from plinth.jobs import executor_entry, register_executor
from plinth.jobs.resources import parse_bytes

GiB = 1 << 30


def _refused(fn, code: ErrorCode = ErrorCode.INVALID_REQUEST) -> PlinthError:  # type: ignore[no-untyped-def]
    with pytest.raises(PlinthError) as e:
        fn()
    assert e.value.code is code, e.value.message
    return e.value


@pytest.fixture
def sqlite_only(store_url: str) -> None:
    if not store_url.startswith("sqlite"):
        pytest.skip("validation does not depend on the database; the store suite covers Postgres")


def test_bad_submissions_are_refused_before_anything_is_stored(sqlite_only, jobs_env) -> None:  # type: ignore[no-untyped-def]
    jobs = jobs_env.jobs
    e = _refused(lambda: jobs.submit("nope"))
    assert e.param == "kind" and "selftest" in e.message
    e = _refused(lambda: jobs.submit("selftest", {"steps": 0}))
    assert e.param == "spec.steps" and "from 1 to 1000000" in e.message
    e = _refused(lambda: jobs.submit("selftest", {"stepz": 3}))
    assert "unknown field(s) stepz" in e.message
    e = _refused(lambda: jobs.submit("selftest", [1, 2]))  # type: ignore[arg-type]
    assert e.param == "spec"
    e = _refused(lambda: jobs.submit("selftest", {"result": {"x": float("nan")}}))
    assert e.param == "spec"
    e = _refused(lambda: jobs.submit("selftest", queue="missing"))
    assert e.param == "queue" and "'missing' does not exist" in e.message
    e = _refused(lambda: jobs.submit("selftest", priority_class="urgent"))
    assert e.param == "priority_class" and "high, normal, low" in e.message
    e = _refused(lambda: jobs.submit("selftest", resources=Resources(cpu=64, memory=GiB)))
    assert e.param == "resources" and "more than any machine offers" in e.message
    e = _refused(lambda: jobs.submit("selftest", resources=Resources(cpu=0, memory=GiB)))
    assert e.param == "resources.cpu"
    e = _refused(lambda: jobs.submit("selftest", labels={"bad key!": "x"}))
    assert e.param == "labels"
    e = _refused(lambda: jobs.submit("selftest", idempotency_key="x" * 300))
    assert e.param == "Idempotency-Key"
    e = _refused(lambda: jobs.submit("selftest", {"result": {"pad": "x" * 300_000}}))
    assert "at most 262144" in e.message
    jobs.create_queue("tiny", Resources(cpu=1, memory=GiB))
    e = _refused(lambda: jobs.submit("selftest", queue="tiny", resources=Resources(cpu=2, memory=GiB)))
    assert "queue 'tiny' allows at most 1 CPU" in e.message and "could never run" in e.message
    assert jobs.list() == []


def test_idempotent_submission(sqlite_only, jobs_env) -> None:  # type: ignore[no-untyped-def]
    jobs = jobs_env.jobs
    a, created = jobs.submit_request("selftest", {"steps": 2}, idempotency_key="order-42")
    b, again = jobs.submit_request("selftest", {"steps": 2}, idempotency_key="order-42")
    assert created and not again and a.id == b.id
    # Defaults given explicitly are the same request.
    c, _ = jobs.submit_request("selftest", {"steps": 2}, idempotency_key="order-42", queue="default", priority_class="normal")
    assert c.id == a.id
    e = _refused(lambda: jobs.submit("selftest", {"steps": 3}, idempotency_key="order-42"), ErrorCode.CONFLICT)
    assert a.id in e.message and e.details["job_id"] == a.id
    assert len(jobs.list()) == 1
    # A replay still answers after the job finished.
    jobs.cancel(a.id)
    assert jobs.submit("selftest", {"steps": 2}, idempotency_key="order-42").state is JobState.CANCELLED


def test_queues_and_priority_classes(sqlite_only, jobs_env) -> None:  # type: ignore[no-untyped-def]
    jobs = jobs_env.jobs
    assert [(p.name, p.value) for p in jobs.list_priority_classes()] == [("high", 1000), ("normal", 500), ("low", 100)]
    default = jobs.get_queue("default")
    assert default.quota == Resources(4, 8 * GiB, 0)  # the worker_* settings of the fixture
    e = _refused(lambda: jobs.create_queue("huge", Resources(cpu=5, memory=GiB)))
    assert e.param == "quota" and "larger than the machines offer" in e.message and "cpu" in e.message
    _refused(lambda: jobs.create_queue("Bad Name", Resources(1, GiB)))
    _refused(lambda: jobs.create_queue("default", Resources(1, GiB)), ErrorCode.ALREADY_EXISTS)
    _refused(lambda: jobs.delete_queue("default"))
    _refused(lambda: jobs.update_queue("default", quota=Resources(cpu=1, memory=64 * GiB)))
    jobs.create_priority_class("critical", 5000, "pager duty")
    job = jobs.submit("selftest", priority_class="critical")
    assert job.priority == 5000 and job.priority_class == "critical"
    _refused(lambda: jobs.delete_priority_class("normal"))
    jobs.delete_priority_class("critical")
    assert jobs.get(job.id).priority == 5000  # jobs keep their value
    _refused(lambda: jobs.create_priority_class("weird", 10**12))


def test_job_ids_are_checked_before_use(sqlite_only, jobs_env) -> None:  # type: ignore[no-untyped-def]
    jobs = jobs_env.jobs
    for bad in ("../../etc", "job-xyz", ""):
        _refused(lambda bad=bad: jobs.get(bad), ErrorCode.NOT_FOUND)
        _refused(lambda bad=bad: jobs.logs(bad), ErrorCode.NOT_FOUND)
    _refused(lambda: jobs.get("job-00000000000000000000"), ErrorCode.NOT_FOUND)
    _refused(lambda: jobs.list(limit=0))


def test_follow_yields_lines_and_the_end(sqlite_only, jobs_env) -> None:  # type: ignore[no-untyped-def]
    jobs = jobs_env.jobs
    job = jobs.submit("selftest", {"steps": 2, "sleep_s": 0.01})
    events = list(jobs.follow(job.id, poll_s=0.05, timeout_s=0.3))  # no worker: times out while queued
    assert [ev.type for ev in events] == ["job", "log"] and events[1].line.line.startswith("submitted")
    jobs_env.worker()
    events = list(jobs.follow(job.id, poll_s=0.05, timeout_s=60))
    assert events[-1].type == "end" and events[-1].job.state is JobState.SUCCEEDED
    text = [ev.line.line for ev in events if ev.type == "log"]
    assert text[0].startswith("submitted") and text[-1] == "attempt 1 succeeded" and len(text) == len(set(text))


def test_registry() -> None:
    entry = executor_entry("selftest")
    assert entry.run == "plinth.jobs.selftest:run" and entry.default_resources is not None
    assert (
        register_executor(
            "selftest", entry.run, validate=entry.validate, description=entry.description, default_resources=entry.default_resources
        )
        == entry
    )  # same entry again: a no-op
    with pytest.raises(PlinthError) as e:
        register_executor("selftest", "somewhere.else:run")
    assert e.value.code is ErrorCode.ALREADY_EXISTS
    with pytest.raises(PlinthError):
        register_executor("Bad Kind", "a.b:c")
    with pytest.raises(PlinthError):
        register_executor("ok-kind", "not a target")


@pytest.mark.parametrize(
    ("text", "value"),
    [("4GiB", 4 << 30), ("512M", 512_000_000), ("1.5Gi", 3 << 29), ("1073741824", 1 << 30), (2048, 2048), ("10 kb", 10_000)],
)
def test_parse_bytes(text: str | int, value: int) -> None:
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["four", "4XB", "-1", "", "1e9"])
def test_parse_bytes_refuses(text: str) -> None:
    with pytest.raises(PlinthError):
        parse_bytes(text)
