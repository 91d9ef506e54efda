"""Workers running real job processes: success, failure, cancel, preemption with checkpoint and
resume, killed job processes, memory limits, and a SIGKILLed worker process restarted.

The ``selftest`` kind is used throughout; it writes a trace of every step (attempt, pid,
time) next to its checkpoint, from which the tests check resumption and that two attempts
of one job never ran at once.
"""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

from plinth.domain.jobs import JobReason, JobState, Queue, Resources, WorkerInfo
from plinth.jobs.scheduler import plan
from tests.unit.jobs.helpers import assert_attempts_never_overlap, trace, wait_for

MiB = 1 << 20
pytestmark = pytest.mark.slow


def _sqlite_only(url: str) -> None:
    if not url.startswith("sqlite"):
        pytest.skip("process-level behaviour does not depend on the database; covered on SQLite")


def lines(env, job_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [ln.line for ln in env.jobs.logs(job_id)]


def test_job_runs_in_its_own_process_with_progress_logs_and_granted_threads(jobs_env) -> None:  # type: ignore[no-untyped-def]
    env = jobs_env
    env.worker()
    job = env.jobs.submit("selftest", {"steps": 3, "sleep_s": 0.05}, resources=Resources(cpu=2, memory=512 * MiB), name="t")
    done = env.jobs.wait(job.id, timeout_s=60)
    assert done.state is JobState.SUCCEEDED, done
    assert done.result is not None and done.result["steps"] == 3 and done.result["resumed_from"] == 0
    assert done.result["pid"] != os.getpid()
    assert done.result["omp_num_threads"] == "2" and done.result["cuda_visible_devices"] == ""
    assert (done.progress.done, done.progress.total, done.progress.message) == (3, 3, "step 3/3")
    log = lines(env, job.id)
    assert log[0].startswith("submitted") and "attempt 1 admitted" in log[1]
    assert "counted 3 steps" in log and log[-1] == "attempt 1 succeeded"
    assert env.jobs.progress(job.id).fraction == 1.0


def test_failing_executor_fails_the_job_with_its_error_and_traceback(jobs_env) -> None:  # type: ignore[no-untyped-def]
    _sqlite_only(jobs_env.url)
    env = jobs_env
    env.worker()
    job = env.jobs.submit("selftest", {"steps": 5, "sleep_s": 0, "fail_at": 2})
    done = env.jobs.wait(job.id, timeout_s=60)
    assert done.state is JobState.FAILED and done.reason is JobReason.EXECUTOR_ERROR
    assert "selftest failed at step 2" in (done.message or "") and done.error and done.error["code"] == "executor_error"
    text = "\n".join(lines(env, job.id))
    assert "Traceback (most recent call last)" in text and "RuntimeError: selftest failed at step 2" in text
    # retry: back in the queue, resumes from the checkpoint (step 1) and fails at step 2 again.
    env.jobs.retry(job.id)
    again = env.jobs.wait(job.id, timeout_s=60)
    assert again.state is JobState.FAILED and again.attempt == 2
    assert any("resuming from step 1" in ln for ln in lines(env, job.id))


def test_cancel_a_running_job(jobs_env) -> None:  # type: ignore[no-untyped-def]
    _sqlite_only(jobs_env.url)
    env = jobs_env
    env.worker()
    job = env.jobs.submit("selftest", {"steps": 500, "sleep_s": 0.05})
    wait_for(lambda: env.jobs.get(job.id).progress.done >= 2, what="progress")
    env.jobs.cancel(job.id)
    done = env.jobs.wait(job.id, timeout_s=30)
    assert done.state is JobState.CANCELLED and done.reason is JobReason.CANCELLED
    assert done.progress.done < 500


def test_a_job_that_ignores_stop_requests_is_killed_after_the_grace_period(jobs_env) -> None:  # type: ignore[no-untyped-def]
    _sqlite_only(jobs_env.url)
    env = jobs_env
    env.settings.jobs_stop_grace_s = 1.0
    env.worker()
    job = env.jobs.submit("selftest", {"steps": 500, "sleep_s": 0.05, "ignore_stop": True})
    wait_for(lambda: env.jobs.get(job.id).state is JobState.RUNNING, what="running")
    env.jobs.cancel(job.id)
    done = env.jobs.wait(job.id, timeout_s=30)
    assert done.state is JobState.CANCELLED and "did not stop within 1 s" in (done.message or "")
    assert done.progress.done < 500


def test_preemption_checkpoints_requeues_and_resumes(jobs_env) -> None:  # type: ignore[no-untyped-def]
    env = jobs_env
    env.jobs.create_queue("train", Resources(cpu=2, memory=2 << 30))
    env.worker()
    low = env.jobs.submit("selftest", {"steps": 20, "sleep_s": 0.1}, queue="train", priority_class="low", resources=Resources(2, 256 * MiB))
    wait_for(lambda: env.jobs.get(low.id).progress.done >= 3, what="the low job's progress")
    high = env.jobs.submit(
        "selftest", {"steps": 3, "sleep_s": 0.05}, queue="train", priority_class="high", resources=Resources(2, 256 * MiB)
    )
    h = env.jobs.wait(high.id, timeout_s=60)
    assert h.state is JobState.SUCCEEDED
    lo = env.jobs.wait(low.id, timeout_s=60)
    assert lo.state is JobState.SUCCEEDED, lo
    assert lo.preemptions == 1 and lo.restarts == 0 and lo.attempt == 2
    assert lo.result and lo.result["resumed_from"] >= 3
    log = lines(env, low.id)
    assert any(f"to make room for job {high.id}" in ln for ln in log)
    assert any(f"requeued (preempted by {high.id})" in ln for ln in log)
    steps = trace(env, low.id)
    assert_attempts_never_overlap(steps)
    assert sorted({s["step"] for s in steps}) == list(range(1, 21))  # every step exactly once
    # The high job ran only while the low one was stopped: the quota held.
    hsteps = trace(env, high.id)
    first, second = [s for s in steps if s["attempt"] == 1], [s for s in steps if s["attempt"] == 2]
    assert max(s["t"] for s in first) < min(s["t"] for s in hsteps)
    assert max(s["t"] for s in hsteps) < min(s["t"] for s in second)


def test_a_killed_job_process_is_requeued_and_resumes_from_its_checkpoint(jobs_env) -> None:  # type: ignore[no-untyped-def]
    _sqlite_only(jobs_env.url)
    env = jobs_env
    env.worker()
    job = env.jobs.submit("selftest", {"steps": 6, "sleep_s": 0.02, "crash_at": 4})
    done = env.jobs.wait(job.id, timeout_s=60)
    assert done.state is JobState.SUCCEEDED and done.attempt == 2 and done.restarts == 1
    assert done.result and done.result["resumed_from"] == 3
    log = lines(env, job.id)
    assert any("killed by SIGKILL" in ln for ln in log)
    assert any("crashing at step 4" in ln for ln in log)
    assert_attempts_never_overlap(trace(env, job.id))
    # Out of restarts: crashing on every attempt fails the job with the reason.
    job = env.jobs.submit("selftest", {"steps": 3, "sleep_s": 0, "crash_at": 1, "crash_attempts": [1, 2, 3]}, max_restarts=1)
    done = env.jobs.wait(job.id, timeout_s=60)
    assert done.state is JobState.FAILED and done.reason is JobReason.PROCESS_KILLED and done.attempt == 2
    assert "gave up after 1 restart" in (done.message or "")


def test_a_job_over_its_memory_request_is_killed(jobs_env) -> None:  # type: ignore[no-untyped-def]
    _sqlite_only(jobs_env.url)
    env = jobs_env
    env.worker()
    job = env.jobs.submit("selftest", {"steps": 200, "sleep_s": 0.05, "allocate_mb": 400}, resources=Resources(1, 200 * MiB))
    done = env.jobs.wait(job.id, timeout_s=60)
    assert done.state is JobState.FAILED and done.reason is JobReason.MEMORY_LIMIT
    assert "more than the 200 MiB it requested" in (done.message or "")
    assert done.error and done.error["peak_rss"] > 200 * MiB


def test_sigkilled_worker_process_restarted_requeues_and_resumes(jobs_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`plinth worker` is SIGKILLed mid-job: its job process dies with it, the job is never run
    twice at once, and a restarted worker requeues it at once and resumes it."""
    env = jobs_env
    w1 = env.worker_process(tmp_path / "w1.log")
    job = env.jobs.submit("selftest", {"steps": 30, "sleep_s": 0.1})
    running = wait_for(lambda: (j := env.jobs.get(job.id)).progress.done >= 4 and j.process_id and j, timeout=60, what="progress")
    child = psutil.Process(running.process_id)
    os.kill(w1.pid, signal.SIGKILL)
    w1.wait(timeout=10)
    child.wait(timeout=10)  # the job's process noticed its supervisor was gone and exited
    stale = env.jobs.get(job.id)
    assert stale.state is JobState.RUNNING and stale.attempt == 1  # only the lease says otherwise
    env.worker_process(tmp_path / "w2.log")
    done = env.jobs.wait(job.id, timeout_s=90)
    assert done.state is JobState.SUCCEEDED, (done, (tmp_path / "w2.log").read_text()[-3000:])
    assert done.attempt == 2 and done.restarts == 1 and done.result and done.result["resumed_from"] >= 4
    log = lines(env, job.id)
    assert any("requeued (worker_lost)" in ln and "is gone (its process exited)" in ln for ln in log)
    steps = trace(env, job.id)
    assert_attempts_never_overlap(steps)
    assert sorted({s["step"] for s in steps}) == list(range(1, 31))


def test_an_expired_lease_on_another_host_is_reaped(jobs_env) -> None:  # type: ignore[no-untyped-def]
    _sqlite_only(jobs_env.url)
    env = jobs_env
    store = env.store
    store.register_worker(WorkerInfo(id="far-away", hostname="another-host", pid=1, capacity=Resources(4, 8 << 30, 0)))
    job = env.jobs.submit("selftest", {"steps": 2, "sleep_s": 0})
    now = datetime.now(UTC)
    import functools

    out = store.schedule(
        "far-away", functools.partial(plan, worker_free=Resources(4, 8 << 30, 0)), now=now, lease_until=now + timedelta(seconds=1)
    )
    assert [j.id for j in out.admitted] == [job.id]
    env.worker()  # cannot see that process; waits for the lease to expire
    done = env.jobs.wait(job.id, timeout_s=60)
    assert done.state is JobState.SUCCEEDED and done.attempt == 2 and done.restarts == 1
    assert any("far-away stopped renewing" in ln for ln in lines(env, job.id))


def test_a_stopping_worker_hands_its_jobs_back(jobs_env) -> None:  # type: ignore[no-untyped-def]
    _sqlite_only(jobs_env.url)
    env = jobs_env
    sup = env.worker()
    job = env.jobs.submit("selftest", {"steps": 40, "sleep_s": 0.05})
    wait_for(lambda: env.jobs.get(job.id).progress.done >= 2, what="progress")
    sup.stop()
    back = env.jobs.get(job.id)
    assert back.state is JobState.QUEUED and back.reason is JobReason.WORKER_SHUTDOWN
    assert back.restarts == 0 and back.preemptions == 0
    env.worker()
    done = env.jobs.wait(job.id, timeout_s=60)
    assert done.state is JobState.SUCCEEDED and done.result and done.result["resumed_from"] >= 2


def test_a_kind_the_worker_does_not_know_fails_clearly(jobs_env) -> None:  # type: ignore[no-untyped-def]
    _sqlite_only(jobs_env.url)
    import uuid

    from plinth.domain.jobs import Job, new_job_id

    env = jobs_env
    now = datetime.now(UTC)
    job = Job(
        id=new_job_id(int(now.timestamp() * 1000), uuid.uuid4().hex),
        kind="from-a-newer-version",
        spec={},
        queue="default",
        priority_class="normal",
        priority=500,
        resources=Resources(1, 256 * MiB),
        created_at=now,
    )
    env.store.add_job(job)  # as a newer plinth on the same store could
    env.worker()
    done = env.jobs.wait(job.id, timeout_s=60)
    assert done.state is JobState.FAILED and done.reason is JobReason.UNKNOWN_KIND
    assert "unknown job kind 'from-a-newer-version'" in (done.message or "")


def test_a_queue_with_a_full_quota_waits_and_other_queues_run(jobs_env) -> None:  # type: ignore[no-untyped-def]
    _sqlite_only(jobs_env.url)
    env = jobs_env
    env.jobs.create_queue("small", Resources(cpu=1, memory=1 << 30))
    env.worker()
    # a runs until cancelled (a minute at most), so that it still holds the small queue's only
    # CPU when c is done however slowly this machine runs the jobs
    a = env.jobs.submit("selftest", {"steps": 600, "sleep_s": 0.1}, queue="small", resources=Resources(1, 128 * MiB))
    b = env.jobs.submit("selftest", {"steps": 1, "sleep_s": 0}, queue="small", resources=Resources(1, 128 * MiB))
    c = env.jobs.submit("selftest", {"steps": 1, "sleep_s": 0}, resources=Resources(1, 128 * MiB))
    assert env.jobs.wait(c.id, timeout_s=60).state is JobState.SUCCEEDED
    assert env.jobs.get(a.id).state is JobState.RUNNING
    assert env.jobs.get(b.id).state is JobState.QUEUED  # a holds the small queue's only CPU
    env.jobs.cancel(a.id)
    assert env.jobs.wait(b.id, timeout_s=60).state is JobState.SUCCEEDED
    ta, tb = trace(env, a.id), trace(env, b.id)
    assert max(s["t"] for s in ta) < min(s["t"] for s in tb)


def test_queue_lookups_do_not_leak_between_tests(jobs_env) -> None:  # type: ignore[no-untyped-def]
    assert [q.name for q in jobs_env.jobs.list_queues()] == ["default"]
    assert isinstance(jobs_env.jobs.get_queue("default"), Queue)


def test_gpus_are_handed_out_as_cuda_visible_devices(jobs_env) -> None:  # type: ignore[no-untyped-def]
    """No GPU is needed: a worker told it has two hands each job its own device id."""
    _sqlite_only(jobs_env.url)
    from plinth.jobs.resources import machine_capacity

    env = jobs_env
    env.settings.worker_gpus = 2
    env.jobs.machine = machine_capacity(env.settings)
    env.jobs.create_queue("gpu", Resources(cpu=4, memory=2 << 30, gpus=2))
    env.worker(capacity=Resources(4, 8 << 30, 2))
    spec = {"steps": 10, "sleep_s": 0.1}
    a = env.jobs.submit("selftest", spec, queue="gpu", resources=Resources(1, 256 * MiB, 1))
    b = env.jobs.submit("selftest", spec, queue="gpu", resources=Resources(1, 256 * MiB, 1))
    c = env.jobs.submit("selftest", {"steps": 1, "sleep_s": 0}, queue="gpu", resources=Resources(1, 256 * MiB, 1))
    ra, rb, rc = (env.jobs.wait(j.id, timeout_s=60).result for j in (a, b, c))
    assert ra and rb and rc
    assert {ra["cuda_visible_devices"], rb["cuda_visible_devices"]} == {"0", "1"}  # ran together, one device each
    assert rc["cuda_visible_devices"] in ("0", "1")  # waited for a free one
    assert min(s["t"] for s in trace(env, c.id)) > min(max(s["t"] for s in trace(env, a.id)), max(s["t"] for s in trace(env, b.id)))
