"""The admission and preemption policy: a pure function of a snapshot (no I/O).

It runs inside :meth:`plinth.store.base_jobs.JobsStore.schedule`, in the transaction that
then applies its plan, so what it decides is what happens.

Policy (Kueue's ``BestEffortFIFO`` queueing with ``withinClusterQueue: LowerPriority``
preemption, ADR 0015):

* Queued jobs are considered highest priority first, oldest ``queued_at`` first (a
  preempted or requeued job keeps its place).
* A job is **admitted** when its request fits its queue's quota minus what the queue's
  running jobs request, and fits what the admitting worker has free (CPU, memory, and
  free GPU ids).
* A job that does not fit its queue may **preempt**: the running jobs of its queue with a
  *lower* priority are candidates, the lowest priority first and among equals the most
  recently started first; victims are added until the job would fit, then any victim not
  needed is dropped again. If even every candidate would not make room, nothing is
  preempted and the job waits.
* While a job waits for room (victims stopping, or room already being freed by earlier
  preemptions), the jobs after it in the same queue are not admitted, so the room being
  freed goes to it. A job that waits for room it could never get by preemption does not
  hold the others back (best effort).
* Quota is checked per queue; a worker's own capacity only decides *where* an admitted
  job runs. Preemption is triggered by quota, never by a worker being full.
"""

from __future__ import annotations

from collections.abc import Iterable

from plinth.domain.jobs import (
    Admission,
    Job,
    Preemption,
    PreemptionPolicy,
    Resources,
    SchedulingPlan,
    SchedulingSnapshot,
)


def plan(
    snapshot: SchedulingSnapshot,
    *,
    worker_free: Resources | None,
    free_gpu_ids: Iterable[int] = (),
    worker_queues: Iterable[str] = (),
    max_admit: int = 8,
) -> SchedulingPlan:
    """Decide which queued jobs this worker starts and which running jobs must yield.

    ``worker_free`` None means "this pass admits nothing" (a worker that is stopping, or a
    pass run only to reap and preempt).
    """
    result = SchedulingPlan()
    serves = set(worker_queues)
    gpus = sorted(free_gpu_ids)
    free = worker_free
    used: dict[str, Resources] = {name: Resources.zero() for name in snapshot.queues}
    # Room already on its way: running jobs asked to yield (by any pass), per queue.
    freeing: dict[str, Resources] = {name: Resources.zero() for name in snapshot.queues}
    for job in snapshot.running:
        if job.queue not in used:
            continue
        used[job.queue] = used[job.queue] + job.resources
        if job.stop_request is not None:
            freeing[job.queue] = freeing[job.queue] + job.resources
    candidates: dict[str, list[Job]] = {}
    for job in snapshot.running:
        if job.stop_request is None:
            candidates.setdefault(job.queue, []).append(job)
    blocked: set[str] = set()

    for job in snapshot.queued:
        queue = snapshot.queues.get(job.queue)
        if queue is None or job.queue in blocked:
            continue
        room = queue.quota - used[job.queue]
        if job.resources.fits_in(room):
            if (
                free is not None
                and (not serves or job.queue in serves)
                and len(result.admit) < max_admit
                and job.resources.fits_in(free)
                and job.resources.gpus <= len(gpus)
            ):
                ids, gpus = tuple(gpus[: job.resources.gpus]), gpus[job.resources.gpus :]
                result.admit.append(Admission(job, ids))
                used[job.queue] = used[job.queue] + job.resources
                free = free - job.resources
            continue
        # It does not fit its queue now.
        if job.resources.fits_in(room + freeing[job.queue]):
            blocked.add(job.queue)  # room is already being freed: keep it for this job
            continue
        if queue.preemption is PreemptionPolicy.NEVER:
            continue
        victims = choose_victims(job, candidates.get(job.queue, []), room + freeing[job.queue])
        if victims is None:
            continue  # cannot make room by preemption: wait, and let smaller jobs pass
        for victim in victims:
            result.preempt.append(Preemption(victim, job))
            candidates[job.queue].remove(victim)
            freeing[job.queue] = freeing[job.queue] + victim.resources
        blocked.add(job.queue)
    return result


def choose_victims(job: Job, running: list[Job], room: Resources) -> list[Job] | None:
    """The fewest lower-priority running jobs whose resources, added to ``room``, fit ``job``;
    None if all of them together would not."""
    pool = sorted(
        (r for r in running if r.priority < job.priority and r.stop_request is None),
        key=lambda r: (r.priority, -(r.started_at.timestamp() if r.started_at else 0.0), r.id),
    )
    chosen: list[Job] = []
    gained = room
    for victim in pool:
        if job.resources.fits_in(gained):
            break
        chosen.append(victim)
        gained = gained + victim.resources
    if not job.resources.fits_in(gained):
        return None
    # Drop victims that turned out not to be needed (highest priority, most recent last added first).
    for victim in reversed(list(chosen)):
        without = gained - victim.resources
        if job.resources.fits_in(without):
            chosen.remove(victim)
            gained = without
    return chosen
