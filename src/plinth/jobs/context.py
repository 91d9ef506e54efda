"""What an executor's ``run(ctx)`` gets: :class:`JobContext`, and the exceptions it raises.

The context talks to the metadata store from the job's own process. ``progress`` and
``log`` only queue their data; a background thread writes it every
``jobs_poll_interval_s`` in one fenced transaction (see
:meth:`plinth.store.base_jobs.JobsStore.report_job`) and reads back the job's control
state, so ``should_stop()`` costs nothing and the executor may call it after every step.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plinth.domain.jobs import Job, JobControl, JobProgress, JobState, Resources, StopRequest

if TYPE_CHECKING:
    from plinth.config import Settings
    from plinth.store import MetadataStore

log = logging.getLogger("plinth.jobs")

MAX_PENDING_LOG_LINES = 10_000
EXIT_LEASE_LOST = 75  # the job's attempt is no longer current: another process may own it


class Preempted(Exception):  # it is a signal to the runner, not an error
    """Raise from ``run`` after saving a checkpoint when ``should_stop()`` is ``"preempt"``:
    the job goes back to the queue and a later attempt resumes from ``checkpoint_dir``."""


class Cancelled(Exception):
    """Raise from ``run`` when ``should_stop()`` is ``"cancel"``: the job ends cancelled."""


class LeaseLost(BaseException):  # BaseException: executors' ``except Exception`` must not swallow it
    """This process's attempt is no longer the job's current one (its lease expired and the
    job was requeued, or it was reaped). Nothing more may be written; the process exits."""


class JobContext:
    """The job, its resources and its channel back to the queue, for ``run(ctx)``.

    Attributes: ``job_id``, ``kind``, ``spec`` (the validated spec), ``attempt`` (1 for the
    first run; a preempted or requeued job runs again with the next number), ``resources``
    (what was granted: ``cpu`` threads, ``memory`` bytes, ``gpus``), ``gpu_ids`` (the device
    ids in ``CUDA_VISIBLE_DEVICES``), ``settings``, ``checkpoint_dir`` (kept across attempts,
    under ``$PLINTH_HOME/jobs/<id>/checkpoint``), ``name`` and ``labels``.
    """

    def __init__(
        self,
        job: Job,
        *,
        settings: Settings,
        store: MetadataStore,
        checkpoint_dir: Path,
        worker_id: str | None = None,
        flush_interval_s: float | None = None,
        services_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.job_id = job.id
        self.kind = job.kind
        self.spec: dict[str, Any] = dict(job.spec)
        self.attempt = job.attempt
        self.resources: Resources = job.resources
        self.gpu_ids = job.gpu_ids
        self.name = job.name
        self.labels = dict(job.labels)
        self.settings = settings
        self.worker_id = worker_id
        self.checkpoint_dir = Path(checkpoint_dir)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self._store = store
        self._services: Any = None
        self._services_factory = services_factory
        self._interval = flush_interval_s if flush_interval_s is not None else settings.jobs_poll_interval_s
        self._lock = threading.Lock()
        self._logs: deque[str] = deque()
        self._dropped = 0
        self._progress: JobProgress | None = None
        self._control: JobControl | None = JobControl(JobState.RUNNING, job.attempt, job.stop_request, job.lease_expires_at)
        self._lost: str | None = None
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    # -- for executors ---------------------------------------------------------------------
    def progress(self, done: float, total: float | None = None, message: str | None = None, **metrics: Any) -> None:
        """Report ``done`` of ``total`` steps, a short message and metrics (numbers, strings);
        the latest value is stored on the job (``plinth jobs show`` draws it)."""
        p = JobProgress(done=done, total=total, message=message, metrics=_jsonable(metrics), updated_at=datetime.now(UTC))
        with self._lock:
            self._progress = p
        if total is not None and done >= total:
            self._wake.set()

    def log(self, line: str) -> None:
        """Append a line to the job's persisted log (``plinth jobs logs -f`` tails it)."""
        text = str(line).rstrip("\n")
        with self._lock:
            for part in text.split("\n") or [""]:
                if len(self._logs) >= MAX_PENDING_LOG_LINES:
                    self._logs.popleft()
                    self._dropped += 1
                self._logs.append(part)

    def should_stop(self) -> str | None:
        """``None`` to go on, ``"preempt"`` (save a checkpoint, then raise :class:`Preempted`)
        or ``"cancel"`` (stop; raise :class:`Cancelled`). Raises :class:`LeaseLost` when the
        job no longer belongs to this process."""
        if self._lost:
            raise LeaseLost(self._lost)
        ctl = self._control
        if ctl is None or ctl.stop_request is None:
            return None
        return ctl.stop_request.value

    def check_stop(self) -> None:
        """Raise :class:`Preempted` or :class:`Cancelled` if a stop is requested. Call it
        only where the checkpoint on disk is current."""
        stop = self.should_stop()
        if stop == StopRequest.PREEMPT.value:
            raise Preempted()
        if stop == StopRequest.CANCEL.value:
            raise Cancelled()

    @property
    def resumed(self) -> bool:
        """True when ``checkpoint_dir`` holds something from an earlier attempt."""
        try:
            return any(self.checkpoint_dir.iterdir())
        except OSError:
            return False

    @property
    def services(self) -> Any:
        """The full services (``plinth.services.Services``: catalog, datasets, artifacts...),
        built on first use in this process by the factory the job's runner passed."""
        if self._services is None:
            if self._services_factory is None:
                raise RuntimeError("this JobContext was made without a services factory")
            self._services = self._services_factory()
        return self._services

    # -- for the runner --------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"job-{self.job_id}-report", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the reporting thread and write what is still pending."""
        self._closed.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()
        if self._services is not None:
            self._services.close()
            self._services = None

    def flush(self) -> None:
        """Write pending logs and progress now and refresh the control state."""
        with self._lock:
            lines = list(self._logs)
            self._logs.clear()
            progress, self._progress = self._progress, None
            dropped, self._dropped = self._dropped, 0
        if dropped:
            lines.insert(0, f"[{dropped} log lines dropped: the store could not keep up]")
        try:
            ctl = self._store.report_job(self.job_id, self.attempt, progress=progress, logs=lines)
        except Exception as e:  # the store is unavailable: keep the data for the next try
            with self._lock:
                self._logs.extendleft(reversed(lines))
                if self._progress is None:
                    self._progress = progress
            log.warning("job %s: cannot report to the store: %s", self.job_id, e)
            return
        self._control = ctl
        if ctl is None or ctl.attempt != self.attempt or ctl.state is not JobState.RUNNING:
            state = "deleted" if ctl is None else f"{ctl.state.value}, attempt {ctl.attempt}"
            self._lost = f"job {self.job_id} attempt {self.attempt} is no longer current (now {state})"
        elif ctl.lease_expires_at is not None and ctl.lease_expires_at < datetime.now(UTC):
            self._lost = f"job {self.job_id} attempt {self.attempt}: its lease expired (the worker stopped renewing it)"

    def _loop(self) -> None:
        lost_since: float | None = None
        while not self._closed.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._closed.is_set():
                break
            self.flush()
            if self._lost:
                # Give the executor a moment to see LeaseLost at its next should_stop(), then
                # make sure this process stops: another attempt may be starting elsewhere.
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > max(2.0, 4 * self._interval):
                    log.error("%s; exiting", self._lost)
                    os._exit(EXIT_LEASE_LOST)


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or v is None or isinstance(v, str):
            out[k] = v
        elif isinstance(v, (int, float)):
            out[k] = v if v == v and v not in (float("inf"), float("-inf")) else None
        else:
            try:
                out[k] = float(v)  # numpy / torch scalars
            except (TypeError, ValueError):
                out[k] = str(v)
    return out
