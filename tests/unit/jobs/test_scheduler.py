"""The admission and preemption policy, on hand-built snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from plinth.domain.jobs import (
    Job,
    JobState,
    PreemptionPolicy,
    Queue,
    Resources,
    SchedulingSnapshot,
    StopRequest,
)
from plinth.jobs.scheduler import choose_victims, plan

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GiB = 1 << 30
QUOTA = Resources(4, 8 * GiB, 0)


def job(
    jid: str,
    priority: int = 500,
    cpu: int = 1,
    mem: int = GiB,
    gpus: int = 0,
    queue: str = "q",
    *,
    running: bool = False,
    started: int = 0,
    queued: int = 0,
    stop: StopRequest | None = None,
) -> Job:
    return Job(
        id=jid,
        kind="selftest",
        spec={},
        queue=queue,
        priority_class="x",
        priority=priority,
        resources=Resources(cpu, mem, gpus),
        state=JobState.RUNNING if running else JobState.QUEUED,
        queued_at=T0 + timedelta(seconds=queued),
        started_at=T0 + timedelta(seconds=started) if running else None,
        stop_request=stop,
    )


def snap(queued: list[Job], running: Sequence[Job] = (), quota: Resources = QUOTA, **queues: Queue) -> SchedulingSnapshot:
    qs = {"q": Queue("q", quota), **queues}
    order = sorted(queued, key=lambda j: (-j.priority, j.queued_at, j.id))
    return SchedulingSnapshot(queues=qs, running=list(running), queued=order, now=T0)


FREE = Resources(64, 256 * GiB, 8)


def admitted(p) -> list[str]:  # type: ignore[no-untyped-def]
    return [a.job.id for a in p.admit]


def test_higher_priority_first_then_oldest() -> None:
    s = snap([job("a", 100, cpu=2, queued=0), job("b", 900, cpu=2, queued=5), job("c", 900, cpu=2, queued=9)])
    assert admitted(plan(s, worker_free=FREE)) == ["b", "c"]  # quota of 4 CPUs: a waits


def test_quota_counts_running_jobs() -> None:
    s = snap([job("new", cpu=2)], running=[job("r1", cpu=3, running=True)])
    p = plan(s, worker_free=FREE)
    assert admitted(p) == [] and p.preempt == []  # same priority: nobody is preempted


def test_memory_and_gpu_quota() -> None:
    s = snap([job("big", mem=9 * GiB), job("small", mem=GiB)])
    assert admitted(plan(s, worker_free=FREE)) == ["small"]  # big can never fit 8 GiB: best effort lets small pass
    gq = Queue("g", Resources(8, 64 * GiB, 2))
    s = snap([job("g1", gpus=1, queue="g"), job("g2", gpus=2, queue="g"), job("g3", gpus=1, queue="g")], g=gq)
    p = plan(s, worker_free=FREE, free_gpu_ids=[0, 1, 2, 3])
    assert admitted(p) == ["g1", "g3"]  # g2 needs 2 with 1 left in the quota
    assert [a.gpu_ids for a in p.admit] == [(0,), (1,)]


def test_worker_capacity_and_gpu_ids_limit_placement_not_quota() -> None:
    s = snap([job("a", cpu=2), job("b", cpu=2)])
    p = plan(s, worker_free=Resources(2, 64 * GiB, 0))
    assert admitted(p) == ["a"] and p.preempt == []  # b fits the quota, another worker may take it
    s = snap([job("g", gpus=1)], quota=Resources(4, 8 * GiB, 1))
    assert admitted(plan(s, worker_free=FREE, free_gpu_ids=[])) == []  # no free GPU id on this worker


def test_worker_queues_and_no_admission() -> None:
    other = Queue("other", Resources(4, 8 * GiB, 0))
    s = snap([job("a"), job("b", queue="other")], other=other)
    assert admitted(plan(s, worker_free=FREE, worker_queues=["other"])) == ["b"]
    assert admitted(plan(s, worker_free=None)) == []
    assert admitted(plan(s, worker_free=FREE, max_admit=1)) == ["a"]


def test_preempts_lowest_priority_most_recent_first() -> None:
    running = [
        job("low-old", 100, cpu=1, running=True, started=0),
        job("low-new", 100, cpu=1, running=True, started=50),
        job("mid", 300, cpu=1, running=True, started=60),
        job("peer", 900, cpu=1, running=True, started=70),
    ]
    s = snap([job("urgent", 900, cpu=2)], running=running)
    p = plan(s, worker_free=FREE)
    assert admitted(p) == []
    assert [(x.victim.id, x.preemptor.id) for x in p.preempt] == [("low-new", "urgent"), ("low-old", "urgent")]


def test_victim_set_is_minimal() -> None:
    running = [job("small", 100, cpu=1, running=True, started=9), job("large", 200, cpu=3, running=True, started=1)]
    # Greedy takes "small" first (lowest priority) and then "large"; "small" is not needed.
    victims = choose_victims(job("h", 900, cpu=3), running, Resources(0, 8 * GiB, 0))
    assert [v.id for v in victims or []] == ["large"]


def test_no_preemption_when_it_cannot_make_room() -> None:
    running = [job("peer", 900, cpu=3, running=True), job("low", 100, cpu=1, running=True)]
    s = snap([job("urgent", 900, cpu=2), job("tiny", 100, cpu=0, mem=1)], running=running)
    p = plan(s, worker_free=FREE)
    assert p.preempt == []  # removing "low" frees 1 CPU of the 2 needed: nobody is preempted
    assert admitted(p) == ["tiny"]  # and the queue is not held for a job that cannot get room


def test_waiting_for_victims_holds_the_queue() -> None:
    running = [job("low", 100, cpu=4, running=True)]
    s = snap([job("urgent", 900, cpu=4), job("later", 500, cpu=1, queued=5)], running=running)
    p = plan(s, worker_free=FREE)
    assert [x.victim.id for x in p.preempt] == ["low"] and admitted(p) == []
    # Next pass: the victim is stopping (asked before); nothing new is preempted, "later" still waits.
    stopping = [job("low", 100, cpu=4, running=True, stop=StopRequest.PREEMPT)]
    p = plan(snap([job("urgent", 900, cpu=4), job("later", 500, cpu=1, queued=5)], running=stopping), worker_free=FREE)
    assert p.preempt == [] and admitted(p) == []
    # When it has gone, urgent is admitted first.
    p = plan(snap([job("urgent", 900, cpu=4), job("later", 500, cpu=1, queued=5)]), worker_free=FREE)
    assert admitted(p) == ["urgent"]


def test_preemption_policy_never_and_other_queues_untouched() -> None:
    never = Queue("n", Resources(2, 8 * GiB, 0), preemption=PreemptionPolicy.NEVER)
    s = snap([job("urgent", 900, cpu=2, queue="n")], running=[job("low", 100, cpu=2, queue="n", running=True)], n=never)
    assert plan(s, worker_free=FREE).preempt == []
    # A full queue never preempts jobs of another queue.
    other = Queue("o", Resources(2, 8 * GiB, 0))
    s = snap(
        [job("urgent", 900, cpu=2, queue="o")],
        running=[job("low", 100, cpu=4, running=True), job("o-peer", 900, cpu=2, queue="o", running=True)],
        o=other,
    )
    assert plan(s, worker_free=FREE).preempt == []


def test_cancelling_jobs_are_not_victims_but_their_room_counts() -> None:
    running = [job("going", 100, cpu=4, running=True, stop=StopRequest.CANCEL)]
    p = plan(snap([job("urgent", 900, cpu=4)], running=running), worker_free=FREE)
    assert p.preempt == [] and admitted(p) == []
