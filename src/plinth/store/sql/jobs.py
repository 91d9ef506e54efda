"""The job queue in SQL: priority classes, queues, jobs, logs, workers, scheduling passes.

Locking. A scheduling pass locks every queue row (Postgres ``FOR NO KEY UPDATE``, which
does not block inserting jobs that reference the queue) and reads queued jobs ``FOR UPDATE
SKIP LOCKED``; on SQLite the whole pass is one ``BEGIN IMMEDIATE`` transaction. Passes of
different workers therefore never see the same free quota. Changing a queue takes ``FOR
UPDATE`` on its row, and submitting takes ``FOR KEY SHARE``, so a quota change and a
submission do not interleave.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

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
)
from plinth.errors import ErrorCode, PlinthError, not_found
from plinth.store.base_jobs import quota_refusal
from plinth.store.schema.jobs import JobLogRow, JobRow, PriorityClassRow, QueueRow, WorkerRow
from plinth.store.sql.common import RefusedValue, SqlBase, db_reason, is_foreign_key_violation, is_unique_violation

MAX_LOG_LINE = 8192
_ACTIVE = (JobState.QUEUED.value, JobState.RUNNING.value)


def _now() -> datetime:
    return datetime.now(UTC)


class JobsSql(SqlBase):
    """:class:`plinth.store.base_jobs.JobsStore` on SQL."""

    # -- priority classes ----------------------------------------------------------------
    def add_priority_class(self, pc: PriorityClass) -> PriorityClass:
        row = PriorityClassRow(name=pc.name, value=pc.value, description=pc.description, created_at=_now())
        try:
            with self._session(write=True) as s:
                s.add(row)
                s.flush()
                return _priority_class(row)
        except IntegrityError as e:
            if not is_unique_violation(e):
                raise
            raise PlinthError(
                ErrorCode.ALREADY_EXISTS,
                f"priority class {pc.name!r} already exists",
                details={"kind": "priority_class", "name": pc.name},
            ) from None

    def ensure_priority_classes(self, classes: Sequence[PriorityClass]) -> None:
        for pc in classes:
            with self._session() as s:
                if s.get(PriorityClassRow, pc.name) is not None:
                    continue
            try:
                self.add_priority_class(pc)
            except PlinthError as e:
                if e.code is not ErrorCode.ALREADY_EXISTS:  # created concurrently: fine
                    raise

    def get_priority_class(self, name: str) -> PriorityClass:
        with self._session() as s:
            row = s.get(PriorityClassRow, name)
            if row is None:
                raise not_found("priority class", name)
            return _priority_class(row)

    def list_priority_classes(self) -> list[PriorityClass]:
        with self._session() as s:
            rows = [_priority_class(r) for r in s.scalars(select(PriorityClassRow))]
        return sorted(rows, key=lambda p: (-p.value, p.name))

    def delete_priority_class(self, name: str) -> PriorityClass:
        with self._session(write=True) as s:
            row = s.get(PriorityClassRow, name, with_for_update=True)
            if row is None:
                raise not_found("priority class", name)
            pc = _priority_class(row)
            s.delete(row)
            return pc

    # -- queues --------------------------------------------------------------------------
    def add_queue(self, queue: Queue) -> Queue:
        now = _now()
        row = QueueRow(
            name=queue.name,
            project=queue.project,
            cpu=queue.quota.cpu,
            memory_bytes=queue.quota.memory,
            gpus=queue.quota.gpus,
            preemption=queue.preemption.value,
            description=queue.description,
            created_at=now,
            updated_at=now,
        )
        try:
            with self._session(write=True) as s:
                s.add(row)
                s.flush()
                return _queue(row)
        except RefusedValue as e:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"queue {queue.name!r} cannot be stored: {db_reason(e)}") from None
        except IntegrityError as e:
            if not is_unique_violation(e):
                raise
            raise PlinthError(
                ErrorCode.ALREADY_EXISTS, f"queue {queue.name!r} already exists", details={"kind": "queue", "name": queue.name}
            ) from None

    def ensure_queue(self, queue: Queue) -> Queue:
        with self._session() as s:
            row = s.get(QueueRow, queue.name)
            if row is not None:
                return _queue(row)
        try:
            return self.add_queue(queue)
        except PlinthError as e:
            if e.code is not ErrorCode.ALREADY_EXISTS:
                raise
            return self.get_queue(queue.name)

    def get_queue(self, name: str) -> Queue:
        with self._session() as s:
            row = s.get(QueueRow, name)
            if row is None:
                raise not_found("queue", name)
            return _queue(row)

    def list_queues(self) -> list[Queue]:
        with self._session() as s:
            queues = [_queue(r) for r in s.scalars(select(QueueRow))]
        return sorted(queues, key=lambda q: q.name)

    def update_queue(
        self,
        name: str,
        *,
        quota: Resources | None = None,
        preemption: PreemptionPolicy | None = None,
        description: str | None = None,
    ) -> Queue:
        with self._session(write=True) as s:
            row = s.get(QueueRow, name, with_for_update=True)
            if row is None:
                raise not_found("queue", name)
            if quota is not None:
                too_big = [
                    j.id
                    for j in s.scalars(select(JobRow).where(JobRow.queue == name, JobRow.state.in_(_ACTIVE)))
                    if not _resources(j).fits_in(quota)
                ]
                if too_big:
                    raise PlinthError(
                        ErrorCode.CONFLICT,
                        f"queue {name!r}: {len(too_big)} queued or running job(s) request more than the new quota "
                        f"and could never run again ({', '.join(too_big[:5])}{'...' if len(too_big) > 5 else ''}); "
                        "cancel them first",
                        details={"jobs": too_big[:50]},
                    )
                row.cpu, row.memory_bytes, row.gpus = quota.cpu, quota.memory, quota.gpus
            if preemption is not None:
                row.preemption = preemption.value
            if description is not None:
                row.description = description
            row.updated_at = _now()
            s.flush()
            return _queue(row)

    def delete_queue(self, name: str) -> Queue:
        with self._session(write=True) as s:
            row = s.get(QueueRow, name, with_for_update=True)
            if row is None:
                raise not_found("queue", name)
            active = s.scalar(select(func.count()).select_from(JobRow).where(JobRow.queue == name, JobRow.state.in_(_ACTIVE)))
            if active:
                raise PlinthError(
                    ErrorCode.CONFLICT,
                    f"queue {name!r} still has {active} queued or running job(s); cancel them first",
                    details={"active_jobs": int(active)},
                )
            queue = _queue(row)
            s.execute(delete(JobRow).where(JobRow.queue == name))
            s.delete(row)
            return queue

    def queue_usage(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        with self._session() as s:
            for q in s.scalars(select(QueueRow.name)):
                out[q] = {"running": 0, "queued": 0, "used": Resources.zero()}
            query = (
                select(
                    JobRow.queue,
                    JobRow.state,
                    func.count(),
                    func.coalesce(func.sum(JobRow.cpu), 0),
                    func.coalesce(func.sum(JobRow.memory_bytes), 0),
                    func.coalesce(func.sum(JobRow.gpus), 0),
                )
                .where(JobRow.state.in_(_ACTIVE))
                .group_by(JobRow.queue, JobRow.state)
            )
            for queue, state, count, cpu, mem, gpus in s.execute(query):
                entry = out.setdefault(queue, {"running": 0, "queued": 0, "used": Resources.zero()})
                entry[state] = int(count)
                if state == JobState.RUNNING.value:
                    entry["used"] = Resources(int(cpu), int(mem), int(gpus))
        return out

    # -- jobs ----------------------------------------------------------------------------
    def add_job(self, job: Job) -> tuple[Job, bool]:
        now = job.created_at or _now()
        row = JobRow(
            id=job.id,
            project=job.project,  # None: the scope's
            kind=job.kind,
            name=job.name,
            labels=dict(job.labels),
            spec=dict(job.spec),
            queue=job.queue,
            priority_class=job.priority_class,
            priority=job.priority,
            cpu=job.resources.cpu,
            memory_bytes=job.resources.memory,
            gpus=job.resources.gpus,
            state=JobState.QUEUED.value,
            reason=JobReason.SUBMITTED.value,
            message=None,
            attempt=0,
            restarts=0,
            max_restarts=job.max_restarts,
            preemptions=0,
            gpu_ids=[],
            progress={},
            idempotency_key=job.idempotency_key,
            request_hash=job.request_hash,
            created_at=now,
            queued_at=now,
            updated_at=now,
        )
        try:
            with self._session(write=True) as s:
                if job.idempotency_key is not None:
                    existing = s.scalar(self._by_idempotency_key(job.idempotency_key))
                    if existing is not None:
                        return _job(existing), False
                queue = s.scalar(select(QueueRow).where(QueueRow.name == job.queue).with_for_update(read=True, key_share=True))
                if queue is None or queue.project not in ("", row.project or self._project()):
                    raise not_found("queue", job.queue)
                _check_fits_queue(job.resources, _queue(queue))
                s.add(row)
                s.flush()
                _log(
                    s,
                    row.id,
                    0,
                    "system",
                    f"submitted to queue {job.queue!r} with priority {job.priority_class} ({job.priority})",
                    row.project,
                )
                return _job(row), True
        except RefusedValue as e:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"the job cannot be stored: {db_reason(e)}") from None
        except IntegrityError as e:
            if is_foreign_key_violation(e):
                raise not_found("queue", job.queue) from None
            if not is_unique_violation(e) or job.idempotency_key is None:
                raise
            # A concurrent submission with the same idempotency key won the race.
            with self._session() as s:
                existing = s.scalar(self._by_idempotency_key(job.idempotency_key))
                if existing is None:
                    raise
                return _job(existing), False

    def get_job(self, job_id: str) -> Job:
        with self._session() as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise not_found("job", job_id)
            return _job(row)

    def find_job_by_idempotency_key(self, key: str) -> Job | None:
        with self._session() as s:
            row = s.scalar(self._by_idempotency_key(key))
            return None if row is None else _job(row)

    def _by_idempotency_key(self, key: str) -> Any:
        return select(JobRow).where(JobRow.project == self._project(), JobRow.idempotency_key == key)

    def list_jobs(self, flt: JobFilter) -> list[Job]:
        query = select(JobRow).order_by(JobRow.id.desc())
        if flt.states:
            query = query.where(JobRow.state.in_([st.value for st in flt.states]))
        if flt.kind:
            query = query.where(JobRow.kind == flt.kind)
        if flt.queue:
            query = query.where(JobRow.queue == flt.queue)
        if flt.worker_id:
            query = query.where(JobRow.worker_id == flt.worker_id)
        if flt.before:
            query = query.where(JobRow.id < flt.before)
        out: list[Job] = []
        with self._session() as s:
            if not flt.labels:
                return [_job(r) for r in s.scalars(query.limit(flt.limit))]
            # Labels are JSON; matched here so the query is the same on every backend.
            for row in s.scalars(query.execution_options(yield_per=500)):
                if all((row.labels or {}).get(k) == v for k, v in flt.labels.items()):
                    out.append(_job(row))
                    if len(out) >= flt.limit:
                        break
        return out

    def cancel_job(self, job_id: str, message: str | None = None) -> Job:
        now = _now()
        with self._session(write=True) as s:
            row = self._locked_job(s, job_id)
            if JobState(row.state).terminal:
                raise PlinthError(
                    ErrorCode.CONFLICT,
                    f"job {job_id} has already {row.state}; there is nothing to cancel",
                    details={"state": row.state},
                )
            if row.state == JobState.QUEUED.value:
                _end(row, JobState.CANCELLED, JobReason.CANCELLED, message or "cancelled while queued", now)
                _log(s, row.id, row.attempt, "system", "cancelled while queued", row.project)
            elif row.stop_request != StopRequest.CANCEL.value:
                row.stop_request = StopRequest.CANCEL.value
                row.stop_requested_at = now
                row.preempted_by = None
                row.updated_at = now
                _log(s, row.id, row.attempt, "system", "cancel requested; waiting for the job to stop", row.project)
            s.flush()
            return _job(row)

    def retry_job(self, job_id: str) -> Job:
        now = _now()
        with self._session(write=True) as s:
            row = self._locked_job(s, job_id)
            if row.state not in (JobState.FAILED.value, JobState.CANCELLED.value):
                raise PlinthError(
                    ErrorCode.CONFLICT,
                    f"job {job_id} is {row.state}; only failed or cancelled jobs can be retried",
                    details={"state": row.state},
                )
            queue = s.get(QueueRow, row.queue)
            if queue is None:  # pragma: no cover - the foreign key keeps it
                raise not_found("queue", row.queue)
            _check_fits_queue(_resources(row), _queue(queue))
            row.state = JobState.QUEUED.value
            row.reason = JobReason.RETRIED.value
            row.message = None
            row.restarts = 0
            row.error = None
            row.result = None
            row.finished_at = None
            row.queued_at = now
            row.updated_at = now
            _release(row)
            _log(s, row.id, row.attempt, "system", "retried: back in the queue", row.project)
            s.flush()
            return _job(row)

    def delete_job(self, job_id: str) -> Job:
        with self._session(write=True) as s:
            row = self._locked_job(s, job_id)
            if not JobState(row.state).terminal:
                raise PlinthError(
                    ErrorCode.CONFLICT,
                    f"job {job_id} is {row.state}; cancel it before deleting it",
                    details={"state": row.state},
                )
            job = _job(row)
            s.execute(delete(JobLogRow).where(JobLogRow.job_id == job_id))
            s.delete(row)
            return job

    # -- logs ----------------------------------------------------------------------------
    def append_job_logs(self, job_id: str, attempt: int, stream: str, lines: Sequence[str]) -> None:
        if not lines:
            return
        with self._session(write=True) as s:
            job = s.get(JobRow, job_id)
            if job is None:
                raise not_found("job", job_id)
            for line in lines:
                _log(s, job_id, attempt, stream, line, job.project)

    def job_logs(self, job_id: str, *, after: int = 0, limit: int = 1000, tail: int | None = None) -> list[JobLogLine]:
        query = select(JobLogRow).where(JobLogRow.job_id == job_id, JobLogRow.seq > after)
        with self._session() as s:
            if s.get(JobRow, job_id) is None:
                raise not_found("job", job_id)
            if tail is not None:
                rows = list(s.scalars(query.order_by(JobLogRow.seq.desc()).limit(tail)))
                rows.reverse()
            else:
                rows = list(s.scalars(query.order_by(JobLogRow.seq).limit(limit)))
            return [_log_line(r) for r in rows]

    # -- a job's own process -------------------------------------------------------------
    def job_control(self, job_id: str) -> JobControl | None:
        with self._session() as s:
            row = s.get(JobRow, job_id)
            return None if row is None else _control(row)

    def report_job(self, job_id: str, attempt: int, *, progress: JobProgress | None = None, logs: Sequence[str] = ()) -> JobControl | None:
        with self._session(write=True) as s:
            row = s.get(JobRow, job_id, with_for_update=True)
            if row is None:
                return None
            if row.attempt == attempt and row.state == JobState.RUNNING.value:
                if progress is not None:
                    row.progress = _progress_json(progress)
                    row.updated_at = _now()
                for line in logs:
                    _log(s, job_id, attempt, "log", line, row.project)
            return _control(row)

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
        if not state.terminal:
            raise ValueError(f"finish_job needs a terminal state, got {state}")
        with self._session(write=True) as s:
            row = self._current(s, job_id, attempt)
            if row is None:
                return None
            _end(row, state, reason, message, _now())
            row.result = result
            row.error = error
            note = f"{state.value}" + (f": {message}" if message else "")
            _log(s, row.id, attempt, "system", f"attempt {attempt} {note}", row.project)
            s.flush()
            return _job(row)

    def requeue_job(self, job_id: str, attempt: int, reason: JobReason, *, message: str | None = None, restart: bool = False) -> Job | None:
        with self._session(write=True) as s:
            row = self._current(s, job_id, attempt)
            if row is None:
                return None
            _requeue(s, row, reason, message, restart=restart, now=_now())
            s.flush()
            return _job(row)

    def set_job_process(self, job_id: str, attempt: int, pid: int | None) -> None:
        with self._session(write=True) as s:
            s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.attempt == attempt, JobRow.state == JobState.RUNNING.value)
                .values(process_id=pid)
            )

    # -- workers and scheduling ----------------------------------------------------------
    def register_worker(self, worker: WorkerInfo) -> WorkerInfo:
        now = _now()
        row = WorkerRow(
            id=worker.id,
            hostname=worker.hostname,
            pid=worker.pid,
            process_started=worker.process_started,
            cpu=worker.capacity.cpu,
            memory_bytes=worker.capacity.memory,
            gpus=worker.capacity.gpus,
            queues=list(worker.queues),
            started_at=now,
            heartbeat_at=now,
            stopped_at=None,
        )
        with self._session(write=True) as s:
            s.merge(row)
        return self._worker(worker.id)

    def _worker(self, worker_id: str) -> WorkerInfo:
        with self._session() as s:
            row = s.get(WorkerRow, worker_id)
            if row is None:
                raise not_found("worker", worker_id)
            return _worker(row)

    def list_workers(self, *, include_stopped: bool = False) -> list[WorkerInfo]:
        query = select(WorkerRow)
        if not include_stopped:
            query = query.where(WorkerRow.stopped_at.is_(None))
        with self._session() as s:
            workers = [_worker(r) for r in s.scalars(query)]
        return sorted(workers, key=lambda w: w.started_at or _now(), reverse=True)

    def worker_heartbeat(self, worker_id: str, *, now: datetime, lease_until: datetime) -> dict[str, JobControl]:
        with self._session(write=True) as s:
            s.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(heartbeat_at=now))
            rows = s.scalars(
                select(JobRow).where(JobRow.worker_id == worker_id, JobRow.state == JobState.RUNNING.value).with_for_update()
            ).all()
            for row in rows:
                row.lease_expires_at = lease_until
            return {row.id: _control(row) for row in rows}

    def stop_worker(self, worker_id: str, *, now: datetime) -> None:
        with self._session(write=True) as s:
            s.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(stopped_at=now, heartbeat_at=now))

    def request_stop(self, job_ids: Sequence[str], stop: StopRequest, *, preempted_by: str | None = None) -> list[str]:
        asked: list[str] = []
        if not job_ids:
            return asked
        now = _now()
        with self._session(write=True) as s:
            rows = s.scalars(select(JobRow).where(JobRow.id.in_(list(job_ids))).with_for_update()).all()
            for row in rows:
                if _ask_stop(s, row, stop, preempted_by, now):
                    asked.append(row.id)
        return asked

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
        outcome = ScheduleOutcome()
        with self._session(write=True) as s:
            queue_rows = s.scalars(select(QueueRow).order_by(QueueRow.name).with_for_update(key_share=True)).all()
            self._reap(s, outcome, now, dead_workers)
            running_rows = s.scalars(select(JobRow).where(JobRow.state == JobState.RUNNING.value)).all()
            queued_rows = s.scalars(
                select(JobRow)
                .where(JobRow.state == JobState.QUEUED.value)
                .order_by(JobRow.priority.desc(), JobRow.queued_at, JobRow.id)
                .limit(max_queued)
                .with_for_update(skip_locked=True)
            ).all()
            snapshot = SchedulingSnapshot(
                queues={q.name: _queue(q) for q in queue_rows},
                running=[_job(r) for r in running_rows],
                queued=[_job(r) for r in queued_rows],
                now=now,
            )
            decision = decide(snapshot)
            by_id = {r.id: r for r in queued_rows}
            if worker_id is not None:
                for adm in decision.admit:
                    row = by_id.get(adm.job.id)
                    if row is None or row.state != JobState.QUEUED.value:
                        continue
                    row.state = JobState.RUNNING.value
                    row.reason = JobReason.ADMITTED.value
                    row.message = None
                    row.attempt += 1
                    row.worker_id = worker_id
                    row.lease_expires_at = lease_until
                    row.started_at = now
                    row.gpu_ids = list(adm.gpu_ids)
                    row.stop_request = None
                    row.preempted_by = None
                    row.process_id = None
                    row.updated_at = now
                    gpus = f", GPUs {','.join(map(str, adm.gpu_ids))}" if adm.gpu_ids else ""
                    _log(s, row.id, row.attempt, "system", f"attempt {row.attempt} admitted on worker {worker_id}{gpus}", row.project)
                    outcome.admitted.append(_job(row))
            running_by_id = {r.id: r for r in running_rows}
            for pre in decision.preempt:
                row = running_by_id.get(pre.victim.id)
                if row is None:
                    continue
                s.refresh(row, with_for_update=True)
                if _ask_stop(s, row, StopRequest.PREEMPT, pre.preemptor.id, now):
                    outcome.preempted.append(pre)
        return outcome

    def _reap(self, s: Session, outcome: ScheduleOutcome, now: datetime, dead_workers: Sequence[str]) -> None:
        cond = JobRow.lease_expires_at < now
        if dead_workers:
            cond = cond | JobRow.worker_id.in_(list(dead_workers))
            s.execute(update(WorkerRow).where(WorkerRow.id.in_(list(dead_workers)), WorkerRow.stopped_at.is_(None)).values(stopped_at=now))
        rows = s.scalars(select(JobRow).where(JobRow.state == JobState.RUNNING.value, cond).with_for_update(skip_locked=True)).all()
        for row in rows:
            who = f"worker {row.worker_id}"
            if row.stop_request == StopRequest.CANCEL.value:
                _end(row, JobState.CANCELLED, JobReason.CANCELLED, f"cancelled; {who} was lost before it stopped", now)
                _log(s, row.id, row.attempt, "system", f"cancelled: {who} was lost before the job stopped", row.project)
                outcome.cancelled.append(_job(row))
                continue
            if row.stop_request == StopRequest.PREEMPT.value:
                reason = JobReason.PREEMPTED if row.preempted_by else JobReason.WORKER_SHUTDOWN
                _requeue(s, row, reason, f"{who} was lost while the job was yielding", restart=False, now=now)
                outcome.requeued.append(_job(row))
                continue
            why = f"{who} is gone (its process exited)" if row.worker_id in dead_workers else f"{who} stopped renewing the job's lease"
            _requeue(s, row, JobReason.WORKER_LOST, why, restart=True, now=now)
            (outcome.failed if row.state == JobState.FAILED.value else outcome.requeued).append(_job(row))

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _locked_job(s: Session, job_id: str) -> JobRow:
        row = s.get(JobRow, job_id, with_for_update=True)
        if row is None:
            raise not_found("job", job_id)
        return row

    @staticmethod
    def _current(s: Session, job_id: str, attempt: int) -> JobRow | None:
        row = s.get(JobRow, job_id, with_for_update=True)
        if row is None or row.attempt != attempt or row.state != JobState.RUNNING.value:
            return None
        return row


# -- row helpers ---------------------------------------------------------------------------
def _check_fits_queue(request: Resources, queue: Queue) -> None:
    over = request.exceeding(queue.quota)
    if over:
        raise quota_refusal(request, queue, over)


def _log(s: Session, job_id: str, attempt: int, stream: str, line: str, project: str) -> None:
    text = line if len(line) <= MAX_LOG_LINE else line[: MAX_LOG_LINE - 1] + "…"
    s.add(JobLogRow(project=project, job_id=job_id, attempt=attempt, stream=stream, line=text, created_at=_now()))


def _release(row: JobRow) -> None:
    row.worker_id = None
    row.lease_expires_at = None
    row.stop_request = None
    row.stop_requested_at = None
    row.preempted_by = None
    row.process_id = None
    row.gpu_ids = []


def _end(row: JobRow, state: JobState, reason: JobReason, message: str | None, now: datetime) -> None:
    worker = row.worker_id
    row.state = state.value
    row.reason = reason.value
    row.message = message
    row.finished_at = now
    row.updated_at = now
    _release(row)
    row.worker_id = worker  # kept for the record: where it last ran


def _requeue(s: Session, row: JobRow, reason: JobReason, message: str | None, *, restart: bool, now: datetime) -> None:
    attempt = row.attempt
    if row.stop_request == StopRequest.CANCEL.value:
        _end(row, JobState.CANCELLED, JobReason.CANCELLED, "cancelled while it was stopping", now)
        _log(s, row.id, attempt, "system", f"attempt {attempt} stopped ({reason.value}); cancelled as requested", row.project)
        return
    if restart and row.restarts >= row.max_restarts:
        text = f"{message or reason.value}; gave up after {row.restarts} restart(s)"
        _end(row, JobState.FAILED, reason, text, now)
        row.error = {"code": reason.value, "message": text}
        _log(s, row.id, attempt, "system", f"attempt {attempt} failed: {text}", row.project)
        return
    if restart:
        row.restarts += 1
    if reason is JobReason.PREEMPTED:
        row.preemptions += 1
    by = f" by {row.preempted_by}" if reason is JobReason.PREEMPTED and row.preempted_by else ""
    row.state = JobState.QUEUED.value
    row.reason = reason.value
    row.message = message
    row.updated_at = now
    _release(row)
    _log(
        s, row.id, attempt, "system", f"attempt {attempt} requeued ({reason.value}{by})" + (f": {message}" if message else ""), row.project
    )


def _ask_stop(s: Session, row: JobRow, stop: StopRequest, preempted_by: str | None, now: datetime) -> bool:
    if row.state != JobState.RUNNING.value:
        return False
    if row.stop_request == StopRequest.CANCEL.value or row.stop_request == stop.value:
        return False
    row.stop_request = stop.value
    row.stop_requested_at = now
    row.preempted_by = preempted_by if stop is StopRequest.PREEMPT else None
    row.updated_at = now
    if stop is StopRequest.PREEMPT:
        why = f"to make room for job {preempted_by}" if preempted_by else "because its worker is stopping"
        _log(s, row.id, row.attempt, "system", f"asked to checkpoint and yield {why}", row.project)
    else:
        _log(s, row.id, row.attempt, "system", "cancel requested; waiting for the job to stop", row.project)
    return True


def _resources(row: JobRow) -> Resources:
    return Resources(cpu=row.cpu, memory=row.memory_bytes, gpus=row.gpus)


def _progress_json(p: JobProgress) -> dict[str, Any]:
    return {
        "done": p.done,
        "total": p.total,
        "message": p.message,
        "metrics": dict(p.metrics),
        "updated_at": (p.updated_at or _now()).isoformat(),
    }


def _progress(data: dict[str, Any] | None) -> JobProgress:
    if not data:
        return JobProgress()
    updated = data.get("updated_at")
    return JobProgress(
        done=data.get("done") or 0,
        total=data.get("total"),
        message=data.get("message"),
        metrics=dict(data.get("metrics") or {}),
        updated_at=datetime.fromisoformat(updated) if updated else None,
    )


def _job(row: JobRow) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        spec=dict(row.spec or {}),
        queue=row.queue,
        priority_class=row.priority_class,
        priority=row.priority,
        resources=_resources(row),
        state=JobState(row.state),
        reason=JobReason(row.reason),
        message=row.message,
        name=row.name,
        labels=dict(row.labels or {}),
        attempt=row.attempt,
        restarts=row.restarts,
        max_restarts=row.max_restarts,
        preemptions=row.preemptions,
        stop_request=StopRequest(row.stop_request) if row.stop_request else None,
        stop_requested_at=row.stop_requested_at,
        preempted_by=row.preempted_by,
        worker_id=row.worker_id,
        process_id=row.process_id,
        lease_expires_at=row.lease_expires_at,
        gpu_ids=tuple(row.gpu_ids or ()),
        progress=_progress(row.progress),
        result=row.result,
        error=row.error,
        idempotency_key=row.idempotency_key,
        request_hash=row.request_hash,
        created_at=row.created_at,
        queued_at=row.queued_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        updated_at=row.updated_at,
        project=row.project,
    )


def _control(row: JobRow) -> JobControl:
    return JobControl(
        state=JobState(row.state),
        attempt=row.attempt,
        stop_request=StopRequest(row.stop_request) if row.stop_request else None,
        lease_expires_at=row.lease_expires_at,
    )


def _log_line(row: JobLogRow) -> JobLogLine:
    return JobLogLine(seq=row.seq, job_id=row.job_id, attempt=row.attempt, stream=row.stream, line=row.line, created_at=row.created_at)


def _priority_class(row: PriorityClassRow) -> PriorityClass:
    return PriorityClass(name=row.name, value=row.value, description=row.description or "", created_at=row.created_at)


def _queue(row: QueueRow) -> Queue:
    return Queue(
        name=row.name,
        quota=Resources(cpu=row.cpu, memory=row.memory_bytes, gpus=row.gpus),
        preemption=PreemptionPolicy(row.preemption),
        description=row.description or "",
        created_at=row.created_at,
        updated_at=row.updated_at,
        project=row.project,
    )


def _worker(row: WorkerRow) -> WorkerInfo:
    return WorkerInfo(
        id=row.id,
        hostname=row.hostname,
        pid=row.pid,
        capacity=Resources(cpu=row.cpu, memory=row.memory_bytes, gpus=row.gpus),
        queues=tuple(row.queues or ()),
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        process_started=row.process_started,
        stopped_at=row.stopped_at,
    )
