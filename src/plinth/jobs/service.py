"""JobService: submit, inspect, cancel, retry jobs; queues and priority classes; the local worker."""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from plinth.config import Settings
from plinth.domain.jobs import (
    BUILTIN_PRIORITY_CLASSES,
    DEFAULT_PRIORITY_CLASS,
    DEFAULT_QUEUE,
    JOB_ID_RE,
    LABEL_KEY_RE,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    NAME_RE,
    Job,
    JobFilter,
    JobLogLine,
    JobProgress,
    JobState,
    PreemptionPolicy,
    PriorityClass,
    Queue,
    Resources,
    WorkerInfo,
    format_resources,
    new_job_id,
)
from plinth.errors import ErrorCode, PlinthError
from plinth.jobs.executors import ExecutorEntry, executor_entries, executor_entry, load_target
from plinth.jobs.paths import remove_job_files
from plinth.jobs.resources import machine_capacity, parse_bytes
from plinth.store import MetadataStore
from plinth.store.base_jobs import quota_refusal

if TYPE_CHECKING:
    from plinth.jobs.worker import WorkerSupervisor
    from plinth.monitoring.metrics import Metrics

log = logging.getLogger("plinth.jobs")

MAX_SPEC_BYTES = 256 * 1024
MAX_NAME = 200
MAX_IDEMPOTENCY_KEY = 255
MAX_PRIORITY = 1_000_000_000


@dataclass(frozen=True)
class JobEvent:
    """One item of :meth:`JobService.follow`: a new log line, a changed job, or the end."""

    type: str  # "log" | "job" | "end"
    line: JobLogLine | None = None
    job: Job | None = None


class JobFollower:
    """Follows one job: each :meth:`poll` returns the new log lines and, when it changed
    (state, attempt, progress, stop request), the job; after the job finished, one last
    poll returns the remaining lines and an ``end`` event and sets :attr:`done`.

    On Postgres a log line can commit after a line with a higher ``seq``; every poll
    re-reads a window behind the newest line seen and drops the repeats.
    """

    WINDOW = 1000

    def __init__(self, service: JobService, job_id: str, *, after: int = 0, tail: int | None = None) -> None:
        self.service = service
        self.job_id = job_id
        self.after = max(0, after)
        self.tail = tail
        self.done = False
        self._last = self.after
        self._seen: dict[int, None] = {}
        self._job: Job | None = None

    def poll(self) -> list[JobEvent]:
        if self.done:
            return []
        events: list[JobEvent] = []
        job = self.service.get(self.job_id)  # read first: lines before a final state are read after it
        if self._job is None or (job.state, job.attempt, job.progress, job.stop_request) != (
            self._job.state,
            self._job.attempt,
            self._job.progress,
            self._job.stop_request,
        ):
            events.append(JobEvent("job", job=job))
        self._job = job
        if self.tail is not None:
            lines = self.service.logs(self.job_id, after=self.after, tail=self.tail)
            self.tail = None
        else:
            lines = self.service.logs(self.job_id, after=max(self.after, self._last - self.WINDOW), limit=10_000)
        for line in lines:
            if line.seq in self._seen or line.seq <= self.after:
                continue
            self._seen[line.seq] = None
            self._last = max(self._last, line.seq)
            events.append(JobEvent("log", line=line))
        while len(self._seen) > 4 * self.WINDOW:
            self._seen.pop(next(iter(self._seen)))
        if job.state.terminal:
            events.append(JobEvent("end", job=job))
            self.done = True
        return events


class JobService:
    """The job queue as the API, the CLI and other services see it.

    Every method reads and writes the metadata store only, so it works the same from the
    API server, from the CLI and from another machine on the same Postgres. Jobs are run by
    worker supervisors (:class:`plinth.jobs.worker.WorkerSupervisor`): the one ``plinth up``
    starts, and any ``plinth worker``.
    """

    def __init__(self, settings: Settings, store: MetadataStore, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.machine = machine_capacity(settings)
        self._local_worker: WorkerSupervisor | None = None
        #: the ``Services`` this queue belongs to (set by ``build_services``): what each kind's
        #: ``validate(spec, services)`` gets at submit time
        self.services: Any = None

    # -- start-up ------------------------------------------------------------------------
    def ensure_defaults(self) -> None:
        """The built-in priority classes and the ``default`` queue (its quota: this machine)."""
        self.store.ensure_priority_classes([PriorityClass(n, v, d) for n, v, d in BUILTIN_PRIORITY_CLASSES])
        self.store.ensure_queue(Queue(DEFAULT_QUEUE, self.machine, description="Created at start-up with the capacity of the machine."))

    def start_local_worker(self) -> WorkerSupervisor:
        """Run a worker supervisor in a thread of this process (``plinth up``)."""
        from plinth.jobs.worker import WorkerSupervisor

        if self._local_worker is None:
            self._local_worker = WorkerSupervisor(self.settings, self.store, metrics=self.metrics)
            self._local_worker.start()
        return self._local_worker

    @property
    def local_worker(self) -> WorkerSupervisor | None:
        return self._local_worker

    def close(self) -> None:
        """Stop the local worker (its jobs checkpoint and go back to the queue)."""
        if self._local_worker is not None:
            self._local_worker.stop()
            self._local_worker = None

    # -- kinds ---------------------------------------------------------------------------
    def kinds(self) -> builtins.list[ExecutorEntry]:
        return executor_entries()

    def resources_for(self, kind: str, *, cpu: int | None = None, memory: int | str | None = None, gpus: int | None = None) -> Resources:
        """The kind's default request with the given fields replaced (``memory`` may be ``"4GiB"``)."""
        base = executor_entry(kind).default_resources or Resources()
        return Resources(
            cpu=base.cpu if cpu is None else cpu,
            memory=base.memory if memory is None else parse_bytes(memory, param="resources.memory"),
            gpus=base.gpus if gpus is None else gpus,
        )

    # -- submitting ----------------------------------------------------------------------
    def submit(self, kind: str, spec: dict[str, Any] | None = None, **options: Any) -> Job:
        """Validate and enqueue a job (the options of :meth:`submit_request`); returns it."""
        return self.submit_request(kind, spec, **options)[0]

    def submit_request(
        self,
        kind: str,
        spec: dict[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority_class: str | None = None,
        resources: Resources | None = None,
        idempotency_key: str | None = None,
        name: str | None = None,
        labels: dict[str, str] | None = None,
        max_restarts: int | None = None,
    ) -> tuple[Job, bool]:
        """Validate and enqueue a job; returns it and whether it was created now.

        Everything is checked before anything is stored: the kind, the labels, the queue
        and priority class, the request against the machine and the queue's quota (a job
        that could never run is refused), and the spec by the kind's ``validate``. With an
        ``idempotency_key``, the same key and the same request give back the job the key
        first created (``created`` False); the same key with a different request is
        PlinthError(conflict).
        """
        entry = executor_entry(kind)
        spec = {} if spec is None else spec
        if not isinstance(spec, dict):
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"spec must be an object, got {type(spec).__name__}", param="spec")
        raw = _canonical(spec, "spec")
        if len(raw) > MAX_SPEC_BYTES:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"spec is {len(raw)} bytes; at most {MAX_SPEC_BYTES} are allowed", param="spec")
        queue = queue or DEFAULT_QUEUE
        priority_class = priority_class or DEFAULT_PRIORITY_CLASS
        resources = resources or entry.default_resources or Resources()
        _check_resources(resources)
        labels = _check_labels(labels or {})
        if name is not None and (not name.strip() or len(name) > MAX_NAME):
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"name must be 1-{MAX_NAME} characters", param="name")
        if max_restarts is None:
            max_restarts = self.settings.jobs_max_restarts
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or not 0 <= max_restarts <= 100:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "max_restarts must be an integer from 0 to 100", param="max_restarts")
        if idempotency_key is not None:
            _check_idempotency_key(idempotency_key)
        request_hash = (
            "sha256:"
            + hashlib.sha256(
                _canonical(
                    {
                        "kind": kind,
                        "spec": spec,
                        "queue": queue,
                        "priority_class": priority_class,
                        "resources": resources.as_dict(),
                        "name": name,
                        "labels": labels,
                        "max_restarts": max_restarts,
                    },
                    "request",
                )
            ).hexdigest()
        )
        if idempotency_key is not None:
            existing = self.store.find_job_by_idempotency_key(idempotency_key)
            if existing is not None:
                return self._replay(existing, idempotency_key, request_hash), False
        try:
            q = self.store.get_queue(queue)
        except PlinthError as e:
            if e.code is ErrorCode.NOT_FOUND:
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"queue {queue!r} does not exist", param="queue") from None
            raise
        try:
            pc = self.store.get_priority_class(priority_class)
        except PlinthError as e:
            if e.code is ErrorCode.NOT_FOUND:
                known = ", ".join(p.name for p in self.store.list_priority_classes())
                raise PlinthError(
                    ErrorCode.INVALID_REQUEST,
                    f"priority class {priority_class!r} does not exist; known: {known}",
                    param="priority_class",
                ) from None
            raise
        self._check_fits_machine(resources)
        over = resources.exceeding(q.quota)
        if over:  # the store checks again in the insert's transaction
            raise quota_refusal(resources, q, over)
        normalised = spec
        if entry.validate:
            normalised = load_target(entry.validate)(dict(spec), self.services)
            if not isinstance(normalised, dict):
                raise PlinthError(ErrorCode.INTERNAL, f"{entry.validate} returned {type(normalised).__name__}, not a dict")
            _canonical(normalised, "the validated spec")
        now = datetime.now(UTC)
        job = Job(
            id=new_job_id(int(now.timestamp() * 1000), uuid.uuid4().hex),
            kind=kind,
            spec=normalised,
            queue=queue,
            priority_class=pc.name,
            priority=pc.value,
            resources=resources,
            name=name,
            labels=labels,
            max_restarts=max_restarts,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            created_at=now,
        )
        stored, created = self.store.add_job(job)
        if not created:
            return self._replay(stored, idempotency_key or "", request_hash), False
        if self.metrics is not None:
            self.metrics.jobs_submitted.labels(kind).inc()
        self.wake()
        return stored, True

    @staticmethod
    def _replay(existing: Job, key: str, request_hash: str) -> Job:
        if existing.request_hash != request_hash:
            raise PlinthError(
                ErrorCode.CONFLICT,
                f"Idempotency-Key {key!r} was already used for a different request (job {existing.id}); use a new key for a new job",
                param="Idempotency-Key",
                details={"job_id": existing.id},
            )
        return existing

    def _check_fits_machine(self, request: Resources) -> None:
        machines = [self.machine] + [w.capacity for w in self.live_workers()]
        if not any(request.fits_in(m) for m in machines):
            biggest = max(machines, key=lambda m: (m.gpus, m.cpu, m.memory))
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"the job requests {format_resources(request)}, more than any machine offers "
                f"(largest: {format_resources(biggest)}): it could never run",
                param="resources",
                details={"request": request.as_dict(), "largest_machine": biggest.as_dict()},
            )

    def cluster_capacity(self) -> Resources:
        """What the live workers offer together (this machine when there are none)."""
        workers = self.live_workers()
        total = Resources.zero()
        for w in workers:
            total = total + w.capacity
        return Resources(max(total.cpu, self.machine.cpu), max(total.memory, self.machine.memory), max(total.gpus, self.machine.gpus))

    # -- reading -------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        _check_job_id(job_id)
        return self.store.get_job(job_id)

    def list(
        self,
        *,
        states: tuple[JobState, ...] = (),
        kind: str | None = None,
        queue: str | None = None,
        labels: dict[str, str] | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> builtins.list[Job]:
        if not 1 <= limit <= 1000:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "limit must be from 1 to 1000", param="limit")
        if before is not None:
            _check_job_id(before)
        return self.store.list_jobs(JobFilter(states=states, kind=kind, queue=queue, labels=dict(labels or {}), limit=limit, before=before))

    def progress(self, job_id: str) -> JobProgress:
        return self.get(job_id).progress

    def logs(self, job_id: str, *, after: int = 0, limit: int = 1000, tail: int | None = None) -> builtins.list[JobLogLine]:
        _check_job_id(job_id)
        if not 1 <= limit <= 10_000:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "limit must be from 1 to 10000", param="limit")
        if tail is not None and not 1 <= tail <= 10_000:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "tail must be from 1 to 10000", param="tail")
        return self.store.job_logs(job_id, after=max(0, after), limit=limit, tail=tail)

    def follow(
        self, job_id: str, *, after: int = 0, tail: int | None = None, poll_s: float = 0.5, timeout_s: float | None = None
    ) -> Iterator[JobEvent]:
        """Log lines as they are written and the job whenever its state or progress changes,
        until the job finishes (then one ``end`` event) or ``timeout_s`` passes."""
        follower = self.follower(job_id, after=after, tail=tail)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            yield from follower.poll()
            if follower.done or (deadline is not None and time.monotonic() > deadline):
                return
            time.sleep(poll_s)

    def follower(self, job_id: str, *, after: int = 0, tail: int | None = None) -> JobFollower:
        """A :class:`JobFollower`: call ``poll()`` repeatedly (the API does, asynchronously)."""
        _check_job_id(job_id)
        self.store.get_job(job_id)  # 404 now, not at the first poll
        return JobFollower(self, job_id, after=after, tail=tail)

    def wait(self, job_id: str, *, timeout_s: float = 600, poll_s: float = 0.2) -> Job:
        """Block until the job finishes (or ``timeout_s``); returns the job as it is then."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.get(job_id)
            if job.state.terminal or time.monotonic() > deadline:
                return job
            time.sleep(poll_s)

    # -- changing ------------------------------------------------------------------------
    def cancel(self, job_id: str) -> Job:
        _check_job_id(job_id)
        job = self.store.cancel_job(job_id)
        self.wake()
        return job

    def retry(self, job_id: str) -> Job:
        job = self.get(job_id)
        self._check_fits_machine(job.resources)
        job = self.store.retry_job(job_id)
        self.wake()
        return job

    def delete(self, job_id: str) -> Job:
        _check_job_id(job_id)
        job = self.store.delete_job(job_id)
        remove_job_files(self.settings, job_id)
        return job

    # -- queues --------------------------------------------------------------------------
    def create_queue(
        self,
        name: str,
        quota: Resources,
        *,
        preemption: PreemptionPolicy = PreemptionPolicy.LOWER_PRIORITY,
        description: str = "",
        project: str = "",
    ) -> Queue:
        """A queue; ``project``: the one project whose jobs it takes ("": every project's)."""
        _check_name(name, "queue")
        self._check_quota(quota)
        return self.store.add_queue(Queue(name, quota, preemption, description, project=project))

    def update_queue(
        self,
        name: str,
        *,
        quota: Resources | None = None,
        preemption: PreemptionPolicy | None = None,
        description: str | None = None,
    ) -> Queue:
        if quota is not None:
            self._check_quota(quota)
        queue = self.store.update_queue(name, quota=quota, preemption=preemption, description=description)
        self.wake()
        return queue

    def delete_queue(self, name: str) -> Queue:
        if name == DEFAULT_QUEUE:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "the default queue cannot be deleted (change its quota instead)")
        return self.store.delete_queue(name)

    def get_queue(self, name: str) -> Queue:
        return self.store.get_queue(name)

    def list_queues(self) -> builtins.list[Queue]:
        return self.store.list_queues()

    def queue_usage(self) -> dict[str, dict[str, Any]]:
        usage = self.store.queue_usage()
        if self.metrics is not None:
            for queue, u in usage.items():
                self.metrics.jobs.labels(queue, "queued").set(u["queued"])
                self.metrics.jobs.labels(queue, "running").set(u["running"])
        return usage

    def _check_quota(self, quota: Resources) -> None:
        if quota.cpu < 0 or quota.memory < 0 or quota.gpus < 0:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "a quota cannot be negative", param="quota")
        capacity = self.cluster_capacity()
        over = quota.exceeding(capacity)
        if over:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"a quota of {format_resources(quota)} is larger than the machines offer "
                f"({format_resources(capacity)}; {', '.join(over)} too large)",
                param="quota",
                details={"quota": quota.as_dict(), "capacity": capacity.as_dict(), "exceeding": over},
            )

    # -- priority classes ----------------------------------------------------------------
    def create_priority_class(self, name: str, value: int, description: str = "") -> PriorityClass:
        _check_name(name, "priority class")
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_PRIORITY:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"value must be an integer from -{MAX_PRIORITY} to {MAX_PRIORITY}", param="value")
        return self.store.add_priority_class(PriorityClass(name, value, description))

    def list_priority_classes(self) -> builtins.list[PriorityClass]:
        return self.store.list_priority_classes()

    def delete_priority_class(self, name: str) -> PriorityClass:
        if name in {n for n, _, _ in BUILTIN_PRIORITY_CLASSES}:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"the built-in priority class {name!r} cannot be deleted")
        return self.store.delete_priority_class(name)

    # -- workers -------------------------------------------------------------------------
    def live_workers(self) -> builtins.list[WorkerInfo]:
        """Workers that heartbeated within three leases."""
        cutoff = datetime.now(UTC) - timedelta(seconds=3 * self.settings.jobs_lease_s)
        return [w for w in self.store.list_workers() if w.heartbeat_at and w.heartbeat_at >= cutoff]

    def wake(self) -> None:
        """Tell the local worker (if any) to look at the queue now."""
        if self._local_worker is not None:
            self._local_worker.wake()


# -- checks ----------------------------------------------------------------------------------
def _canonical(value: Any, what: str) -> bytes:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()
    except (TypeError, ValueError) as e:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{what} must be JSON: {e}", param="spec") from None


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid {what} name {name!r}: use 1-63 lowercase letters, digits, '.', '_' or '-'",
            param="name",
        )


def _check_job_id(job_id: str) -> None:
    if not isinstance(job_id, str) or not JOB_ID_RE.match(job_id):
        raise PlinthError(
            ErrorCode.NOT_FOUND,
            f"job {job_id!r} does not exist (job ids look like job-0193a4c2e1f04b2a9c3d)",
            details={"kind": "job", "name": str(job_id)},
        )


def _check_resources(r: Resources) -> None:
    for field, value, lo in (("cpu", r.cpu, 1), ("memory", r.memory, 1 << 20), ("gpus", r.gpus, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"resources.{field} must be an integer of at least {lo}; got {value!r}",
                param=f"resources.{field}",
            )


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    if not isinstance(labels, dict):
        raise PlinthError(ErrorCode.INVALID_REQUEST, "labels must be an object of strings", param="labels")
    if len(labels) > MAX_LABELS:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"at most {MAX_LABELS} labels are allowed", param="labels")
    for k, v in labels.items():
        if not isinstance(k, str) or not LABEL_KEY_RE.match(k):
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"invalid label key {k!r}: 1-63 letters, digits, '.', '_', '/' or '-'",
                param="labels",
            )
        if not isinstance(v, str) or len(v) > MAX_LABEL_VALUE:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"label {k!r} must be a string of at most {MAX_LABEL_VALUE} characters",
                param="labels",
            )
    return dict(labels)


def _check_idempotency_key(key: str) -> None:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters",
            param="Idempotency-Key",
        )
