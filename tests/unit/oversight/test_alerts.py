"""Alert rules on the real store (SQLite, and Postgres when configured): checked definitions,
state transitions stepped with an injected clock (pending, firing after ``for``, resolved,
pending -> inactive), compare-and-set between two evaluators, and the actions: a webhook
delivered to a real local HTTP receiver with Alertmanager's payload, the rollback of a real
canary through the deployment service, and the pipeline hook with nothing installed."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from plinth.auth.audit import AuditLog
from plinth.deployments.routing import DeploymentRouter
from plinth.deployments.service import DeploymentService
from plinth.domain.alerts import AlertState, Transition
from plinth.domain.deployments import Deployment, DeploymentEvent, EventKind, Outcome, Role, Target, UsageRecord
from plinth.domain.drift import DriftRun
from plinth.domain.projects import Project, project_scope
from plinth.errors import ErrorCode, PlinthError
from plinth.monitoring.metrics import Metrics
from plinth.outbound import Outbound
from plinth.outbound.policy import OutboundPolicy
from plinth.oversight.actions import ActionContext
from plinth.oversight.alerts import AlertEvaluator, AlertService, metric_names, prometheus_rules
from plinth.store.sql import SqlStore

DEP = "acme-assistant"


class Clock:
    """A clock the test steps."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def step(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def _targets(*models: str) -> tuple[Target, ...]:
    return tuple(Target(m, 100, pinned=m, version=m) for m in models)


def _usage(rev: int, outcome: Outcome, at: datetime) -> UsageRecord:
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
        revision=rev,
        role=Role.CANARY if rev == 2 else Role.STABLE,
        model_version=f"v{rev}",
        at=at,
    )


def _with_canary(store: SqlStore) -> None:
    store.create_deployment(Deployment(name=DEP, stable_revision=1), _targets("base"), actor="alice")
    store.add_revision(DEP, _targets("acme-faq@2"), actor="alice")
    store.update_deployment(
        DEP,
        {"canary_revision": 2, "canary_percent": 10.0, "canary_started_at": datetime.now(UTC)},
        expected_generation=1,
        event=DeploymentEvent(DEP, EventKind.CANARY, "alice", revision=2),
    )


def _deployments(store: SqlStore) -> DeploymentService:
    return DeploymentService(
        store,
        Metrics(),
        AuditLog(store),
        registry=None,
        catalog=None,
        check_attachments=lambda _a: None,
        router=DeploymentRouter(store),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC).replace(microsecond=0))


def _service(store: SqlStore, clock: Clock, **ctx: Any) -> AlertService:
    return AlertService(store, ActionContext(sleep=lambda _s: None, **ctx), clock=clock, check_deployment=store.get_deployment)


def _rule(**over: Any) -> dict[str, Any]:
    return {
        "name": "canary-errors",
        "signal": "error_rate",
        "deployment": DEP,
        "revision": "canary",
        "comparison": ">",
        "threshold": 0.2,
        "window": "5m",
        "for": "2m",
        "min_samples": 3,
        "severity": "critical",
        "runbook": "https://runbooks.acme.example/canary-errors",
        **over,
    }


# -- definitions --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("over", "param"),
    [
        ({"signal": "no_such_signal"}, "signal"),
        ({"deployment": "nowhere"}, "deployment"),
        ({"revision": "blue"}, "revision"),
        ({"comparison": "=="}, "comparison"),
        ({"threshold": "high"}, "threshold"),
        ({"window": "5 parsecs"}, "window"),
        ({"window": "1s"}, "window"),
        ({"for": "30d"}, "for"),
        ({"min_samples": 0}, "min_samples"),
        ({"severity": "page-everyone"}, "severity"),
        ({"signal": "anomaly_count"}, "params.score_above"),
        ({"params": {"score_above": 0.9}}, "params.score_above"),
        ({"actions": [{"kind": "email"}]}, "actions[0].kind"),
        ({"actions": [{"kind": "webhook"}]}, "actions[0].url"),
        ({"actions": [{"kind": "rollback", "on": ["resolved"]}]}, "actions[0].on"),
        ({"actions": [{"kind": "pipeline", "pipeline": "../etc"}]}, "actions[0].pipeline"),
        ({"name": "no spaces"}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_definition_is_refused_naming_the_field(store: SqlStore, clock: Clock, over: dict[str, Any], param: str) -> None:
    _with_canary(store)
    svc = _service(store, clock)
    with pytest.raises(PlinthError) as e:
        svc.create(_rule(**over))
    assert e.value.param == param, e.value.message
    assert e.value.code is (ErrorCode.NOT_FOUND if over.get("deployment") else ErrorCode.INVALID_REQUEST)
    assert store.list_alert_rules() == []


def test_create_update_delete_keep_the_definition(store: SqlStore, clock: Clock) -> None:
    _with_canary(store)
    svc = _service(store, clock)
    rule = svc.create(_rule(actions=[{"kind": "rollback"}, {"kind": "pipeline", "pipeline": "retrain-acme"}]))
    assert (rule.expr.window_s, rule.for_s, rule.expr.revision, rule.state) == (300, 120, "canary", AlertState.INACTIVE)
    assert rule.actions == ({"kind": "rollback", "on": ["firing"]}, {"kind": "pipeline", "pipeline": "retrain-acme", "on": ["firing"]})
    assert rule.public_dict()["description"] == f"error_rate of {DEP} revision canary > 0.2 over 5m for 2m"
    with pytest.raises(PlinthError) as e:
        svc.create(_rule())
    assert e.value.code is ErrorCode.ALREADY_EXISTS
    changed = svc.update("canary-errors", {**_rule(threshold=0.5), "name": "canary-errors"})
    assert changed.expr.threshold == 0.5 and changed.actions == ()
    with pytest.raises(PlinthError) as e:
        svc.update("canary-errors", _rule(name="renamed"))
    assert e.value.param == "name"
    assert [r.name for r in svc.list(deployment=DEP)] == ["canary-errors"] and svc.list(deployment="other") == []
    svc.delete("canary-errors")
    with pytest.raises(PlinthError) as e:
        svc.get("canary-errors")
    assert e.value.code is ErrorCode.NOT_FOUND


# -- states --------------------------------------------------------------------------------------------
def test_pending_firing_after_for_and_resolved(store: SqlStore, clock: Clock) -> None:
    _with_canary(store)
    svc = _service(store, clock)
    svc.create(_rule())
    t0 = clock.now
    # two failures: the value (1.0) would hold, but min_samples is 3: nothing happens
    store.add_usage([_usage(2, Outcome.ERROR, t0 - timedelta(seconds=20)) for _ in range(2)])
    ev = svc.evaluate("canary-errors")
    assert (ev.holds, ev.reading.value, ev.reading.samples, ev.event) == (False, 1.0, 2, None)
    assert svc.get("canary-errors").last_value == 1.0
    # 2 errors of 4: 0.5 > 0.2 with enough samples -> pending
    store.add_usage([_usage(2, Outcome.OK, t0 - timedelta(seconds=10)) for _ in range(2)])
    ev = svc.evaluate("canary-errors")
    assert ev.holds and ev.event is not None and ev.event.to is Transition.PENDING
    assert (ev.rule.state, ev.rule.state_since) == (AlertState.PENDING, t0)
    # still holding, before `for` ran out: pending, no event
    clock.step(119)
    ev = svc.evaluate("canary-errors")
    assert ev.event is None and ev.rule.state is AlertState.PENDING
    # `for` (2m) has passed: firing
    clock.step(1)
    ev = svc.evaluate("canary-errors")
    assert ev.event is not None and ev.event.to is Transition.FIRING and ev.event.value == 0.5
    assert (ev.rule.state, ev.rule.state_since) == (AlertState.FIRING, t0 + timedelta(seconds=120))
    clock.step(60)
    assert svc.evaluate("canary-errors").event is None  # still firing
    # the failures leave the 5-minute window: no value -> resolved
    clock.step(300)
    ev = svc.evaluate("canary-errors")
    assert ev.event is not None and ev.event.to is Transition.RESOLVED and ev.event.value is None
    assert ev.rule.state is AlertState.INACTIVE and ev.rule.state_since is None
    history = svc.events(rule="canary-errors")
    assert [(e.from_state.value, e.to.value) for e in history] == [
        ("firing", "resolved"),
        ("pending", "firing"),
        ("inactive", "pending"),
    ]
    assert history[-1].details["description"].startswith("error_rate of acme-assistant revision canary")
    assert [e.to for e in svc.events(since=t0 + timedelta(seconds=100))] == [Transition.RESOLVED, Transition.FIRING]


def test_pending_goes_back_to_inactive_when_it_stops_holding(store: SqlStore, clock: Clock) -> None:
    _with_canary(store)
    svc = _service(store, clock)
    svc.create(_rule(min_samples=1))
    store.add_usage([_usage(2, Outcome.ERROR, clock.now - timedelta(seconds=5))])
    assert svc.evaluate("canary-errors").rule.state is AlertState.PENDING
    store.add_usage([_usage(2, Outcome.OK, clock.now - timedelta(seconds=4)) for _ in range(9)])  # 0.1: no longer above 0.2
    clock.step(30)
    ev = svc.evaluate("canary-errors")
    assert ev.event is not None and ev.event.to is Transition.INACTIVE and ev.rule.state is AlertState.INACTIVE
    assert [e.to for e in svc.events(rule="canary-errors")] == [Transition.INACTIVE, Transition.PENDING]


def test_no_for_fires_at_once_and_a_missing_canary_never_holds(store: SqlStore, clock: Clock) -> None:
    _with_canary(store)
    svc = _service(store, clock)
    svc.create(_rule(**{"for": 0, "min_samples": 1}))
    store.add_usage([_usage(2, Outcome.ERROR, clock.now - timedelta(seconds=5))])
    ev = svc.evaluate("canary-errors")
    assert ev.event is not None and (ev.event.from_state, ev.event.to) == (AlertState.INACTIVE, Transition.FIRING)
    _deployments(store).rollback(DEP, actor="alice")  # no canary now: the signal has no value
    clock.step(10)
    ev = svc.evaluate("canary-errors")
    assert ev.reading.value is None and "no canary revision" in ev.reading.details["reason"]
    assert ev.event is not None and ev.event.to is Transition.RESOLVED


def test_two_evaluators_deciding_the_same_change_record_it_once(store: SqlStore, clock: Clock) -> None:
    _with_canary(store)
    svc = _service(store, clock)
    svc.create(_rule(**{"for": 0, "min_samples": 1, "actions": [{"kind": "pipeline", "pipeline": "retrain"}]}))
    store.add_usage([_usage(2, Outcome.ERROR, clock.now - timedelta(seconds=5))])
    stale = svc.get("canary-errors")  # both processes read the rule inactive...
    first = svc.evaluate_rule(stale)
    second = svc.evaluate_rule(stale)  # ...the second's compare-and-set fails: it neither records nor acts
    assert first.event is not None and first.event.to is Transition.FIRING and not first.lost_race
    assert second.event is None and second.lost_race
    events = svc.events(rule="canary-errors")
    assert len(events) == 1 and len(events[0].delivered) == 1
    # many threads at once: still one change
    store.add_usage([_usage(2, Outcome.OK, clock.now - timedelta(seconds=4)) for _ in range(20)])
    clock.step(1)
    firing = svc.get("canary-errors")
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(svc.evaluate_rule(firing))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for r in results if r.event is not None) == 1 and sum(1 for r in results if r.lost_race) == 3
    assert [e.to for e in svc.events(rule="canary-errors")] == [Transition.RESOLVED, Transition.FIRING]


# -- actions ---------------------------------------------------------------------------------------------
class _Receiver(BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]]
    headers_seen: list[dict[str, str]]

    def do_POST(self) -> None:
        n = int(self.headers.get("content-length", "0"))
        type(self).bodies.append(json.loads(self.rfile.read(n)))
        type(self).headers_seen.append(dict(self.headers))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"bodies": [], "headers_seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts", handler
    server.shutdown()
    server.server_close()


def test_a_webhook_gets_alertmanagers_payload_on_firing_and_resolved(
    store: SqlStore, clock: Clock, receiver: tuple[str, type[_Receiver]]
) -> None:
    url, handler = receiver
    _with_canary(store)
    outbound = Outbound(OutboundPolicy.from_entries(["127.0.0.1"]))
    svc = _service(store, clock, outbound=outbound, external_url="http://plinth.acme.example:8080")
    svc.create(_rule(**{"for": "1m", "min_samples": 1, "actions": [{"kind": "webhook", "url": url}]}))
    store.add_usage([_usage(2, Outcome.ERROR, clock.now - timedelta(seconds=5))])
    svc.evaluate("canary-errors")  # pending: nothing sent
    assert handler.bodies == []
    firing_at = clock.step(60)
    ev = svc.evaluate("canary-errors")
    assert ev.event is not None and ev.event.delivered[0]["ok"] and ev.event.delivered[0]["status"] == 200
    assert len(handler.bodies) == 1
    body = handler.bodies[0]
    assert (body["version"], body["status"], body["receiver"], body["externalURL"]) == (
        "4",
        "firing",
        "plinth",
        "http://plinth.acme.example:8080",
    )
    alert = body["alerts"][0]
    assert alert["labels"] == {
        "alertname": "canary-errors",
        "severity": "critical",
        "deployment": DEP,
        "signal": "error_rate",
        "project": "default",
        "revision": "canary",
    }
    assert alert["annotations"]["runbook_url"] == "https://runbooks.acme.example/canary-errors"
    assert alert["annotations"]["value"] == "1.0" and "error_rate of acme-assistant revision canary is 1" in alert["annotations"]["summary"]
    assert alert["startsAt"] == firing_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["generatorURL"] == "http://plinth.acme.example:8080/api/v1/alerts/rules/canary-errors"
    assert handler.headers_seen[0]["content-type"] == "application/json"
    # the failure leaves the window: resolved, with the same fingerprint and an end time
    resolved_at = clock.step(400)
    ev = svc.evaluate("canary-errors")
    assert ev.event is not None and ev.event.to is Transition.RESOLVED and ev.event.delivered[0]["ok"]
    body = handler.bodies[1]
    assert body["status"] == "resolved" and body["alerts"][0]["status"] == "resolved"
    assert body["alerts"][0]["fingerprint"] == alert["fingerprint"] and body["alerts"][0]["startsAt"] == alert["startsAt"]
    assert body["alerts"][0]["endsAt"] == resolved_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    # what was delivered is in the history
    assert [e.delivered[0]["message"].startswith("delivered to") for e in svc.events(rule="canary-errors")[:2]] == [True, True]


def test_a_webhook_that_cannot_be_reached_is_recorded_as_failed(store: SqlStore, clock: Clock) -> None:
    _with_canary(store)
    outbound = Outbound(OutboundPolicy.from_entries(["127.0.0.1"]))
    svc = _service(store, clock, outbound=outbound)
    # a port nothing listens on
    svc.create(_rule(**{"for": 0, "min_samples": 1, "actions": [{"kind": "webhook", "url": "http://127.0.0.1:9/x", "attempts": 2}]}))
    store.add_usage([_usage(2, Outcome.ERROR, clock.now - timedelta(seconds=5))])
    ev = svc.evaluate("canary-errors")
    assert ev.event is not None and ev.rule.state is AlertState.FIRING
    (outcome,) = ev.event.delivered
    assert outcome["ok"] is False and outcome["attempts"] == 2 and "no answer" in outcome["message"]


def test_firing_rolls_a_real_canary_back(store: SqlStore, clock: Clock) -> None:
    _with_canary(store)
    deployments = _deployments(store)
    svc = _service(store, clock, deployments=deployments)
    svc.create(_rule(**{"for": 0, "min_samples": 1, "actions": [{"kind": "rollback"}]}))
    store.add_usage([_usage(2, Outcome.ERROR, clock.now - timedelta(seconds=5)) for _ in range(3)])
    ev = svc.evaluate("canary-errors")
    assert ev.event is not None
    (outcome,) = ev.event.delivered
    assert outcome["ok"] and outcome["rolled_back"] == 2
    dep = store.get_deployment(DEP)
    assert (dep.stable_revision, dep.canary_revision) == (1, None)
    rolled = store.list_deployment_events(DEP)[0]
    assert rolled.kind is EventKind.AUTO_ROLLBACK and rolled.actor == "system:alerts"
    assert rolled.reason.startswith("alert canary-errors: error_rate of acme-assistant revision canary is 1")
    assert deployments.metrics.deployment_rollbacks.labels(DEP, "auto", "error_rate")._value.get() == 1


def test_the_pipeline_action_records_that_nothing_is_installed(store: SqlStore, clock: Clock) -> None:
    _with_canary(store)
    svc = _service(store, clock)
    svc.create(_rule(**{"for": 0, "min_samples": 1, "actions": [{"kind": "pipeline", "pipeline": "retrain-acme"}]}))
    store.add_usage([_usage(2, Outcome.ERROR, clock.now - timedelta(seconds=5))])
    ev = svc.evaluate("canary-errors")
    assert ev.event is not None
    (outcome,) = ev.event.delivered
    assert outcome == {
        "kind": "pipeline",
        "ok": False,
        "message": "pipelines are not available in this version of plinth: pipeline 'retrain-acme' was not started",
        "pipeline": "retrain-acme",
        "available": False,
    }
    assert svc.events(rule="canary-errors")[0].delivered[0]["available"] is False

    class Starter:
        def __init__(self) -> None:
            self.calls: list[tuple[str, dict[str, Any]]] = []

        def start_pipeline(self, pipeline: str, *, reason: str, trigger: dict[str, Any]) -> str:
            self.calls.append((pipeline, trigger))
            return "run-1"

    starter = Starter()  # the extension point the automation issue fills in
    svc.actions.pipelines = starter
    assert svc.test("canary-errors")[0]["message"] == "would start pipeline 'retrain-acme' (test: nothing started)"
    assert starter.calls == []


def test_the_evaluator_evaluates_every_project_in_its_scope(store: SqlStore, clock: Clock) -> None:
    store.create_project(Project(name="claims"))
    for project in ("default", "claims"):
        with project_scope(project):
            store.create_deployment(Deployment(name=DEP, stable_revision=1), _targets("base"), actor="alice")
    svc = _service(store, clock)
    with project_scope("default"):
        svc.create(_rule(name="busy", signal="requests", revision=None, threshold=0, **{"for": 0}))
    with project_scope("claims"):
        svc.create(_rule(name="busy", signal="requests", revision=None, threshold=2, **{"for": 0}))
        svc.create(_rule(name="off", signal="requests", revision=None, threshold=0, enabled=False, **{"for": 0}))
        store.add_usage([_usage(1, Outcome.OK, clock.now - timedelta(seconds=5)) for _ in range(2)])
    with project_scope("default"):
        store.add_usage([_usage(1, Outcome.OK, clock.now - timedelta(seconds=5))])
    evaluator = AlertEvaluator(svc, interval_s=0)
    evaluator.start()  # interval 0: no thread
    results = evaluator.run_once()
    assert sorted((r.rule.project, r.rule.name, r.reading.value) for r in results) == [("claims", "busy", 2.0), ("default", "busy", 1.0)]
    with project_scope("default"):
        assert svc.get("busy").state is AlertState.FIRING  # 1 > 0
    with project_scope("claims"):
        assert svc.get("busy").state is AlertState.INACTIVE  # 2 is not > 2
        assert svc.get("off").last_evaluated_at is None
    evaluator.close()


def test_the_prometheus_export_says_what_it_leaves_out(store: SqlStore, clock: Clock) -> None:
    _with_canary(store)
    svc = _service(store, clock)
    svc.create(_rule(name="errors", revision=None))
    svc.create(_rule(name="feedback", signal="negative_feedback_rate", revision=None))
    svc.create(_rule(name="slow-canary", signal="latency_p95", revision="canary", threshold=2))
    text, skipped = prometheus_rules(store.list_alert_rules(), project="default")
    assert [s["rule"] for s in skipped] == ["feedback", "slow-canary"]
    assert "# not exported: feedback: feedback is stored, not counted in a metric" in text
    assert 'sum(rate(plinth_deployment_requests_total{deployment="acme-assistant",outcome="error"}[5m]))' in text


def test_the_shipped_acme_rules_export_to_the_shipped_prometheus_file() -> None:
    """examples/acme-health/alerts: rules.yaml parses, and its export with plinth's own metrics
    is prometheus-rules.yml byte for byte (the file `promtool test rules tests.yml` checks)."""
    example = Path(__file__).resolve().parents[3] / "examples" / "acme-health" / "alerts"
    outbound = Outbound(OutboundPolicy.from_entries(["127.0.0.1"]))
    parser = AlertService(None, ActionContext(outbound=outbound))  # type: ignore[arg-type] - parsing needs no store
    rules = [parser.parse(d) for d in yaml.safe_load((example / "rules.yaml").read_text())["rules"]]
    assert [r.name for r in rules] == [
        "acme-canary-errors",
        "acme-slow-answers",
        "acme-no-traffic",
        "acme-unhappy-members",
        "acme-questions-drifted",
    ]
    text, skipped = prometheus_rules(rules, project="default", declared_metrics=metric_names(Metrics().registry))
    assert text == (example / "prometheus-rules.yml").read_text()
    assert [s["rule"] for s in skipped] == ["acme-unhappy-members", "acme-questions-drifted"]


def test_drift_signals_read_the_newest_run_in_the_window(store: SqlStore, clock: Clock) -> None:
    _with_canary(store)
    svc = _service(store, clock)
    svc.create(
        _rule(
            name="drifted", signal="drift_detected", revision=None, comparison=">=", threshold=1, window="1h", min_samples=1, **{"for": 0}
        )
    )
    svc.create(_rule(name="drift-score", signal="drift_score", revision=None, threshold=0.8, window="1h", min_samples=1, **{"for": 0}))
    ev = svc.evaluate("drifted")
    assert ev.reading.value is None and "no drift measurement" in ev.reading.details["reason"] and not ev.holds

    def run(score: float, drifted: bool, minutes_ago: int) -> None:
        at = clock.now - timedelta(minutes=minutes_ago)
        store.add_drift_run(
            DriftRun(
                deployment=DEP,
                window_start=at - timedelta(hours=1),
                window_end=at,
                n_recent=200,
                n_reference=500,
                reference={"kind": "dataset"},
                results={},
                drifted=drifted,
                score=score,
                at=at,
            )
        )

    run(0.95, True, 90)  # outside the hour
    run(0.5, False, 30)
    assert svc.evaluate("drifted").reading.value == 0.0
    run(0.9, True, 5)
    for name in ("drifted", "drift-score"):
        ev = svc.evaluate(name)
        assert ev.holds and ev.reading.samples == 2 and ev.event is not None and ev.event.to is Transition.FIRING
    assert svc.get("drift-score").last_value == 0.9


def test_the_evaluator_thread_runs_until_closed(store: SqlStore, clock: Clock) -> None:
    _with_canary(store)
    svc = _service(store, clock)
    svc.create(_rule(name="busy", signal="requests", revision=None, threshold=0, **{"for": 0}))
    store.add_usage([_usage(1, Outcome.OK, clock.now - timedelta(seconds=5))])
    evaluator = AlertEvaluator(svc, interval_s=0.01)
    evaluator.start()
    try:
        for _ in range(2000):  # wait for a round (no timing is asserted)
            if svc.get("busy").state is AlertState.FIRING:
                break
            threading.Event().wait(0.01)
        assert svc.get("busy").state is AlertState.FIRING and evaluator.rounds >= 1
    finally:
        evaluator.close()
    assert evaluator._thread is not None and not evaluator._thread.is_alive()


def test_anomaly_and_drift_alerts_link_the_flagged_requests() -> None:
    from datetime import UTC, datetime

    from plinth.domain.alerts import AlertExpr, AlertRule, Comparison
    from plinth.oversight.actions import Notice

    def notice(signal: str) -> Notice:
        expr = AlertExpr(signal=signal, deployment="acme assistant", comparison=Comparison.GT, threshold=0)
        return Notice(AlertRule(name="r", expr=expr), "firing", 3.0, datetime.now(UTC), None, "default")

    for signal in ("anomaly_count", "drift_detected", "drift_score"):
        assert notice(signal).annotations()["flagged_requests"] == "/api/v1/requests?deployment=acme+assistant&flagged=true"
    assert "flagged_requests" not in notice("error_rate").annotations()
