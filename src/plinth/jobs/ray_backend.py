"""Running leased jobs on a Ray cluster through the Ray Jobs API, with plinth's queue semantics.

When ``ray_address`` (``PLINTH_RAY_ADDRESS``, the dashboard's HTTP address, e.g.
``http://127.0.0.1:8265``) is set, a worker supervisor submits the jobs of the kinds in
``ray_kinds`` (default ``tune`` and ``eval``) that it admitted to Ray instead of starting
their process itself (ADR 0105). Everything else stays plinth's:

* the job's identity, lease, attempt, retries and outcome live in plinth's store. The
  supervisor admits the job (its own scheduling pass, its own queues and quotas), holds the
  lease with its heartbeat while the Ray job runs, and reads stop requests as for a local job;
* the Ray job's entrypoint is ``python -m plinth.jobs.ray_backend JOB_ID ATTEMPT WORKER_ID``,
  which starts plinth's own ``python -m plinth.job_process`` for that attempt (the same code
  as a local job) with the settings on its stdin, in ``$PLINTH_HOME/jobs/<id>``. The job
  process reaches the store through ``database_url`` and writes its checkpoints and
  artifacts under ``home``, so the cluster must share both with plinth (one filesystem on a
  local head; Postgres and shared storage on a real cluster);
* Ray does not retry (``submit_job`` has no retries): a Ray job that ends without the job
  process recording an outcome is handled like a local process that died. A driver killed by
  a signal, lost or stopped on Ray's side is requeued as ``process_killed`` and counted as a
  restart (up to ``jobs_max_restarts``); a non-zero exit fails it (``process_exited``);
* a cancel or a preemption asks the job process to stop through the store, and after
  ``jobs_stop_grace_s`` the supervisor stops the Ray job (``stop_job``);
* the Ray job's driver logs go to ``$PLINTH_HOME/jobs/<id>/attempt-<n>.out`` (where a local
  job's output goes), and their lines that plinth's logging did not already record in the
  job's log (tracebacks, prints, Ray's own lines) to the job's log as stream ``ray``.

Secrets are not sent: a Ray job's environment is shown by the dashboard to whoever can reach
it. The job process takes them from ``PLINTH_SECRETS`` in the cluster's own environment.

``ray`` is imported here only (an import-linter contract), and only when a backend is made.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plinth.errors import ErrorCode, PlinthError

if TYPE_CHECKING:
    from plinth.config import Settings
    from plinth.domain.jobs import Job
    from plinth.store import MetadataStore

log = logging.getLogger("plinth.jobs.ray")

SETTINGS_ENV = "PLINTH_RAY_JOB_SETTINGS"
LOG_STREAM = "ray"
LOG_POLL_S = 1.0
# A line of plinth's own logging in the job process (its handler already put it in the job's log).
_PLINTH_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


def submission_id(job_id: str, attempt: int) -> str:
    """The Ray submission id of one attempt of a plinth job (one Ray job per attempt)."""
    return f"plinth-{job_id}-{attempt}"


class RayBackend:
    """A client of one Ray cluster's Jobs API that runs plinth jobs of some kinds."""

    def __init__(
        self,
        address: str,
        kinds: list[str],
        *,
        python: str | None = None,
        lost_after_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        client: Any = None,
    ) -> None:
        self.address = address
        self.lost_after_s = lost_after_s  # a Ray job that cannot be read this long is lost
        self.clock = clock
        self.kinds = frozenset(kinds)
        self.python = python or sys.executable
        try:
            import ray.job_submission  # noqa: F401 - fail at start, not at the first job
        except ImportError as e:
            raise PlinthError(
                ErrorCode.RUNTIME_UNAVAILABLE,
                f"ray_address is set ({address}) but Ray is not installed: pip install 'plinth[ray]' ({e})",
            ) from e
        self._client = client

    @property
    def client(self) -> Any:
        """The Jobs API client, made on first use (the cluster may come up after plinth)."""
        if self._client is None:
            from ray.job_submission import JobSubmissionClient

            try:
                self._client = JobSubmissionClient(self.address)
            except Exception as e:  # ConnectionError, or a RuntimeError from the SDK
                raise PlinthError(
                    ErrorCode.RUNTIME_UNAVAILABLE, f"cannot reach the Ray Jobs API at {self.address}: {e}", param="ray_address"
                ) from e
        return self._client

    @classmethod
    def from_settings(cls, settings: Settings) -> RayBackend | None:
        if not settings.ray_address:
            return None
        return cls(settings.ray_address, list(settings.ray_kinds), python=settings.ray_python, lost_after_s=4 * settings.jobs_lease_s)

    def handles(self, kind: str) -> bool:
        return kind in self.kinds

    def submit(self, job: Job, settings: dict[str, Any], *, worker_id: str, out: Path, store: MetadataStore) -> RayJob:
        """Submit one attempt of ``job``; the settings (without secrets) travel in the job's environment."""
        settings = dict(settings)
        settings.pop("secrets", None)
        settings["config"] = None
        settings["threads"] = job.resources.cpu
        env = {name: str(job.resources.cpu) for name in _thread_env()}
        env["PYTHONUNBUFFERED"] = "1"
        env[SETTINGS_ENV] = json.dumps(settings)
        src = str(Path(__file__).resolve().parents[2])  # a source checkout runs the same code (as locally)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
        sid = submission_id(job.id, job.attempt)
        entrypoint = " ".join(shlex.quote(a) for a in (self.python, "-m", "plinth.jobs.ray_backend", job.id, str(job.attempt), worker_id))
        options: dict[str, Any] = {"entrypoint_num_cpus": job.resources.cpu, "entrypoint_memory": job.resources.memory}
        if job.resources.gpus:
            options["entrypoint_num_gpus"] = job.resources.gpus
        self.client.submit_job(
            entrypoint=entrypoint,
            submission_id=sid,
            runtime_env={"env_vars": env},
            metadata={"plinth_job": job.id, "plinth_attempt": str(job.attempt), "plinth_kind": job.kind},
            **options,
        )
        log.info("submitted job %s (%s) attempt %d to Ray at %s as %s", job.id, job.kind, job.attempt, self.address, sid)
        return RayJob(self, job.id, job.attempt, sid, out, store)


class RayJob:
    """One submitted attempt, shaped like the ``subprocess.Popen`` of a local job for the
    supervisor: ``poll()`` gives ``None`` while it runs and then an exit code (negative: a
    signal), ``kill()`` stops it on Ray. ``pid`` is ``None``: nothing runs on this host."""

    pid: int | None = None
    stdin: Any = None

    def __init__(self, backend: RayBackend, job_id: str, attempt: int, sid: str, out: Path, store: MetadataStore) -> None:
        self.backend = backend
        self.job_id = job_id
        self.attempt = attempt
        self.submission_id = sid
        self.out = out
        self.store = store
        self.returncode: int | None = None
        self.status: str | None = None
        self.message: str | None = None
        self._logged = 0  # characters of the Ray job's log already copied
        self._partial = ""
        self._last_logs = 0.0
        self._stop_sent = False
        self._unreadable_since: float | None = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        try:
            info = self.backend.client.get_job_info(self.submission_id)
        except Exception as e:  # the dashboard may be restarting: the lease is still ours, look again
            return self._unreadable(e)
        self._unreadable_since = None
        status = str(getattr(info.status, "value", info.status))
        terminal = status in ("SUCCEEDED", "FAILED", "STOPPED")
        if terminal or time.monotonic() - self._last_logs >= LOG_POLL_S:
            self._copy_logs(final=terminal)
        if not terminal:
            return None
        self.status, self.message = status, info.message
        self.returncode = exit_code(status, info.driver_exit_code)
        log.info("Ray job %s ended %s (driver exit code %s): %s", self.submission_id, status, info.driver_exit_code, info.message)
        return self.returncode

    def _unreadable(self, e: Exception) -> int | None:
        """Ray cannot tell how the job is: wait ``lost_after_s`` (a restarting head, a network
        blip), then call its driver lost (SIGKILL: plinth requeues it as a restart)."""
        now = self.backend.clock()
        if self._unreadable_since is None:
            self._unreadable_since = now
            log.warning("cannot read Ray job %s: %s", self.submission_id, e)
            return None
        if now - self._unreadable_since < self.backend.lost_after_s:
            return None
        b = self.backend
        note = f"cannot read Ray job {self.submission_id} at {b.address} for {b.lost_after_s:g} s ({e}); its driver is lost"
        log.warning("%s", note)
        try:
            self.store.append_job_logs(self.job_id, self.attempt, LOG_STREAM, [note])
        except Exception as err:
            log.debug("cannot log to job %s: %s", self.job_id, err)
        self.status, self.message = "LOST", note
        self.returncode = -int(signal.SIGKILL)
        return self.returncode

    def kill(self) -> None:
        """Stop the Ray job (Ray sends SIGTERM, then SIGKILL to the entrypoint's processes)."""
        if self._stop_sent or self.returncode is not None:
            return
        self._stop_sent = True
        try:
            self.backend.client.stop_job(self.submission_id)
        except Exception as e:
            log.warning("cannot stop Ray job %s: %s", self.submission_id, e)
            self._stop_sent = False

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (rc := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.submission_id, timeout or 0)
            time.sleep(0.2)
        return rc

    def _copy_logs(self, *, final: bool) -> None:
        self._last_logs = time.monotonic()
        try:
            text = self.backend.client.get_job_logs(self.submission_id)
        except Exception as e:
            log.debug("cannot read the logs of Ray job %s: %s", self.submission_id, e)
            return
        new = text[self._logged :] if len(text) >= self._logged else text
        self._logged = len(text)
        if not new:
            return
        try:
            with open(self.out, "a", encoding="utf-8") as f:
                f.write(new)
        except OSError as e:
            log.debug("cannot write %s: %s", self.out, e)
        data = self._partial + new
        lines = data.split("\n")
        self._partial = "" if final else lines.pop()
        keep = [ln.rstrip() for ln in lines if ln.strip() and not _PLINTH_LOG_LINE.match(ln)]
        if keep:
            try:
                self.store.append_job_logs(self.job_id, self.attempt, LOG_STREAM, keep)
            except Exception as e:  # deleted meanwhile, or the store is down for a moment
                log.debug("cannot append the Ray logs of job %s: %s", self.job_id, e)


def exit_code(status: str, driver_exit_code: int | None) -> int:
    """The exit code the supervisor sees for a Ray job that ended ``status``.

    ``SUCCEEDED`` is 0. A ``STOPPED`` job (not by plinth: then the supervisor knows why) was
    stopped on Ray's side: SIGTERM. A ``FAILED`` one with no driver exit code lost its driver
    (node died, runtime environment failed): SIGKILL; one whose driver died from a signal
    (the wrapper exits 128 + signal) is that signal; other exit codes stay."""
    if status == "SUCCEEDED":
        return 0
    if status == "STOPPED":
        return -int(signal.SIGTERM)
    if driver_exit_code is None:
        return -int(signal.SIGKILL)
    if driver_exit_code > 128:
        return -(driver_exit_code - 128)
    return int(driver_exit_code)


def _thread_env() -> tuple[str, ...]:
    return ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


# -- the entrypoint on the cluster -------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m plinth.jobs.ray_backend JOB_ID ATTEMPT WORKER_ID``: the Ray job's driver.

    Starts ``python -m plinth.job_process`` with the settings (from ``PLINTH_RAY_JOB_SETTINGS``,
    secrets from ``PLINTH_SECRETS``) on its stdin and keeps the pipe open while it runs, as the
    local supervisor does; exits with its exit code (128 + the signal if one killed it).
    A SIGTERM from ``stop_job`` is passed on to it."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print("usage: python -m plinth.jobs.ray_backend JOB_ID ATTEMPT WORKER_ID", file=sys.stderr)
        return 2
    job_id = args[0]
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        print(f"{SETTINGS_ENV} is not set: this is the entrypoint of a Ray job submitted by plinth", file=sys.stderr)
        return 2
    settings = json.loads(raw)
    secrets = os.environ.get("PLINTH_SECRETS")
    if secrets:
        settings["secrets"] = json.loads(secrets)
    home = Path(settings.get("home") or ".")
    cwd = home / "jobs" / job_id
    cwd.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop(SETTINGS_ENV, None)
    proc = subprocess.Popen([sys.executable, "-m", "plinth.job_process", *args], stdin=subprocess.PIPE, cwd=str(cwd), env=env)

    def _forward(signum: int, _frame: Any) -> None:
        proc.send_signal(signum)

    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    assert proc.stdin is not None
    try:
        proc.stdin.write(json.dumps(settings).encode() + b"\n")
        proc.stdin.flush()
    except OSError:
        pass
    rc = proc.wait()
    with contextlib.suppress(OSError):
        proc.stdin.close()
    print(f"plinth job {job_id}: the job process exited with {rc}", file=sys.stderr, flush=True)
    if rc != 0 and _outcome_recorded(settings, job_id, int(args[1])):
        # It wrote its outcome and then died on the way out (its stdin watcher thread can abort
        # the interpreter's shutdown): the job is done, Ray should not call it failed.
        print(f"plinth job {job_id}: its outcome is recorded; the Ray job succeeds", file=sys.stderr, flush=True)
        return 0
    return 128 - rc if rc < 0 else rc


def _outcome_recorded(settings: dict[str, Any], job_id: str, attempt: int) -> bool:
    """Whether attempt ``attempt`` of the job is no longer running in plinth's store (its
    process recorded succeeded, failed, cancelled or requeued)."""
    from plinth.domain.jobs import JobState
    from plinth.domain.projects import system_scope
    from plinth.store import open_store

    try:
        store = open_store(settings.get("database_url") or "")
    except Exception:
        return False
    try:
        with system_scope():
            job = store.get_job(job_id)
        return job.attempt == attempt and job.state is not JobState.RUNNING
    except Exception:
        return False
    finally:
        store.close()


if __name__ == "__main__":  # pragma: no cover - run as a process by Ray
    sys.exit(main())
