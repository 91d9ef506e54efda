"""The entry point of a job's own process: ``python -m plinth.job_process JOB_ID ATTEMPT WORKER_ID``.

Like :mod:`plinth.services` for the server and the CLI, it is the composition root of its
process (so it sits beside ``services.py``, above :mod:`plinth.jobs`): it opens the store
the job reports through and hands the executor a context that builds the services on use.

The worker supervisor starts it with the settings as one JSON line on stdin and keeps
stdin open: when the supervisor dies (even from SIGKILL) stdin reaches end-of-file and this
process exits at once, so a job never outlives the worker that holds its lease.

It builds the job's :class:`~plinth.jobs.context.JobContext`, imports the executor of the
job's kind, runs it, and writes the outcome (fenced by the attempt):

============================  ===========================================================
``run`` returns a dict         succeeded, the dict is the result
raises ``Preempted``           requeued (reason ``preempted``, or ``worker_shutdown``)
raises ``Cancelled``           cancelled
raises ``PlinthError``         failed with its code and message
raises anything else           failed (``executor_error``), traceback in the log
``LeaseLost``                  nothing is written; exit code 75
============================  ===========================================================
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import traceback
from typing import Any

EXIT_PARENT_GONE = 76


def _watch_parent(stream: Any) -> None:
    # os.read on the descriptor, not stream.read: a thread blocked inside a buffered reader
    # holds its lock, and the interpreter's shutdown then aborts ("_enter_buffered_busy")
    fd = stream.fileno()
    try:
        while os.read(fd, 4096):
            pass
    except (OSError, ValueError):
        pass
    os._exit(EXIT_PARENT_GONE)


class _ContextLogHandler(logging.Handler):
    def __init__(self, ctx: Any) -> None:
        super().__init__(logging.INFO)
        self.ctx = ctx
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # logging must never break the job
            self.ctx.log(self.format(record))


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print("usage: python -m plinth.job_process JOB_ID ATTEMPT WORKER_ID (settings as JSON on stdin)", file=sys.stderr)
        return 2
    job_id, attempt_s, worker_id = args
    attempt = int(attempt_s)
    header = sys.stdin.buffer.readline()
    threading.Thread(target=_watch_parent, args=(sys.stdin.buffer,), name="parent-watch", daemon=True).start()

    from plinth.config import Settings
    from plinth.domain.jobs import JobReason, JobState, StopRequest
    from plinth.domain.projects import DEFAULT_PROJECT, project_scope
    from plinth.errors import ErrorCode, PlinthError
    from plinth.jobs.context import EXIT_LEASE_LOST, Cancelled, JobContext, LeaseLost, Preempted
    from plinth.jobs.executors import executor_entry, load_target
    from plinth.jobs.paths import checkpoint_dir
    from plinth.services import build_services
    from plinth.store import open_store

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings(**json.loads(header or b"{}"))
    store = open_store(settings.database_url or "")
    try:
        job = store.get_job(job_id)
        if job.attempt != attempt or job.state is not JobState.RUNNING:
            print(f"job {job_id} attempt {attempt} is not current ({job.state.value}, attempt {job.attempt})", file=sys.stderr)
            return EXIT_LEASE_LOST
        ctx = JobContext(
            job,
            settings=settings,
            store=store,
            checkpoint_dir=checkpoint_dir(settings, job_id),
            worker_id=worker_id,
            services_factory=lambda: build_services(settings, migrate=False),
        )
        handler = _ContextLogHandler(ctx)
        logging.getLogger().addHandler(handler)
        ctx.start()
        outcome: tuple[str, Any] = ("failed", None)
        try:
            entry = executor_entry(job.kind)
        except PlinthError as e:
            ctx.close()
            err = {"code": JobReason.UNKNOWN_KIND.value, "message": f"this worker cannot run it: {e.message}"}
            store.finish_job(job_id, attempt, JobState.FAILED, JobReason.UNKNOWN_KIND, message=err["message"], error=err)
            return 0
        try:
            run = load_target(entry.run)
            with project_scope(job.project or DEFAULT_PROJECT):  # the job works for its project only
                result = run(ctx)
            if result is None:
                result = {}
            if not isinstance(result, dict):
                raise PlinthError(ErrorCode.INTERNAL, f"executor {entry.run} returned {type(result).__name__}, not a dict")
            json.dumps(result, allow_nan=False)
            outcome = ("succeeded", result)
        except LeaseLost as e:
            print(str(e), file=sys.stderr)
            os._exit(EXIT_LEASE_LOST)
        except Preempted:
            outcome = ("preempted", None)
        except Cancelled:
            outcome = ("cancelled", None)
        except PlinthError as e:
            ctx.log(f"error: {e.message}")
            outcome = ("failed", {"code": e.code.value, "message": e.message, **({"details": e.details} if e.details else {})})
        except BaseException as e:  # any failure of the executor fails the job
            ctx.log("".join(traceback.format_exception(e)).rstrip())
            outcome = ("failed", {"code": JobReason.EXECUTOR_ERROR.value, "message": f"{type(e).__name__}: {e}"})
        logging.getLogger().removeHandler(handler)
        ctx.close()
        kind, value = outcome
        if kind == "succeeded":
            store.finish_job(job_id, attempt, JobState.SUCCEEDED, JobReason.COMPLETED, result=value)
        elif kind == "preempted":
            ctl = store.job_control(job_id)
            stop = ctl.stop_request if ctl else None
            if stop is StopRequest.CANCEL:
                store.finish_job(job_id, attempt, JobState.CANCELLED, JobReason.CANCELLED, message="cancelled")
            elif stop is StopRequest.PREEMPT:
                current = store.get_job(job_id)
                reason = JobReason.PREEMPTED if current.preempted_by else JobReason.WORKER_SHUTDOWN
                store.requeue_job(job_id, attempt, reason, message="checkpointed and yielded")
            else:
                msg = "the executor raised Preempted although no stop was requested"
                store.finish_job(
                    job_id,
                    attempt,
                    JobState.FAILED,
                    JobReason.EXECUTOR_ERROR,
                    message=msg,
                    error={"code": JobReason.EXECUTOR_ERROR.value, "message": msg},
                )
        elif kind == "cancelled":
            store.finish_job(job_id, attempt, JobState.CANCELLED, JobReason.CANCELLED, message="cancelled")
        else:
            err = value or {"code": JobReason.EXECUTOR_ERROR.value, "message": "failed"}
            store.finish_job(job_id, attempt, JobState.FAILED, JobReason.EXECUTOR_ERROR, message=err.get("message"), error=err)
        return 0
    finally:
        store.close()


if __name__ == "__main__":  # pragma: no cover - run as a process
    sys.exit(main())
