"""The compliance report on the real store: a deployment with two revisions, usage, feedback,
guardrail findings, an alert that fired, drift runs and a bias report in the period (and some
outside it), gathered by :func:`build_report` and rendered as self-contained, printable HTML in
which every person's or model's string is escaped (a hostile description and names)."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

from plinth.domain.alerts import AlertEvent, AlertState, Transition
from plinth.domain.bias import BiasReport
from plinth.domain.deployments import Deployment, DeploymentEvent, EventKind, Feedback, Outcome, Role, Target, UsageRecord
from plinth.domain.drift import DriftRun
from plinth.domain.guardrails import Action, Direction, GuardrailEvent
from plinth.errors import ErrorCode, PlinthError
from plinth.oversight.actions import ActionContext
from plinth.oversight.alerts import AlertService
from plinth.oversight.report import build_report, render_html
from plinth.store.sql import SqlStore

DEP = "acme-assistant"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes"'


class _Version:
    """What the registry answers for acme-faq@2 (its lineage)."""

    name, version, kind, base_model, run_id, artifact_digest = "acme-faq", 2, "adapter", "smollm2-135m-instruct", "run-7", "ab" * 32
    dataset = "acme-faq@3"
    metrics: ClassVar[dict[str, Any]] = {"rouge_l": 0.41, "note": "<b>not a number</b>"}


def _resolve(model_id: str) -> Any:
    return _Version() if model_id == "acme-faq@2" else None


def _usage(rev: int, at: datetime, outcome: Outcome = Outcome.OK, blocked: bool = False) -> UsageRecord:
    return UsageRecord(
        response_id=f"chatcmpl-{random.getrandbits(128):032x}",
        kind="chat",
        model=DEP,
        served_model="smollm2-135m-instruct",
        outcome=outcome,
        prompt_tokens=10,
        completion_tokens=5,
        latency_s=0.2,
        deployment=DEP,
        revision=rev,
        role=Role.CANARY if rev == 2 else Role.STABLE,
        model_version="smollm2-135m-instruct" if rev == 1 else "acme-faq@2",
        blocked=blocked,
        at=at,
    )


@pytest.fixture
def period() -> tuple[datetime, datetime]:
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    return until - timedelta(days=2), until


@pytest.fixture
def filled(store: SqlStore, period: tuple[datetime, datetime]) -> SqlStore:
    since, _ = period
    t = since + timedelta(hours=1)
    store.create_deployment(
        Deployment(name=DEP, stable_revision=1, description=HOSTILE),
        (Target("smollm2-135m-instruct", 100, pinned="smollm2-135m-instruct", version="smollm2-135m-instruct"),),
        actor="alice",
    )
    store.add_revision(
        DEP,
        (
            Target(
                "acme-faq@2",
                100,
                pinned="acme-faq@2",
                version="acme-faq@2",
                knowledge_base="acme-plans",
                guardrail_policy="acme-guard@1",
            ),
        ),
        actor="alice",
        note=HOSTILE,
    )
    store.update_deployment(
        DEP,
        {"canary_revision": 2, "canary_percent": 20.0, "canary_started_at": t},
        expected_generation=1,
        event=DeploymentEvent(DEP, EventKind.CANARY, "alice", revision=2, reason=HOSTILE),
    )
    records = [_usage(1, t + timedelta(minutes=i)) for i in range(8)]
    records += [_usage(2, t + timedelta(minutes=i)) for i in range(3)]
    records += [_usage(2, t, Outcome.ERROR), _usage(2, t, blocked=True)]
    records += [_usage(1, since - timedelta(days=1))]  # before the period: not counted
    store.add_usage(records)
    for rating, rev in ((1, 1), (1, 1), (-1, 2), (0, 2)):
        store.add_feedback(Feedback(response_id=records[0 if rev == 1 else 8].response_id, rating=rating, deployment=DEP, revision=rev))
    store.add_guardrail_events(
        [
            GuardrailEvent(
                request_id=records[11].response_id,
                model_id=DEP,
                policy="acme-guard",
                policy_version=1,
                direction=Direction.INPUT,
                detector="pii",
                kind="entity",
                label="MEMBER_ID",
                action=Action.REDACT,
                score=1.0,
            )
        ]
    )
    alerts = AlertService(store, ActionContext())
    rule = alerts.create({"name": "canary-errors", "signal": "error_rate", "deployment": DEP, "threshold": 0.1, "runbook": HOSTILE})
    store.transition_alert_rule(
        rule.name,
        expected_state=AlertState.INACTIVE,
        expected_since=None,
        event=AlertEvent(
            rule.name, AlertState.INACTIVE, Transition.FIRING, 0.5, delivered=({"kind": "webhook", "ok": True, "message": HOSTILE},)
        ),
        since=t,
    )
    for i, (score, drifted) in enumerate(((0.51, False), (0.55, False), (0.93, True))):
        store.add_drift_run(
            DriftRun(
                deployment=DEP,
                window_start=t,
                window_end=t + timedelta(hours=1),
                n_recent=200,
                n_reference=500,
                reference={"kind": "dataset", "name": "acme-faq", "version": 3},
                results={},
                drifted=drifted,
                score=score,
                at=t + timedelta(hours=i),
            )
        )
    store.add_bias_report(
        BiasReport(
            id="",
            target=DEP,
            suite="acme-members",
            passed=False,
            results={
                "attributes": {
                    "age": {"metrics": {"similarity": {"value": 0.71, "threshold": 0.8, "passed": False}}},
                    "region": {"metrics": {"similarity": {"value": 0.93, "threshold": 0.8, "passed": True}}},
                },
                "failures": ["age: similarity 0.71"],
            },
            at=t,
        )
    )
    return store


def test_the_report_gathers_the_period(filled: SqlStore, period: tuple[datetime, datetime]) -> None:
    since, until = period
    r = build_report(filled, DEP, since=since, until=until, resolve_version=_resolve)
    assert r["deployment"]["description"] == HOSTILE and r["deployment"]["canary_revision"] == 2
    by_rev = {(x["revision"], x["model_version"]): x["requests"] for x in r["usage"]["by_revision"]}
    assert by_rev == {(1, "smollm2-135m-instruct"): 8, (2, "acme-faq@2"): 5}
    assert r["usage"]["totals"] == {"requests": 13, "errors": 1, "blocked": 1, "total_tokens": 195}
    assert r["model_versions"] == ["acme-faq@2", "smollm2-135m-instruct"]
    (canary,) = [x for x in r["revisions"] if x["number"] == 2]
    (target,) = canary["targets"]
    assert (canary["role"], target["knowledge_base"], target["guardrail_policy"]) == ("canary", "acme-plans", "acme-guard@1")
    assert target["lineage"]["dataset"] == "acme-faq@3" and target["lineage"]["run_id"] == "run-7"
    assert target["lineage"]["metrics"] == {"rouge_l": 0.41}
    assert [c["kind"] for c in r["changes"]] == ["canary", "created"]
    assert r["alerts"]["fired"] == 1 and r["alerts"]["events"][0]["severity"] == "warning"
    assert r["guardrails"] == [
        {"detector": "pii", "label": "MEMBER_ID", "action": "redact", "direction": "input", "count": 1, "requests": 1}
    ]
    assert [x["score"] for x in r["drift"]] == [0.51, 0.55, 0.93] and r["drift"][2]["drifted"]
    (bias,) = r["bias"]
    assert not bias["passed"] and [g["attribute"] for g in bias["gaps"]] == ["age", "region"]
    assert r["feedback"] == {
        "ratings": 4,
        "by_revision": [
            {"revision": 1, "positive": 2, "neutral": 0, "negative": 0},
            {"revision": 2, "positive": 0, "neutral": 1, "negative": 1},
        ],
    }
    json.dumps(r)  # JSON-able as it is
    # a period before anything happened holds nothing of it
    empty = build_report(filled, DEP, since=since - timedelta(days=30), until=since - timedelta(days=20))
    assert empty["usage"]["totals"]["requests"] == 0 and empty["drift"] == [] and empty["alerts"]["fired"] == 0
    assert '<p class="muted">no requests in this period</p>' in render_html(empty)


def test_the_html_is_self_contained_printable_and_escaped(filled: SqlStore, period: tuple[datetime, datetime]) -> None:
    since, until = period
    page = render_html(build_report(filled, DEP, since=since, until=until, resolve_version=_resolve))
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    # nothing a person or a model wrote is markup
    assert "<script" not in page.lower() and "<img" not in page and "<b>not" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # shown as text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    # no external asset and no script: inline CSS (with print rules) and inline SVG only
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@media print" in page and "@page" in page
    assert page.count("<svg") == 2  # requests per hour, drift score
    assert page.count('fill="#b3261e"') == 1  # the one drifted measurement in red
    for text in ("acme-faq@3", "acme-plans", "acme-guard@1", "MEMBER_ID", "canary-errors", "acme-members", "age similarity 0.71"):
        assert text in page, text


def test_bad_periods_and_unknown_deployments_are_clear(filled: SqlStore, period: tuple[datetime, datetime]) -> None:
    since, until = period
    with pytest.raises(PlinthError) as e:
        build_report(filled, DEP, since=until, until=since)
    assert (e.value.code, e.value.param) == (ErrorCode.INVALID_REQUEST, "until")
    with pytest.raises(PlinthError) as e:
        build_report(filled, DEP, since=until - timedelta(days=400), until=until)
    assert (e.value.code, e.value.param) == (ErrorCode.INVALID_REQUEST, "since")
    with pytest.raises(PlinthError) as e:
        build_report(filled, "nowhere", since=since, until=until)
    assert e.value.code is ErrorCode.NOT_FOUND
