"""The jobs area of the metadata store: priority classes, queues, jobs, their logs, workers.

Every state change of a job is one transaction. Writes by a job's own process (progress,
logs, the final state) are *fenced* by the job's ``attempt``: they apply only while the
stored attempt is the writer's, so a process that lost its lease cannot overwrite a newer
attempt. Admission happens only inside :meth:`JobsStore.schedule`, which serialises
scheduling passes (Postgres: the queue rows are locked ``FOR NO KEY UPDATE`` and queued
jobs read ``FOR UPDATE SKIP LOCKED``; SQLite: ``BEGIN IMMEDIATE``), so a queue's quota
can never be overrun by two workers admitting at once.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from plinth.domain.jobs import (
    Job,
    JobControl,
    JobFilter,
    JobLogLine,
    JobProgress,
    JobReason,
    JobState,
    PreemptionPolicy,
    PriorityClass,
    Queue,
    Resources,
    ScheduleOutcome,
    SchedulingPlan,
    SchedulingSnapshot,
    StopRequest,
    WorkerInfo,
    format_resources,
)
from plinth.errors import ErrorCode, PlinthError


class JobsStore(abc.ABC):
    # -- priority classes ----------------------------------------------------------------
    @abc.abstractmethod
    def add_priority_class(self, pc: PriorityClass) -> PriorityClass:
        """Create it; PlinthError(already_exists) if the name is taken."""

    @abc.abstractmethod
    def ensure_priority_classes(self, classes: Sequence[PriorityClass]) -> None:
        """Create those that do not exist yet (existing ones are left as they are)."""

    @abc.abstractmethod
    def get_priority_class(self, name: str) -> PriorityClass: ...

    @abc.abstractmethod
    def list_priority_classes(self) -> list[PriorityClass]:
        """Highest value first."""

    @abc.abstractmethod
    def delete_priority_class(self, name: str) -> PriorityClass:
        """Remove it; jobs keep the priority value they were submitted with."""

    # -- queues --------------------------------------------------------------------------
    @abc.abstractmethod
    def add_queue(self, queue: Queue) -> Queue:
        """Create it; PlinthError(already_exists) if the name is taken."""

    @abc.abstractmethod
    def ensure_queue(self, queue: Queue) -> Queue:
        """Create it if missing; return the stored queue either way."""

    @abc.abstractmethod
    def get_queue(self, name: str) -> Queue: ...

    @abc.abstractmethod
    def list_queues(self) -> list[Queue]: ...

    @abc.abstractmethod
    def update_queue(
        self,
        name: str,
        *,
        quota: Resources | None = None,
        preemption: PreemptionPolicy | None = None,
        description: str | None = None,
    ) -> Queue:
        """Change a queue. A quota that a queued or running job's request would no longer
        fit is refused (PlinthError(conflict) naming the jobs)."""

    @abc.abstractmethod
    def delete_queue(self, name: str) -> Queue:
        """Remove an empty queue; PlinthError(conflict) while any job is queued or running in it
        (finished jobs of the queue are deleted with it)."""

    @abc.abstractmethod
    def queue_usage(self) -> dict[str, dict[str, Any]]:
        """Per queue: ``running`` (count), ``queued`` (count), ``used`` (Resources of running jobs)."""

    # -- jobs ----------------------------------------------------------------------------
    @abc.abstractmethod
    def add_job(self, job: Job) -> tuple[Job, bool]:
        """Insert a queued job. With an ``idempotency_key`` that already exists, nothing is
        inserted and the existing job is returned with ``False`` (the caller compares
        ``request_hash``). The queue must exist and the request must fit its quota (checked
        in the same transaction)."""

    @abc.abstractmethod
    def get_job(self, job_id: str) -> Job:
        """PlinthError(not_found) if there is no such job."""

    @abc.abstractmethod
    def find_job_by_idempotency_key(self, key: str) -> Job | None: ...

    @abc.abstractmethod
    def list_jobs(self, flt: JobFilter) -> list[Job]:
        """Newest first, at most ``flt.limit``."""

    @abc.abstractmethod
    def cancel_job(self, job_id: str, message: str | None = None) -> Job:
        """A queued job is cancelled at once; a running one is asked to stop
        (``stop_request = cancel``); a finished one is PlinthError(conflict)."""

    @abc.abstractmethod
    def retry_job(self, job_id: str) -> Job:
        """Put a failed or cancelled job back in the queue (same id, next attempt resumes
        from its checkpoint); anything else is PlinthError(conflict)."""

    @abc.abstractmethod
    def delete_job(self, job_id: str) -> Job:
        """Remove a finished job and its logs; PlinthError(conflict) while queued or running."""

    # -- logs ----------------------------------------------------------------------------
    @abc.abstractmethod
    def append_job_logs(self, job_id: str, attempt: int, stream: str, lines: Sequence[str]) -> None:
        """Add lines (not fenced: the queue's own notes and crash output use it)."""

    @abc.abstractmethod
    def job_logs(self, job_id: str, *, after: int = 0, limit: int = 1000, tail: int | None = None) -> list[JobLogLine]:
        """Lines with ``seq > after``, oldest first; with ``tail``, only the last ``tail`` of them."""

    # -- a job's own process (fenced by attempt) -----------------------------------------
    @abc.abstractmethod
    def job_control(self, job_id: str) -> JobControl | None:
        """State, attempt, stop request and lease of a job (None if it is gone)."""

    @abc.abstractmethod
    def report_job(self, job_id: str, attempt: int, *, progress: JobProgress | None = None, logs: Sequence[str] = ()) -> JobControl | None:
        """Store progress and log lines of ``attempt`` and return the job's control state,
        in one transaction. Nothing is written when ``attempt`` is no longer current or the
        job is not running; the control state is returned anyway (None if the job is gone)."""

    @abc.abstractmethod
    def finish_job(
        self,
        job_id: str,
        attempt: int,
        state: JobState,
        reason: JobReason,
        *,
        message: str | None = None,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> Job | None:
        """End a running ``attempt`` as succeeded, failed or cancelled. None (and no
        change) if ``attempt`` is not the current running attempt."""

    @abc.abstractmethod
    def requeue_job(self, job_id: str, attempt: int, reason: JobReason, *, message: str | None = None, restart: bool = False) -> Job | None:
        """Put a running ``attempt`` back in the queue (after a preemption, a shutdown, or a
        killed process when ``restart``). A restart past ``max_restarts`` fails the job
        instead. ``preemptions`` counts requeues with reason ``preempted``. None if fenced."""

    @abc.abstractmethod
    def set_job_process(self, job_id: str, attempt: int, pid: int | None) -> None:
        """Record the pid of the process running ``attempt``."""

    # -- workers and scheduling ----------------------------------------------------------
    @abc.abstractmethod
    def register_worker(self, worker: WorkerInfo) -> WorkerInfo: ...

    @abc.abstractmethod
    def list_workers(self, *, include_stopped: bool = False) -> list[WorkerInfo]: ...

    @abc.abstractmethod
    def worker_heartbeat(self, worker_id: str, *, now: datetime, lease_until: datetime) -> dict[str, JobControl]:
        """Renew the worker's heartbeat and the leases of its running jobs; return their
        control states by job id."""

    @abc.abstractmethod
    def stop_worker(self, worker_id: str, *, now: datetime) -> None:
        """Mark the worker stopped (it no longer holds leases)."""

    @abc.abstractmethod
    def request_stop(self, job_ids: Sequence[str], stop: StopRequest, *, preempted_by: str | None = None) -> list[str]:
        """Ask running jobs to stop (a pending cancel is never downgraded to preempt);
        returns the ids that were asked."""

    @abc.abstractmethod
    def schedule(
        self,
        worker_id: str | None,
        decide: Callable[[SchedulingSnapshot], SchedulingPlan],
        *,
        now: datetime,
        lease_until: datetime,
        dead_workers: Sequence[str] = (),
        max_queued: int = 1000,
    ) -> ScheduleOutcome:
        """One scheduling pass in one transaction.

        1. Reap: every running job whose lease expired before ``now``, or whose worker is
           in ``dead_workers``, is requeued (``restarts`` + 1, reason ``worker_lost``), or
           failed when it is out of restarts, or cancelled when a cancel was pending.
        2. Read a :class:`SchedulingSnapshot` and call ``decide`` (pure policy).
        3. Apply the plan: admitted jobs become ``running`` on ``worker_id`` with a lease
           until ``lease_until`` and ``attempt`` + 1; victims get ``stop_request =
           preempt``. With ``worker_id`` None nothing is admitted.
        """


def quota_refusal(request: Resources, queue: Queue, over: list[str]) -> PlinthError:
    """The error for a request that can never fit its queue's quota."""
    return PlinthError(
        ErrorCode.INVALID_REQUEST,
        f"the job requests {format_resources(request)} but queue {queue.name!r} allows at most "
        f"{format_resources(queue.quota)} ({', '.join(over)} too large): it could never run",
        param="resources",
        details={"request": request.as_dict(), "quota": queue.quota.as_dict(), "exceeding": over},
    )
