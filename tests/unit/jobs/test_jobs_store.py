"""The job queue in the metadata store, on SQLite and Postgres: jobs, idempotency, fencing,
leases and reaping, and scheduling passes that never overrun a quota."""

from __future__ import annotations

import functools
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from plinth.domain.jobs import (
    Job,
    JobFilter,
    JobProgress,
    JobReason,
    JobState,
    PriorityClass,
    Queue,
    Resources,
    StopRequest,
    WorkerInfo,
    new_job_id,
)
from plinth.errors import ErrorCode, PlinthError
from plinth.jobs.scheduler import plan
from plinth.store.sql import SqlStore

GiB = 1 << 30
BIG = Resources(64, 512 * GiB, 8)


def make_job(
    queue: str = "q", priority: int = 500, cpu: int = 1, *, key: str | None = None, labels: dict | None = None, max_restarts: int = 2
) -> Job:  # type: ignore[type-arg]
    now = datetime.now(UTC)
    return Job(
        id=new_job_id(int(now.timestamp() * 1000), uuid.uuid4().hex),
        kind="selftest",
        spec={"steps": 1},
        queue=queue,
        priority_class="normal",
        priority=priority,
        resources=Resources(cpu, GiB, 0),
        idempotency_key=key,
        request_hash="sha256:" + "0" * 64 if key else None,
        labels=labels or {},
        max_restarts=max_restarts,
        created_at=now,
    )


@pytest.fixture
def qstore(store: SqlStore) -> SqlStore:
    store.add_queue(Queue("q", Resources(4, 16 * GiB, 0)))
    store.register_worker(WorkerInfo(id="w1", hostname="elsewhere", pid=1, capacity=BIG))
    store.register_worker(WorkerInfo(id="w2", hostname="elsewhere", pid=2, capacity=BIG))
    return store


def schedule(
    store: SqlStore,
    worker: str | None = "w1",
    *,
    now: datetime | None = None,
    lease_s: float = 30,
    free: Resources = BIG,
    dead: tuple[str, ...] = (),
):  # type: ignore[no-untyped-def]
    now = now or datetime.now(UTC)
    return store.schedule(
        worker,
        functools.partial(plan, worker_free=free if worker else None, free_gpu_ids=range(8)),
        now=now,
        lease_until=now + timedelta(seconds=lease_s),
        dead_workers=dead,
    )


def test_queues_and_priority_classes(store: SqlStore) -> None:
    store.ensure_priority_classes([PriorityClass("low", 100), PriorityClass("high", 1000)])
    store.ensure_priority_classes([PriorityClass("low", 7)])  # existing ones are left alone
    assert [(p.name, p.value) for p in store.list_priority_classes()] == [("high", 1000), ("low", 100)]
    with pytest.raises(PlinthError) as e:
        store.add_priority_class(PriorityClass("low", 1))
    assert e.value.code is ErrorCode.ALREADY_EXISTS
    q = store.ensure_queue(Queue("q", Resources(2, GiB, 0)))
    assert store.ensure_queue(Queue("q", Resources(9, GiB, 0))).quota == q.quota
    assert store.update_queue("q", quota=Resources(3, 2 * GiB, 1)).quota == Resources(3, 2 * GiB, 1)
    store.delete_priority_class("low")
    with pytest.raises(PlinthError) as e:
        store.get_priority_class("low")
    assert e.value.code is ErrorCode.NOT_FOUND


def test_add_get_list_and_labels(qstore: SqlStore) -> None:
    a, created = qstore.add_job(make_job(labels={"team": "claims"}))
    assert created and a.state is JobState.QUEUED and a.attempt == 0
    b, _ = qstore.add_job(make_job(labels={"team": "billing"}))
    assert qstore.get_job(a.id).labels == {"team": "claims"}
    assert [j.id for j in qstore.list_jobs(JobFilter())] == [b.id, a.id]  # newest first
    assert [j.id for j in qstore.list_jobs(JobFilter(labels={"team": "claims"}))] == [a.id]
    assert [j.id for j in qstore.list_jobs(JobFilter(before=b.id))] == [a.id]
    assert qstore.list_jobs(JobFilter(states=(JobState.RUNNING,))) == []
    with pytest.raises(PlinthError) as e:
        qstore.add_job(make_job(queue="nope"))
    assert e.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(PlinthError) as e:
        qstore.add_job(make_job(cpu=5))  # the quota is 4
    assert e.value.code is ErrorCode.INVALID_REQUEST and "could never run" in e.value.message
    logs = qstore.job_logs(a.id)
    assert [ln.stream for ln in logs] == ["system"] and "submitted" in logs[0].line


def test_idempotency_key_returns_the_first_job_even_when_racing(qstore: SqlStore, store_url: str) -> None:
    first, created = qstore.add_job(make_job(key="k-1"))
    again, created2 = qstore.add_job(make_job(key="k-1"))
    assert created and not created2 and again.id == first.id
    results: list[tuple[str, bool]] = []

    def submit() -> None:
        with SqlStore(store_url) as s:
            job, made = s.add_job(make_job(key="k-race"))
            results.append((job.id, made))

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({jid for jid, _ in results}) == 1
    assert sum(made for _, made in results) == 1
    assert len(qstore.list_jobs(JobFilter(limit=100))) == 2


def test_admission_respects_priority_and_quota(qstore: SqlStore) -> None:
    low, _ = qstore.add_job(make_job(priority=100, cpu=2))
    high, _ = qstore.add_job(make_job(priority=1000, cpu=2))
    mid, _ = qstore.add_job(make_job(priority=500, cpu=2))
    out = schedule(qstore)
    assert [j.id for j in out.admitted] == [high.id, mid.id]
    h = qstore.get_job(high.id)
    assert h.state is JobState.RUNNING and h.attempt == 1 and h.worker_id == "w1" and h.lease_expires_at is not None
    assert qstore.get_job(low.id).state is JobState.QUEUED
    usage = qstore.queue_usage()["q"]
    assert usage["running"] == 2 and usage["queued"] == 1 and usage["used"] == Resources(4, 2 * GiB, 0)
    assert schedule(qstore, "w2").admitted == []  # the quota is full for every worker


def test_concurrent_passes_never_overrun_the_quota(qstore: SqlStore, store_url: str) -> None:
    for _ in range(12):
        qstore.add_job(make_job(cpu=1))
    admitted: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def worker(wid: str) -> None:
        with SqlStore(store_url) as s:
            s.register_worker(WorkerInfo(id=wid, hostname="h", pid=9, capacity=BIG))
            barrier.wait()
            for _ in range(5):
                out = schedule(s, wid)
                with lock:
                    admitted.extend(j.id for j in out.admitted)

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 4 == len(set(admitted))  # a quota of 4 CPUs, 1 each, no job twice
    running = qstore.list_jobs(JobFilter(states=(JobState.RUNNING,)))
    assert sorted(j.id for j in running) == sorted(admitted)


def test_writes_are_fenced_by_attempt(qstore: SqlStore) -> None:
    job, _ = qstore.add_job(make_job())
    schedule(qstore)
    ctl = qstore.report_job(job.id, 1, progress=JobProgress(done=3, total=10, message="m"), logs=["one", "two"])
    assert ctl is not None and ctl.state is JobState.RUNNING and ctl.attempt == 1
    assert qstore.get_job(job.id).progress.done == 3
    # A stale attempt writes nothing and cannot finish the job.
    qstore.report_job(job.id, 0, progress=JobProgress(done=9, total=10), logs=["stale"])
    assert qstore.get_job(job.id).progress.done == 3
    assert qstore.finish_job(job.id, 0, JobState.SUCCEEDED, JobReason.COMPLETED) is None
    assert qstore.requeue_job(job.id, 2, JobReason.PREEMPTED) is None
    done = qstore.finish_job(job.id, 1, JobState.SUCCEEDED, JobReason.COMPLETED, result={"ok": True})
    assert done is not None and done.state is JobState.SUCCEEDED and done.result == {"ok": True}
    assert qstore.finish_job(job.id, 1, JobState.FAILED, JobReason.EXECUTOR_ERROR) is None  # already over
    lines = [ln.line for ln in qstore.job_logs(job.id)]
    assert "one" in lines and "two" in lines and "stale" not in lines
    assert [ln.line for ln in qstore.job_logs(job.id, tail=1)] == ["attempt 1 succeeded"]


def test_expired_leases_are_requeued_then_failed(qstore: SqlStore) -> None:
    job, _ = qstore.add_job(make_job(max_restarts=1))
    t = datetime.now(UTC)
    schedule(qstore, now=t, lease_s=5)
    # Before the lease ends nothing is reaped; after it, the job is back in the queue.
    assert schedule(qstore, None, now=t + timedelta(seconds=4)).requeued == []
    out = schedule(qstore, None, now=t + timedelta(seconds=6))
    assert [j.id for j in out.requeued] == [job.id]
    j = qstore.get_job(job.id)
    assert j.state is JobState.QUEUED and j.reason is JobReason.WORKER_LOST and j.restarts == 1 and j.worker_id is None
    schedule(qstore, "w2", now=t + timedelta(seconds=7), lease_s=5)
    assert qstore.get_job(job.id).attempt == 2
    out = schedule(qstore, None, now=t + timedelta(seconds=13))
    assert [j.id for j in out.failed] == [job.id]
    j = qstore.get_job(job.id)
    assert j.state is JobState.FAILED and j.reason is JobReason.WORKER_LOST and "gave up after 1 restart" in (j.message or "")


def test_dead_workers_are_reaped_at_once_and_pending_cancels_win(qstore: SqlStore) -> None:
    a, _ = qstore.add_job(make_job())
    b, _ = qstore.add_job(make_job())
    schedule(qstore, "w1")
    qstore.cancel_job(b.id)  # running: only asked to stop
    assert qstore.get_job(b.id).stop_request is StopRequest.CANCEL
    out = schedule(qstore, None, dead=("w1",))
    assert [j.id for j in out.requeued] == [a.id] and [j.id for j in out.cancelled] == [b.id]
    assert qstore.get_job(b.id).state is JobState.CANCELLED
    assert "w1" not in {w.id for w in qstore.list_workers()}


def test_heartbeat_renews_leases_and_reports_stop_requests(qstore: SqlStore) -> None:
    job, _ = qstore.add_job(make_job())
    t = datetime.now(UTC)
    schedule(qstore, now=t, lease_s=5)
    ctl = qstore.worker_heartbeat("w1", now=t + timedelta(seconds=4), lease_until=t + timedelta(seconds=60))
    assert ctl[job.id].stop_request is None
    assert schedule(qstore, None, now=t + timedelta(seconds=30)).requeued == []  # renewed
    assert qstore.request_stop([job.id], StopRequest.PREEMPT, preempted_by="job-x") == [job.id]
    qstore.cancel_job(job.id)
    assert qstore.request_stop([job.id], StopRequest.PREEMPT) == []  # a cancel is never downgraded
    assert qstore.worker_heartbeat("w1", now=t, lease_until=t + timedelta(seconds=60))[job.id].stop_request is StopRequest.CANCEL


def test_preemption_requeues_keeping_place_and_counts(qstore: SqlStore) -> None:
    low, _ = qstore.add_job(make_job(priority=100, cpu=4))
    schedule(qstore)
    high, _ = qstore.add_job(make_job(priority=1000, cpu=4))
    out = schedule(qstore, "w2")
    assert out.admitted == [] and [(p.victim.id, p.preemptor.id) for p in out.preempted] == [(low.id, high.id)]
    assert qstore.get_job(low.id).stop_request is StopRequest.PREEMPT
    assert schedule(qstore, "w2").preempted == []  # asked once
    queued_at = qstore.get_job(low.id).queued_at
    requeued = qstore.requeue_job(low.id, 1, JobReason.PREEMPTED, message="checkpointed")
    assert requeued is not None and requeued.state is JobState.QUEUED and requeued.preemptions == 1
    assert requeued.restarts == 0 and requeued.queued_at == queued_at
    assert [j.id for j in schedule(qstore, "w2").admitted] == [high.id]


def test_cancel_retry_delete(qstore: SqlStore) -> None:
    job, _ = qstore.add_job(make_job())
    assert qstore.cancel_job(job.id).state is JobState.CANCELLED
    with pytest.raises(PlinthError) as e:
        qstore.cancel_job(job.id)
    assert e.value.code is ErrorCode.CONFLICT
    retried = qstore.retry_job(job.id)
    assert retried.state is JobState.QUEUED and retried.reason is JobReason.RETRIED
    with pytest.raises(PlinthError) as e:
        qstore.retry_job(job.id)
    assert e.value.code is ErrorCode.CONFLICT
    with pytest.raises(PlinthError) as e:
        qstore.delete_job(job.id)
    assert e.value.code is ErrorCode.CONFLICT
    qstore.cancel_job(job.id)
    qstore.delete_job(job.id)
    with pytest.raises(PlinthError) as e:
        qstore.get_job(job.id)
    assert e.value.code is ErrorCode.NOT_FOUND


def test_queue_changes_that_would_strand_jobs_are_refused(qstore: SqlStore) -> None:
    job, _ = qstore.add_job(make_job(cpu=3))
    with pytest.raises(PlinthError) as e:
        qstore.update_queue("q", quota=Resources(2, 16 * GiB, 0))
    assert e.value.code is ErrorCode.CONFLICT and job.id in e.value.message
    with pytest.raises(PlinthError) as e:
        qstore.delete_queue("q")
    assert e.value.code is ErrorCode.CONFLICT
    qstore.cancel_job(job.id)
    qstore.delete_queue("q")  # finished jobs go with it
    with pytest.raises(PlinthError):
        qstore.get_job(job.id)
