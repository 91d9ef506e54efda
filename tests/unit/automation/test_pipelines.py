"""Pipelines on the real store and the real job queue (selftest jobs run by a real worker):
validation with every problem at once, references and conditions, caching by inputs digest,
retries with backoff, timeouts, cancel, resume, and project scoping. Time is an injected clock:
the runner is driven with ``run_once(now=...)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from plinth.automation.pipeline_spec import evaluate_condition, find_cycle
from plinth.automation.pipelines import PipelineRunner
from plinth.config import load_settings
from plinth.domain.jobs import JobState
from plinth.domain.pipelines import RunState, StepState
from plinth.domain.projects import Project, project_scope
from plinth.errors import ErrorCode, PlinthError
from plinth.services import Services, build_services

FAST = {
    "jobs_poll_interval_s": 0.1,
    "jobs_lease_s": 3.0,
    "jobs_stop_grace_s": 5.0,
    "jobs_shutdown_grace_s": 5.0,
    "worker_cpu": 4,
    "worker_memory_bytes": 8 << 30,
    "worker_gpus": 0,
    "pipelines_interval_s": 0,  # no thread: the tests drive the runner with their clock
}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def step(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def services(store_url: str, tmp_path: Path) -> Iterator[Services]:
    settings = load_settings(home=tmp_path / "home", database_url=store_url, **FAST)
    s = build_services(settings)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def clock(services: Services) -> Clock:
    c = Clock()
    assert services.pipelines is not None
    services.pipelines.clock = c
    return c


def _runner(services: Services, clock: Clock) -> PipelineRunner:
    assert services.pipeline_runner is not None
    services.pipeline_runner.clock = clock
    return services.pipeline_runner


def _until_done(services: Services, clock: Clock, run_id: str, *, tick_s: float = 1.0, rounds: int = 600) -> Any:
    """Drive the runner until the run finishes (real jobs need real time to run)."""
    import time

    runner = _runner(services, clock)
    assert services.pipelines is not None
    for _ in range(rounds):
        runner.run_once(now=clock.step(tick_s))
        run = services.pipelines.run(run_id)
        if run.state.terminal:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish: {services.pipelines.steps(run_id)}")


def _states(services: Services, run_id: str) -> dict[str, str]:
    assert services.pipelines is not None
    return {s.name: s.state.value for s in services.pipelines.steps(run_id)}


ACTIONS_ONLY = {
    "name": "plan",
    "params": {"n": 3, "mode": "full"},
    "steps": [
        {"name": "prepare", "action": "set", "spec": {"size": "${params.n}", "label": "n=${params.n}"}},
        {"name": "gate", "action": "check", "spec": {"that": "${steps.prepare.outputs.size}"}},
        {"name": "quick", "action": "set", "spec": {"x": 1}, "when": "${params.mode} == 'quick'", "needs": ["gate"]},
        {"name": "after_quick", "action": "set", "spec": {"from": "${steps.quick.outputs.x}"}},
        {
            "name": "full",
            "action": "set",
            "spec": {"size": "${steps.prepare.outputs.size}"},
            "when": "${params.mode} != 'quick' and ${params.n} > 2",
        },
    ],
}


def test_validation_reports_every_problem_at_once(services: Services) -> None:
    assert services.pipelines is not None
    doc = {
        "name": "bad",
        "params": {"x": 1},
        "extra": True,
        "steps": [
            {"name": "a", "job": "no-such-kind", "spec": {"v": "${steps.b.outputs.v}"}},
            {"name": "b", "action": "set", "spec": {"v": "${steps.a.outputs.v} ${params.y}"}},
            {"name": "c", "action": "nope", "when": "__import__('os')", "retries": -1},
            {"name": "c", "job": "selftest", "action": "set"},
            {"name": "d", "action": "set", "needs": ["zz"], "spec": {"w": "${steps.ghost.outputs.v}", "q": "${bogus.x}"}},
        ],
    }
    with pytest.raises(PlinthError) as e:
        services.pipelines.apply(doc)
    assert e.value.code is ErrorCode.INVALID_REQUEST
    problems = e.value.details["problems"]
    text = "\n".join(f"{p['param']}: {p['message']}" for p in problems)
    for expected in (
        "extra: unknown field 'extra'",
        "steps.a.job: unknown job kind 'no-such-kind'",
        "steps.b.spec: unknown parameter 'y'",
        "steps.c.action: unknown action 'nope'",
        "steps.c.when: Call is not allowed in a condition",
        "steps.c.retries: must be an integer from 0 to 20",
        "steps[3].name: duplicate step name 'c'",
        "give exactly one of job (a job kind) or action",
        "steps.d.needs: unknown step 'zz'",
        "steps.d.spec: unknown step 'ghost'",
        "steps.d.spec: unknown reference ${bogus.x}",
        "steps: the steps form a cycle: a -> b -> a",
    ):
        assert expected in text, f"{expected!r} missing from:\n{text}"
    assert services.pipelines.list() == []  # nothing stored


def test_cycle_finder_and_conditions() -> None:
    assert find_cycle({"a": ("b",), "b": ("c",), "c": ()}) is None
    assert find_cycle({"a": ("b",), "b": ("c",), "c": ("a",)}) == ["a", "b", "c", "a"]
    ctx = {"params": {"n": 3, "tags": ["x"]}, "steps": {"e": {"outputs": {"passed": False, "score": 0.7}}}}
    assert evaluate_condition("${params.n} >= 3 and not ${steps.e.outputs.passed}", ctx)
    assert evaluate_condition("'x' in ${params.tags} or false", ctx)
    assert not evaluate_condition("0.5 < ${steps.e.outputs.score} < 0.6", ctx)


def test_apply_versions_only_changes(services: Services) -> None:
    assert services.pipelines is not None
    p1, created = services.pipelines.apply(ACTIONS_ONLY)
    assert created and p1.version == 1
    same, created = services.pipelines.apply(dict(ACTIONS_ONLY))
    assert not created and same.version == 1
    p2, created = services.pipelines.apply({**ACTIONS_ONLY, "description": "changed"})
    assert created and p2.version == 2
    assert [p.version for p in services.pipelines.list()] == [2]
    assert services.pipelines.get("plan", 1).description == ""


def test_references_conditions_and_skips(services: Services, clock: Clock) -> None:
    assert services.pipelines is not None
    services.pipelines.apply(ACTIONS_ONLY)
    run = services.pipelines.start("plan")
    assert run.state is RunState.PENDING and run.params == {"n": 3, "mode": "full"}
    done = _runner(services, clock).run_once(now=clock())
    assert [r.state for r in done] == [RunState.SUCCEEDED]
    assert _states(services, run.id) == {
        "prepare": "succeeded",
        "gate": "succeeded",
        "quick": "skipped",  # condition false
        "after_quick": "skipped",  # its input was skipped
        "full": "succeeded",
    }
    steps = {s.name: s for s in services.pipelines.steps(run.id)}
    assert steps["prepare"].outputs == {"size": 3, "label": "n=3"}  # a whole reference keeps its type
    assert steps["full"].outputs == {"size": 3}
    assert steps["quick"].message == "condition false: ${params.mode} == 'quick'"
    # a check that fails fails the run; bad parameters are refused before anything is stored
    failed = services.pipelines.start("plan", {"n": 0})
    _runner(services, clock).run_once(now=clock.step(1))
    assert services.pipelines.run(failed.id).state is RunState.FAILED
    assert _states(services, failed.id)["gate"] == "failed"
    with pytest.raises(PlinthError) as e:
        services.pipelines.start("plan", {"nope": 1})
    assert e.value.param == "params.nope"


def test_same_inputs_reuse_the_cached_output(services: Services, clock: Clock) -> None:
    assert services.pipelines is not None
    services.pipelines.apply(
        {
            "name": "cache",
            "params": {"n": 1},
            "steps": [
                {"name": "a", "action": "set", "spec": {"v": "${params.n}"}},
                {"name": "b", "action": "set", "spec": {"w": "${steps.a.outputs.v}"}, "cache": False},
            ],
        }
    )
    first = services.pipelines.start("cache")
    _runner(services, clock).run_once(now=clock())
    second = services.pipelines.start("cache")
    _runner(services, clock).run_once(now=clock.step(1))
    assert _states(services, first.id) == {"a": "succeeded", "b": "succeeded"}
    assert _states(services, second.id) == {"a": "cached", "b": "succeeded"}  # b opted out
    a2 = services.pipelines.steps(second.id)[0]
    assert a2.cached_from == first.id and a2.outputs == {"v": 1}
    other = services.pipelines.start("cache", {"n": 2})
    _runner(services, clock).run_once(now=clock.step(1))
    assert _states(services, other.id)["a"] == "succeeded"  # other inputs: no cache
    lineage = services.pipelines.lineage(second.id)
    assert lineage["steps"][0]["cached_from"] == first.id and lineage["params"] == {"n": 1}


def test_retries_back_off_exponentially_then_fail(services: Services, clock: Clock) -> None:
    assert services.pipelines is not None
    services.pipelines.apply(
        {
            "name": "flaky",
            "params": {"ok": False},
            "steps": [{"name": "g", "action": "check", "spec": {"that": "${params.ok}"}, "retries": 2, "backoff_s": 10}],
        }
    )
    run = services.pipelines.start("flaky")
    runner = _runner(services, clock)
    t0 = clock()
    runner.run_once(now=t0)
    (g,) = services.pipelines.steps(run.id)
    assert (g.state, g.attempt, g.next_try_at) == (StepState.PENDING, 1, t0 + timedelta(seconds=10))
    runner.run_once(now=t0 + timedelta(seconds=9))  # not yet
    assert services.pipelines.steps(run.id)[0].attempt == 1
    runner.run_once(now=t0 + timedelta(seconds=10))
    (g,) = services.pipelines.steps(run.id)
    assert (g.attempt, g.next_try_at) == (2, t0 + timedelta(seconds=30))  # 10 s, then 20 s
    runner.run_once(now=t0 + timedelta(seconds=30))
    (g,) = services.pipelines.steps(run.id)
    assert (g.state, g.attempt) == (StepState.FAILED, 3)
    assert services.pipelines.run(run.id).state is RunState.FAILED


@pytest.mark.slow
def test_job_steps_outputs_retries_and_cache(services: Services, clock: Clock) -> None:
    """Real selftest jobs: a failing first job is retried with a new job, the next step reads the
    job's result, and a second run with the same inputs reuses both outputs without jobs."""
    assert services.pipelines is not None
    services.jobs.start_local_worker()
    services.pipelines.apply(
        {
            "name": "tune",
            "params": {"adapter": "acme-lora"},
            "steps": [
                {"name": "tune", "job": "selftest", "spec": {"steps": 1, "sleep_s": 0, "result": {"adapter": "${params.adapter}"}}},
                {"name": "use", "action": "set", "spec": {"served": "${steps.tune.outputs.adapter}"}, "needs": ["tune"]},
            ],
        }
    )
    run = services.pipelines.start("tune")
    done = _until_done(services, clock, run.id)
    assert done.state is RunState.SUCCEEDED, services.pipelines.steps(run.id)
    tune, use = services.pipelines.steps(run.id)
    assert tune.job_id and services.jobs.get(tune.job_id).labels["plinth.run"] == run.id
    assert use.outputs == {"served": "acme-lora"}
    assert any("counted 1 steps" in ln for ln in services.pipelines.step_logs(run.id, "tune"))
    again = services.pipelines.start("tune")
    _runner(services, clock).run_once(now=clock.step(1))
    assert _states(services, again.id) == {"tune": "cached", "use": "cached"}
    assert services.pipelines.run(again.id).state is RunState.SUCCEEDED

    services.pipelines.apply(
        {"name": "retry", "steps": [{"name": "j", "job": "selftest", "spec": {"steps": 1, "sleep_s": 0, "fail_at": 1}, "retries": 1}]}
    )
    run = services.pipelines.start("retry")
    done = _until_done(services, clock, run.id)
    (j,) = services.pipelines.steps(run.id)
    assert done.state is RunState.FAILED and j.attempt == 2 and "selftest failed at step 1" in j.message
    jobs = services.jobs.list(labels={"plinth.run": run.id})
    assert len(jobs) == 2 and all(job.state is JobState.FAILED for job in jobs)


@pytest.mark.slow
def test_timeout_cancel_and_resume(services: Services, clock: Clock) -> None:
    assert services.pipelines is not None
    services.jobs.start_local_worker()
    services.pipelines.apply(
        {
            "name": "slow",
            "params": {"steps": 200},
            "steps": [{"name": "long", "job": "selftest", "spec": {"steps": "${params.steps}", "sleep_s": 0.2}, "timeout_s": 60}],
        }
    )
    runner = _runner(services, clock)
    run = services.pipelines.start("slow")
    runner.run_once(now=clock())
    (step,) = services.pipelines.steps(run.id)
    assert step.state is StepState.RUNNING and step.job_id
    runner.run_once(now=clock.step(61))  # past its timeout on the injected clock
    (step,) = services.pipelines.steps(run.id)
    assert step.state is StepState.FAILED and step.message.startswith("timed out after 60 s")
    assert services.jobs.wait(step.job_id or "", timeout_s=60).state is JobState.CANCELLED
    assert services.pipelines.run(run.id).state is RunState.FAILED

    # resume: the failed step runs again (a new job); then cancel the run while it runs
    services.pipelines.resume(run.id)
    runner.run_once(now=clock.step(1))
    (again,) = services.pipelines.steps(run.id)
    assert again.state is StepState.RUNNING and again.job_id != step.job_id
    cancelled = services.pipelines.cancel(run.id)
    assert cancelled.state is RunState.CANCELLED
    assert services.pipelines.steps(run.id)[0].state is StepState.CANCELLED
    assert services.jobs.wait(again.job_id or "", timeout_s=60).state is JobState.CANCELLED
    with pytest.raises(PlinthError) as e:
        services.pipelines.cancel(run.id)
    assert e.value.code is ErrorCode.CONFLICT


def test_runs_are_project_scoped(services: Services, clock: Clock) -> None:
    assert services.pipelines is not None
    services.store.create_project(Project(name="claims"))
    with project_scope("claims"):
        services.pipelines.apply(ACTIONS_ONLY)
        run = services.pipelines.start("plan")
    with project_scope("default"):
        with pytest.raises(PlinthError) as e:
            services.pipelines.run(run.id)
        assert e.value.code is ErrorCode.NOT_FOUND
        assert services.pipelines.list() == [] and services.pipelines.runs() == []
    _runner(services, clock).run_once(now=clock())  # the runner works in each run's project
    with project_scope("claims"):
        assert services.pipelines.run(run.id).state is RunState.SUCCEEDED


BASE = "smollm2-135m-instruct"
ROLLOUT = {
    "name": "rollout",
    "params": {"deployment": "acme-assistant"},
    "steps": [
        {"name": "canary", "action": "canary", "spec": {"deployment": "${params.deployment}", "model": BASE, "percent": 10}},
        {
            "name": "watch",
            "action": "watch",
            "spec": {"deployment": "${params.deployment}", "revision": "${steps.canary.outputs.revision}", "for_s": 60},
        },
        {
            "name": "promote",
            "action": "promote",
            "spec": {"deployment": "${params.deployment}"},
            "when": "${steps.watch.outputs.outcome} == 'healthy'",
        },
    ],
}


def test_canary_watch_promote_through_the_deployment_service(services: Services, clock: Clock) -> None:
    """The built-in deployment actions on a real deployment of the embedded model: a canary,
    a watch that waits on the injected clock, a promote when it stayed healthy; and a second
    run whose canary is rolled back during the watch, so promote is skipped."""
    assert services.pipelines is not None and services.deployments is not None
    services.catalog.ensure_embedded()
    services.deployments.create("acme-assistant", [{"model": BASE}], actor="test")
    services.pipelines.apply(ROLLOUT)
    runner = _runner(services, clock)
    run = services.pipelines.start("rollout")
    runner.run_once(now=clock())
    assert _states(services, run.id) == {"canary": "succeeded", "watch": "running", "promote": "pending"}
    dep = services.deployments.get("acme-assistant")
    assert (dep.stable_revision, dep.canary_revision, dep.canary_percent) == (1, 2, 10.0)
    runner.run_once(now=clock.step(30))
    assert _states(services, run.id)["watch"] == "running"  # 30 s of 60
    runner.run_once(now=clock.step(31))
    assert services.pipelines.run(run.id).state is RunState.SUCCEEDED
    assert services.deployments.get("acme-assistant").stable_revision == 2
    watch = services.pipelines.steps(run.id)[1]
    assert watch.outputs["outcome"] == "healthy"

    second = services.pipelines.start("rollout")
    runner.run_once(now=clock.step(1))
    services.deployments.rollback("acme-assistant", actor="alice", reason="looks wrong")
    runner.run_once(now=clock.step(1))
    assert _states(services, second.id) == {"canary": "succeeded", "watch": "succeeded", "promote": "skipped"}
    assert services.pipelines.steps(second.id)[1].outputs["outcome"] == "rolled_back"
    assert services.deployments.get("acme-assistant").stable_revision == 2
