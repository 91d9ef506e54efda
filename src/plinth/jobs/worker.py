"""The worker supervisor: admits jobs, runs each in its own process, holds their leases.

One supervisor per ``plinth worker`` process (and one thread in ``plinth up``). Every
``jobs_poll_interval_s`` it

1. collects job processes that exited; one that ended without recording an outcome was
   killed or crashed: its job is requeued (a signal: ``process_killed``, counted as a
   restart) or failed (``process_exited``), with the tail of its output in the job's log;
2. renews its heartbeat and the leases of its jobs, and reads their stop requests; a job
   asked to stop that is still running after ``jobs_stop_grace_s`` is killed (a cancel
   ends ``cancelled``, a preemption is requeued); a job whose lease it no longer holds is
   killed at once;
3. kills a job whose processes use more memory than it requested (``memory_limit``);
4. finds workers on this host whose process is gone, kills their leftover job processes,
   and hands them to the scheduling pass so their jobs are requeued at once instead of
   after their leases expire;
5. runs one scheduling pass (:meth:`JobsStore.schedule` with
   :func:`plinth.jobs.scheduler.plan`) and starts a process for every job it admitted.

A job's process is ``python -m plinth.job_process`` in a new session, with its stdout and
stderr in ``$PLINTH_HOME/jobs/<id>/attempt-<n>.out``, ``OMP_NUM_THREADS`` and friends set
to the granted CPU threads, and ``CUDA_VISIBLE_DEVICES`` to the granted GPUs (empty for a
job without GPUs). Its stdin is a pipe from the supervisor: if the supervisor dies, the
job's process sees end-of-file and exits.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plinth.config import Settings
from plinth.domain.jobs import (
    Job,
    JobFilter,
    JobReason,
    JobState,
    Resources,
    StopRequest,
    WorkerInfo,
    format_bytes,
)
from plinth.domain.projects import system_scope
from plinth.jobs.paths import job_dir, output_path
from plinth.jobs.ray_backend import RayBackend, RayJob
from plinth.jobs.resources import machine_capacity, visible_gpu_ids
from plinth.jobs.scheduler import plan
from plinth.store import MetadataStore

if TYPE_CHECKING:
    from plinth.monitoring.metrics import Metrics

log = logging.getLogger("plinth.jobs.worker")

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
DEAD_WORKER_CHECK_S = 5.0
OUTPUT_TAIL_LINES = 30


@dataclass
class _Child:
    job: Job
    proc: subprocess.Popen[bytes] | RayJob  # a RayJob: the job runs on a Ray cluster (ADR 0105)
    out: Path
    stop_seen_at: float | None = None  # monotonic, when a stop request was first seen
    stop: StopRequest | None = None
    killed_for: JobReason | None = None  # why the supervisor killed it
    kill_message: str | None = None
    lost: bool = False  # the lease is no longer ours: nothing to record
    finishing_since: float | None = None  # it recorded its outcome; waiting for it to exit
    peak_rss: int = 0
    ps: Any = field(default=None, repr=False)


class WorkerSupervisor:
    def __init__(
        self,
        settings: Settings,
        store: MetadataStore,
        *,
        capacity: Resources | None = None,
        queues: list[str] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.capacity = capacity or machine_capacity(settings)
        self.queues = list(queues if queues is not None else settings.worker_queues)
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.id = f"{self.hostname[:60]}-{self.pid}-{uuid.uuid4().hex[:6]}"
        self._gpu_device_ids = visible_gpu_ids(self.capacity.gpus)
        self._children: dict[str, _Child] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_dead_check = 0.0
        self._started = False
        self._grace_override: float | None = None
        self.passes = 0
        self._ray = RayBackend.from_settings(settings)  # None unless ray_address is set

    # -- lifecycle -----------------------------------------------------------------------
    def register(self) -> WorkerInfo:
        import psutil

        info = WorkerInfo(
            id=self.id,
            hostname=self.hostname,
            pid=self.pid,
            capacity=self.capacity,
            queues=tuple(self.queues),
            process_started=psutil.Process(self.pid).create_time(),
        )
        self._started = True
        return self.store.register_worker(info)

    def start(self) -> None:
        """Register and run the loop in a daemon thread."""
        self.register()
        self._thread = threading.Thread(target=self._loop, name=f"plinth-worker-{self.id}", daemon=True)
        self._thread.start()

    def run_forever(self) -> None:
        """Register and run the loop in this thread until :meth:`stop` (or a signal handler calls it)."""
        self.register()
        self._loop()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, grace_s: float | None = None) -> None:
        """Stop taking jobs; ask running jobs to checkpoint and yield, wait up to
        ``grace_s`` (``jobs_shutdown_grace_s``), kill the rest; all go back to the queue."""
        if grace_s is not None:
            self._grace_override = grace_s
        self._stopping.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=(grace_s if grace_s is not None else self.settings.jobs_shutdown_grace_s) + 30)

    @property
    def running_jobs(self) -> list[str]:
        return list(self._children)

    def _loop(self) -> None:
        with system_scope():  # the queue of every project
            self._passes()

    def _passes(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    self.tick()
                except Exception as e:  # the store may be down for a moment: keep going
                    log.error("worker %s: pass failed: %s", self.id, e, exc_info=not _is_plinth_error(e))
                self._wake.wait(self.settings.jobs_poll_interval_s)
                self._wake.clear()
            self._shutdown()
        finally:
            self._stopped.set()

    # -- one pass ------------------------------------------------------------------------
    def tick(self) -> None:
        self.passes += 1
        for child in list(self._children.values()):
            if child.proc.poll() is not None:
                self._collect(child)
        now = datetime.now(UTC)
        lease_until = now + timedelta(seconds=self.settings.jobs_lease_s)
        controls = self.store.worker_heartbeat(self.id, now=now, lease_until=lease_until)
        grace = self.settings.jobs_stop_grace_s
        for child in list(self._children.values()):
            ctl = controls.get(child.job.id)
            if ctl is None or ctl.attempt != child.job.attempt:
                self._not_ours(child)
                continue
            if ctl.stop_request is not None:
                if child.stop is not ctl.stop_request:
                    child.stop, child.stop_seen_at = ctl.stop_request, time.monotonic()
                elif child.killed_for is None and time.monotonic() - (child.stop_seen_at or 0) > grace:
                    child.killed_for = JobReason.STOP_TIMEOUT
                    child.kill_message = f"did not stop within {grace:g} s of the {ctl.stop_request.value} request; killed"
                    _kill(child.proc)
        if self.settings.jobs_enforce_memory:
            self._enforce_memory()
        dead = self._dead_local_workers()
        free = self.capacity
        used_gpus: set[int] = set()
        for child in self._children.values():
            free = free - child.job.resources
            used_gpus.update(child.job.gpu_ids)
        decide = functools.partial(
            plan,
            worker_free=free,
            free_gpu_ids=[i for i in range(self.capacity.gpus) if i not in used_gpus],
            worker_queues=self.queues,
        )
        outcome = self.store.schedule(self.id, decide, now=now, lease_until=lease_until, dead_workers=dead)
        for job in outcome.admitted:
            self._spawn(job)
        if self.metrics is not None:
            self._count(outcome)

    def _count(self, outcome: Any) -> None:
        m = self.metrics
        assert m is not None
        for job in outcome.admitted:
            m.job_transitions.labels("running", JobReason.ADMITTED.value).inc()
            if job.queued_at and job.started_at:
                m.job_queue_wait.labels(job.queue).observe(max(0.0, (job.started_at - job.queued_at).total_seconds()))
        for pre in outcome.preempted:
            m.job_preemptions.labels(pre.victim.queue).inc()
        for job in outcome.requeued + outcome.failed + outcome.cancelled:
            m.job_transitions.labels(job.state.value, job.reason.value).inc()
        for queue, usage in self.store.queue_usage().items():
            m.jobs.labels(queue, "queued").set(usage["queued"])
            m.jobs.labels(queue, "running").set(usage["running"])

    # -- job processes -------------------------------------------------------------------
    def _spawn(self, job: Job) -> None:
        out = output_path(self.settings, job.id, job.attempt)
        out.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        for name in THREAD_ENV:
            env[name] = str(job.resources.cpu)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(self._gpu_device_ids[i] for i in job.gpu_ids)
        env["PYTHONUNBUFFERED"] = "1"
        src = str(Path(__file__).resolve().parents[2])  # so a source checkout runs the same code
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        settings = self.settings.model_dump(mode="json")
        settings["secrets"] = self.settings.plain_secrets()  # masked in the dump; the job's remote models need them (on stdin only)
        settings["config"] = None
        settings["threads"] = job.resources.cpu
        if self._ray is not None and self._ray.handles(job.kind):
            self._submit_to_ray(job, settings, out)
            return
        fh = open(out, "ab")  # noqa: SIM115 - the child owns it
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "plinth.job_process", job.id, str(job.attempt), self.id],
                stdin=subprocess.PIPE,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(job_dir(self.settings, job.id)),
                start_new_session=True,
            )
        except OSError as e:
            fh.close()
            msg = f"cannot start the job's process: {e}"
            self.store.finish_job(
                job.id,
                job.attempt,
                JobState.FAILED,
                JobReason.PROCESS_EXITED,
                message=msg,
                error={"code": JobReason.PROCESS_EXITED.value, "message": msg},
            )
            return
        fh.close()
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(settings).encode() + b"\n")
            proc.stdin.flush()
        except OSError:  # it died at once; collected on the next pass
            pass
        self._children[job.id] = _Child(job=job, proc=proc, out=out)
        self.store.set_job_process(job.id, job.attempt, proc.pid)
        log.info("worker %s: started job %s (%s) attempt %d as pid %d", self.id, job.id, job.kind, job.attempt, proc.pid)

    def _submit_to_ray(self, job: Job, settings: dict[str, Any], out: Path) -> None:
        assert self._ray is not None
        try:
            handle = self._ray.submit(job, settings, worker_id=self.id, out=out, store=self.store)
        except Exception as e:  # Ray unreachable or refused it: plinth retries, as for a killed process
            msg = f"cannot submit the job to Ray at {self._ray.address}: {e}"
            log.warning("worker %s: job %s: %s", self.id, job.id, msg)
            self.store.requeue_job(job.id, job.attempt, JobReason.PROCESS_KILLED, message=msg, restart=True)
            return
        self._children[job.id] = _Child(job=job, proc=handle, out=out)

    def _collect(self, child: _Child) -> None:
        """The process of ``child`` exited; record an outcome if it did not."""
        del self._children[child.job.id]
        with contextlib.suppress(OSError):
            if child.proc.stdin is not None:
                child.proc.stdin.close()
        rc = child.proc.returncode
        job = child.job
        if child.lost:
            return
        try:
            current = self.store.get_job(job.id)
        except Exception:  # deleted meanwhile (or the store is down: the lease will expire)
            return
        if current.state is not JobState.RUNNING or current.attempt != job.attempt:
            return  # the process recorded its outcome
        tail = _tail(child.out, OUTPUT_TAIL_LINES)
        if tail:
            self.store.append_job_logs(job.id, job.attempt, "stderr", tail)
        a = job.attempt
        if child.killed_for is JobReason.MEMORY_LIMIT:
            self.store.finish_job(
                job.id,
                a,
                JobState.FAILED,
                JobReason.MEMORY_LIMIT,
                message=child.kill_message,
                error={"code": JobReason.MEMORY_LIMIT.value, "message": child.kill_message, "peak_rss": child.peak_rss},
            )
        elif child.killed_for is JobReason.STOP_TIMEOUT:
            if current.stop_request is StopRequest.CANCEL:
                self.store.finish_job(job.id, a, JobState.CANCELLED, JobReason.CANCELLED, message=child.kill_message)
            else:
                reason = JobReason.PREEMPTED if current.preempted_by else JobReason.WORKER_SHUTDOWN
                self.store.requeue_job(job.id, a, reason, message=f"{child.kill_message}; resumes from its last checkpoint")
        elif child.killed_for is JobReason.WORKER_SHUTDOWN:
            self.store.requeue_job(job.id, a, JobReason.WORKER_SHUTDOWN, message="its worker stopped; killed after the grace period")
        elif rc is not None and rc < 0:
            name = _signal_name(-rc)
            self.store.requeue_job(job.id, a, JobReason.PROCESS_KILLED, message=f"the job's process was killed by {name}", restart=True)
        else:
            msg = f"the job's process exited with code {rc} without recording a result"
            self.store.finish_job(
                job.id,
                a,
                JobState.FAILED,
                JobReason.PROCESS_EXITED,
                message=msg,
                error={"code": JobReason.PROCESS_EXITED.value, "message": msg, "exit_code": rc},
            )
        log.info("worker %s: job %s attempt %d process exited with %s", self.id, job.id, a, rc)

    def _not_ours(self, child: _Child) -> None:
        """The heartbeat no longer lists the job as running here: either its process just
        recorded its outcome and is exiting, or the lease was lost (the job was reaped and
        may run elsewhere): then the process is killed at once."""
        if child.lost:
            return
        try:
            current = self.store.get_job(child.job.id)
        except Exception:
            current = None
        if current is not None and current.attempt == child.job.attempt and current.state.terminal:
            if child.finishing_since is None:
                child.finishing_since = time.monotonic()
            elif time.monotonic() - child.finishing_since > 30:
                _kill(child.proc)  # it recorded its outcome but does not exit
            return
        if current is not None and current.attempt == child.job.attempt and current.state is JobState.QUEUED:
            return  # it requeued itself (preempted) and is exiting
        log.warning("worker %s: lost the lease of job %s; killing its process", self.id, child.job.id)
        child.lost = True
        _kill(child.proc)

    def _enforce_memory(self) -> None:
        import psutil

        for child in self._children.values():
            if isinstance(child.proc, RayJob):  # Ray limits its memory (entrypoint_memory)
                continue
            if child.killed_for is not None or child.proc.poll() is not None:
                continue
            try:
                if child.ps is None:
                    child.ps = psutil.Process(child.proc.pid)
                rss = child.ps.memory_info().rss + sum(c.memory_info().rss for c in child.ps.children(recursive=True) if c.is_running())
            except (psutil.Error, OSError):
                continue
            child.peak_rss = max(child.peak_rss, rss)
            limit = child.job.resources.memory
            if rss > limit:
                child.killed_for = JobReason.MEMORY_LIMIT
                child.kill_message = (
                    f"the job used {format_bytes(rss)} of memory, more than the {format_bytes(limit)} it requested; killed "
                    "(request more with --memory)"
                )
                _kill(child.proc)

    def _dead_local_workers(self) -> list[str]:
        """Workers on this host whose process is gone; their leftover job processes are killed."""
        if time.monotonic() - self._last_dead_check < DEAD_WORKER_CHECK_S:
            return []
        self._last_dead_check = time.monotonic()
        import psutil

        dead = []
        for w in self.store.list_workers():
            if w.id == self.id or w.hostname != self.hostname:
                continue
            if _alive(psutil, w.pid, w.process_started):
                continue
            dead.append(w.id)
            for job in self.store.list_jobs(JobFilter(states=(JobState.RUNNING,), worker_id=w.id, limit=1000)):
                self._kill_orphan(psutil, job)
        return dead

    def _kill_orphan(self, psutil: Any, job: Job) -> None:
        pid = job.process_id
        if pid is None:
            pid = _find_runner(psutil, job.id)
        if pid is None:
            return
        try:
            proc = psutil.Process(pid)
            if job.id in " ".join(proc.cmdline()) and "plinth.job_process" in " ".join(proc.cmdline()):
                log.warning("worker %s: killing leftover process %d of job %s (its worker is gone)", self.id, pid, job.id)
                os.killpg(pid, signal.SIGKILL)
                proc.wait(timeout=5)
        except (psutil.Error, OSError):
            pass

    # -- stopping ------------------------------------------------------------------------
    def _shutdown(self) -> None:
        grace = self._grace_override if self._grace_override is not None else self.settings.jobs_shutdown_grace_s
        for child in list(self._children.values()):
            if child.proc.poll() is not None:
                with contextlib.suppress(Exception):
                    self._collect(child)
        if self._children:
            log.info("worker %s: stopping; asking %d job(s) to checkpoint and yield", self.id, len(self._children))
            with contextlib.suppress(Exception):
                self.store.request_stop(list(self._children), StopRequest.PREEMPT, preempted_by=None)
        deadline = time.monotonic() + grace
        killed = False
        while self._children:
            for child in list(self._children.values()):
                if child.proc.poll() is not None:
                    with contextlib.suppress(Exception):
                        self._collect(child)
            if not self._children:
                break
            if time.monotonic() > deadline and not killed:
                for child in self._children.values():
                    if child.killed_for is None:
                        child.killed_for = JobReason.WORKER_SHUTDOWN
                    _kill(child.proc)
                killed = True
            with contextlib.suppress(Exception):  # keep the leases while the jobs checkpoint
                now = datetime.now(UTC)
                self.store.worker_heartbeat(self.id, now=now, lease_until=now + timedelta(seconds=self.settings.jobs_lease_s))
            time.sleep(0.1)
        if self._started:
            with contextlib.suppress(Exception):
                self.store.stop_worker(self.id, now=datetime.now(UTC))
        log.info("worker %s: stopped", self.id)


def _kill(proc: subprocess.Popen[bytes] | RayJob) -> None:
    if isinstance(proc, RayJob):
        proc.kill()  # stop_job on Ray
        return
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.kill()


def _alive(psutil: Any, pid: int, started: float | None) -> bool:
    try:
        proc = psutil.Process(pid)
        if started is not None and abs(proc.create_time() - started) > 1.0:
            return False  # the pid was reused by another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _find_runner(psutil: Any, job_id: str) -> int | None:
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if "plinth.job_process" in cmd and job_id in cmd:
            return int(proc.info["pid"])
    return None


def _tail(path: Path, n: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    lines = [ln for ln in data.splitlines() if ln.strip()]
    return lines[-n:]


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _is_plinth_error(e: Exception) -> bool:
    from plinth.errors import PlinthError

    return isinstance(e, PlinthError)
