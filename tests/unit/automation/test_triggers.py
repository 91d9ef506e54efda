"""Triggers on the real store and services: cron parsing, schedule, new dataset versions (the
real dataset service), the alert action ``pipeline`` (a real alert rule evaluated over real
usage records), manual firing; cooldown, de-duplication and conditions, each recorded as a
trigger event. Time is an injected clock."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plinth.automation.triggers import parse_cron
from plinth.config import load_settings
from plinth.domain.deployments import Deployment, Outcome, Role, Target, UsageRecord
from plinth.domain.pipelines import RunState
from plinth.errors import ErrorCode, PlinthError
from plinth.services import Services, build_services


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 7, 9, 0, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def step(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def services(store_url: str, tmp_path: Path, clock: Clock) -> Iterator[Services]:
    settings = load_settings(home=tmp_path / "home", database_url=store_url, pipelines_interval_s=0, alert_interval_s=0)
    s = build_services(settings)
    assert s.pipelines is not None and s.triggers is not None
    s.pipelines.clock = clock
    s.triggers.clock = clock
    s.pipelines.apply(
        {"name": "retrain", "params": {"ref": "none"}, "steps": [{"name": "note", "action": "set", "spec": {"ref": "${params.ref}"}}]}
    )
    try:
        yield s
    finally:
        s.close()


def _reasons(services: Services, trigger: str) -> list[tuple[bool, str]]:
    assert services.triggers is not None
    return [(e.fired, e.reason) for e in reversed(services.triggers.events(trigger))]


# -- cron --------------------------------------------------------------------------------------------
def test_cron_fields_ranges_steps_and_names() -> None:
    c = parse_cron("*/15 9-17 * * mon-fri")
    assert c.minutes == {0, 15, 30, 45} and c.hours == set(range(9, 18)) and c.weekdays == {1, 2, 3, 4, 5}
    monday_9 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # a Monday
    assert c.matches(monday_9) and not c.matches(monday_9.replace(minute=5))
    assert c.next_after(monday_9) == monday_9.replace(minute=15)
    friday_late = datetime(2026, 12, 11, 17, 50, tzinfo=UTC)
    assert c.next_after(friday_late) == datetime(2026, 12, 14, 9, 0, tzinfo=UTC)  # over the weekend
    assert parse_cron("0 0 1 jan *").next_after(monday_9) == datetime(2027, 1, 1, tzinfo=UTC)
    assert parse_cron("@daily").next_after(monday_9) == datetime(2026, 12, 8, tzinfo=UTC)
    assert parse_cron("0 0 * * 7").weekdays == {0}  # 7 is Sunday too
    # day of month and day of week both restricted: either matches (Vixie cron)
    either = parse_cron("0 12 1 * sun")
    assert either.next_after(monday_9) == datetime(2026, 12, 13, 12, 0, tzinfo=UTC)
    assert parse_cron("0 * * * *").last_due(monday_9, monday_9 + timedelta(hours=3, minutes=5)) == monday_9 + timedelta(hours=3)
    for bad, message in (
        ("* * * *", "5 fields"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* * * foo *", "month: 'foo' is not a number"),
        ("*/0 * * * *", "minute: bad step"),
        ("5-1 * * * *", "runs backwards"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_cron(bad)


# -- definitions -------------------------------------------------------------------------------------
def test_bad_trigger_lists_every_problem(services: Services) -> None:
    assert services.triggers is not None
    with pytest.raises(PlinthError) as e:
        services.triggers.apply({"name": "Bad!", "pipeline": "ghost", "kind": "schedule", "spec": {"cron": "61 * * * *"}, "cooldown_s": -1})
    assert e.value.code is ErrorCode.INVALID_REQUEST
    params = [p["param"] for p in e.value.details["problems"]]
    assert params == ["name", "pipeline", "spec.cron", "cooldown_s"]


# -- schedule ----------------------------------------------------------------------------------------
def test_schedule_fires_once_per_due_time_and_respects_cooldown(services: Services, clock: Clock) -> None:
    assert services.triggers is not None and services.pipelines is not None
    services.triggers.apply(
        {"name": "nightly", "pipeline": "retrain", "kind": "schedule", "spec": {"cron": "*/10 * * * *"}, "cooldown_s": 900}
    )
    assert services.triggers.run_once(clock()) == []  # 09:00:30: nothing due since it was created
    clock.step(10 * 60)  # 09:10:30: the 09:10 run is due
    (fired,) = services.triggers.run_once(clock())
    assert fired.fired and fired.run_id and fired.key == "schedule:2026-12-07T09:10:00+00:00"
    assert services.triggers.run_once(clock()) == []  # looked already: nothing new is due
    clock.step(10 * 60)  # 09:20:30: due, but 600 s < cooldown 900 s
    (cooled,) = services.triggers.run_once(clock())
    assert not cooled.fired and cooled.reason.startswith("cooldown: fired 600 s ago")
    clock.step(60 * 60)  # an hour later (the server was down): fires once for the newest due time
    (late,) = services.triggers.run_once(clock())
    assert late.fired and late.key == "schedule:2026-12-07T10:20:00+00:00"
    run = services.pipelines.run(late.run_id or "")
    assert run.reason.startswith("trigger nightly (schedule)") and run.trigger["name"] == "nightly"
    assert [r.id for r in services.pipelines.runs("retrain")] == [late.run_id, fired.run_id]


# -- new data -----------------------------------------------------------------------------------------
def test_a_new_dataset_version_fires_once(services: Services, clock: Clock, tmp_path: Path) -> None:
    assert services.triggers is not None and services.pipelines is not None

    def add_version(n: int) -> None:
        path = tmp_path / f"v{n}.jsonl"
        rows = [{"messages": [{"role": "user", "content": f"q{i} {n}"}, {"role": "assistant", "content": f"a{i}"}]} for i in range(5)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        services.datasets.add(path, "acme-faq")

    add_version(1)  # exists before the trigger: not new
    services.triggers.apply(
        {"name": "on-data", "pipeline": "retrain", "kind": "dataset", "spec": {"name": "acme-faq"}, "params": {"ref": "latest"}}
    )
    assert services.triggers.run_once(clock()) == []
    add_version(2)
    (event,) = services.triggers.run_once(clock.step(5))
    assert event.fired and event.key == "dataset:acme-faq@2" and event.details["ref"] == "acme-faq@2"
    assert services.triggers.run_once(clock.step(5)) == []  # the same version is not new again
    run = services.pipelines.run(event.run_id or "")
    assert run.trigger["version"] == 2 and run.params == {"ref": "latest"}
    assert services.triggers.get("on-data").state["seen"] == 2


def test_a_new_knowledge_base_version_fires(services: Services, clock: Clock) -> None:
    """A knowledge base on the real MiniLM embedder: ingesting a document makes a new version."""
    assert services.triggers is not None and services.knowledge is not None
    services.knowledge.create("plans")
    services.triggers.apply({"name": "on-kb", "pipeline": "retrain", "kind": "knowledge_base", "spec": {"name": "plans"}})
    assert services.triggers.get("on-kb").state["seen"] == 0
    assert services.triggers.run_once(clock()) == []
    src = services.knowledge.source_from_bytes("gold.md", b"# Gold plan\n\nThe Gold deductible is $500 per member.\n")
    services.knowledge.add_sources("plans", [src])
    (event,) = services.triggers.run_once(clock.step(5))
    assert event.fired and event.key == "knowledge_base:plans@1"
    assert services.triggers.run_once(clock.step(5)) == []


# -- manual and conditions -------------------------------------------------------------------------------
def test_manual_disabled_and_condition(services: Services, clock: Clock) -> None:
    assert services.triggers is not None
    services.triggers.apply({"name": "by-hand", "pipeline": "retrain", "kind": "manual", "cooldown_s": 60})
    assert services.triggers.fire_manual("by-hand").fired
    clock.step(1)
    assert not services.triggers.fire_manual("by-hand").fired  # cooldown
    services.triggers.apply({"name": "by-hand", "pipeline": "retrain", "kind": "manual", "enabled": False})
    assert services.triggers.fire_manual("by-hand").reason == "disabled"
    reasons = _reasons(services, "by-hand")
    assert [f for f, _ in reasons] == [True, False, False] and reasons[1][1].startswith("cooldown")


# -- the alert action ------------------------------------------------------------------------------------
DEP = "acme-assistant"


def _usage(outcome: Outcome, at: datetime) -> UsageRecord:
    return UsageRecord(
        response_id=f"chatcmpl-{random.getrandbits(128):032x}",
        kind="chat",
        model=DEP,
        served_model="smollm2-135m-instruct",
        outcome=outcome,
        prompt_tokens=10,
        completion_tokens=5,
        latency_s=0.1,
        deployment=DEP,
        revision=1,
        role=Role.STABLE,
        model_version="v1",
        at=at,
    )


def test_an_alert_starts_the_pipeline_through_its_trigger(services: Services, clock: Clock) -> None:
    """The alert action ``pipeline`` of a real rule, evaluated over real usage records, starts a
    run through the alert trigger; the trigger's condition and de-duplication apply."""
    assert services.triggers is not None and services.alerts is not None and services.pipelines is not None
    assert services.alerts.actions.pipelines is services.triggers  # installed by build_services
    services.store.create_deployment(
        Deployment(name=DEP, stable_revision=1), (Target("base", 100, pinned="base", version="base"),), actor="t"
    )
    services.triggers.apply(
        {"name": "on-errors", "pipeline": "retrain", "kind": "alert", "spec": {"rule": "errors"}, "when": "${trigger.value} >= 0.5"}
    )
    now = datetime.now(UTC)
    services.alerts.clock = lambda: now
    services.alerts.create(
        {
            "name": "errors",
            "signal": "error_rate",
            "deployment": DEP,
            "comparison": ">",
            "threshold": 0.2,
            "window": "5m",
            "for": 0,
            "min_samples": 1,
            "severity": "critical",
            "actions": [{"kind": "pipeline", "pipeline": "retrain"}],
        }
    )
    services.store.add_usage([_usage(Outcome.ERROR, now - timedelta(seconds=5)) for _ in range(3)])
    ev = services.alerts.evaluate("errors")
    assert ev.event is not None
    (outcome,) = ev.event.delivered
    assert outcome["ok"], outcome
    run = services.pipelines.run(outcome["run"])
    assert run.trigger["name"] == "on-errors" and run.trigger["labels"]["alertname"] == "errors"
    assert run.reason.startswith("trigger on-errors (alert): alert errors:")
    # the same alert again (same rule and start): a duplicate, recorded, nothing started
    with pytest.raises(PlinthError, match="duplicate"):
        services.triggers.start_pipeline(
            "retrain", reason="again", trigger={"labels": {"alertname": "errors"}, "starts_at": run.trigger["starts_at"], "value": 1.0}
        )
    # a weaker one: the trigger's condition is false
    with pytest.raises(PlinthError, match="condition false"):
        services.triggers.start_pipeline(
            "retrain", reason="weak", trigger={"labels": {"alertname": "errors"}, "starts_at": "later", "value": 0.3}
        )
    fired = [f for f, _ in _reasons(services, "on-errors")]
    assert fired == [True, False, False]
    assert [r.state for r in services.pipelines.runs("retrain")] == [RunState.PENDING]
