"""The durable job queue: priority classes, queues with quotas, preemption, workers.

How other areas run work through it (ADR 0014):

**Submit** through :class:`JobService` (``services.jobs``)::

    job = services.jobs.submit(
        "tune", {"dataset": "acme-faq@2", ...},
        queue="default", priority_class="normal",
        resources=Resources(cpu=2, memory=4 << 30, gpus=0),
        idempotency_key="...", name="acme lora", labels={"team": "claims"},
    )
    services.jobs.get(job.id); services.jobs.list(states=(JobState.RUNNING,))
    services.jobs.cancel(job.id); services.jobs.retry(job.id)
    services.jobs.logs(job.id, tail=50); services.jobs.follow(job.id)  # iterator of JobEvent
    services.jobs.progress(job.id); services.jobs.wait(job.id, timeout_s=600)

**Add a kind** with an :class:`ExecutorEntry` in the ``plinth.executors`` entry-point group
(plinth's own ``tune``, ``eval`` and ``export`` are :data:`plinth.tuning.kinds.EXECUTORS`),
or in-process with :func:`register_executor`::

    register_executor("tune", "plinth.tuning.executor:run",
                      validate="plinth.tuning.executor:validate",
                      default_resources=Resources(cpu=2, memory=4 << 30))

``validate(spec: dict, services: Services) -> dict`` runs at submit time in the submitting
process, with its services, and raises :class:`~plinth.errors.PlinthError` (``invalid_request``, ``param``
like ``spec.rank``) for bad input, so no job is ever created from it; it returns the spec
to store. ``run(ctx: JobContext) -> dict`` runs in the job's own process; the returned dict
is the job's result. Between steps it calls ``ctx.should_stop()``:

* ``None``: go on;
* ``"preempt"``: save a checkpoint under ``ctx.checkpoint_dir`` and ``raise Preempted()``;
  the job goes back to the queue and a later attempt (``ctx.attempt`` + 1) resumes from
  the checkpoint (``ctx.resumed`` is True);
* ``"cancel"``: ``raise Cancelled()``; the job ends cancelled.

(``ctx.check_stop()`` raises the right one.) ``ctx.progress(done, total, message, **metrics)``
and ``ctx.log(line)`` are persisted and tailable; ``ctx.resources`` is what was granted
(``cpu`` threads, ``memory`` bytes, ``gpus``; ``CUDA_VISIBLE_DEVICES`` is set to the granted
GPUs); ``ctx.settings`` are the worker's settings and ``ctx.services`` builds the full
services in the job's process on first use (:mod:`plinth.job_process` passes the factory). A job that does not stop within
``jobs_stop_grace_s`` is killed (and requeued when it was preempted).

**Run workers**: ``plinth up`` starts one in the server process (``PLINTH_JOBS_LOCAL_WORKER``);
``plinth worker`` runs a standalone one; any number may run against one store.
"""

from __future__ import annotations

from plinth.domain.jobs import Job, JobState, PreemptionPolicy, PriorityClass, Queue, Resources, StopRequest
from plinth.jobs.context import Cancelled, JobContext, LeaseLost, Preempted
from plinth.jobs.executors import ExecutorEntry, executor_entries, executor_entry, register_executor
from plinth.jobs.service import JobEvent, JobService

__all__ = [
    "Cancelled",
    "ExecutorEntry",
    "Job",
    "JobContext",
    "JobEvent",
    "JobService",
    "JobState",
    "LeaseLost",
    "Preempted",
    "PreemptionPolicy",
    "PriorityClass",
    "Queue",
    "Resources",
    "StopRequest",
    "executor_entries",
    "executor_entry",
    "register_executor",
]
