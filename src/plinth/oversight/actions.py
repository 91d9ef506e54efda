"""What an alert rule does when it fires or resolves: actions registered by kind, like the
runtimes and detectors (a third party adds one with :func:`register_action`).

Built in:

- ``webhook``: POST the payload Alertmanager sends its webhook receivers (``version: "4"``,
  ``status``, ``alerts[]`` with labels, annotations, ``startsAt``/``endsAt``) through the
  outbound fetcher, with retries; on firing and on resolved;
- ``rollback``: roll the deployment's canary back through the deployment service (the
  rollout watcher's path: compare-and-set, history event, audit entry, metric); on firing;
- ``pipeline``: start a pipeline through a :class:`PipelineStarter`. Pipelines come with
  the automation issue; until one is installed the action records that nothing was started.

Each run gives an :class:`ActionOutcome` (``ok`` and a message) that the rule's history keeps.
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol
from urllib.parse import urlencode

import httpx

from plinth import __version__
from plinth.deployments.service import DeploymentService
from plinth.domain.alerts import AlertRule, duration_text
from plinth.errors import ErrorCode, PlinthError
from plinth.outbound import Outbound, OutboundLimit, OutboundRefused, shown_url

log = logging.getLogger("plinth.alerts")

ALERTS_ACTOR = "system:alerts"
FIRING, RESOLVED = "firing", "resolved"
MAX_ATTEMPTS = 10
PIPELINE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's "not ended"


class PipelineStarter(Protocol):
    """What the ``pipeline`` action calls (the automation issue provides it): start
    ``pipeline`` because of ``trigger`` (the alert's labels and value); the started run's id."""

    def start_pipeline(self, pipeline: str, *, reason: str, trigger: dict[str, Any]) -> str: ...


#: signals whose alerts link the flagged (anomalous) requests of the deployment
FLAGGED_SIGNALS = frozenset({"anomaly_count", "drift_score", "drift_detected"})


@dataclass(frozen=True)
class Notice:
    """One alert as actions see it: the rule, ``firing`` or ``resolved``, the value, and when
    it started (and ended). ``test``: sent by ``plinth alerts test``, not by a state change."""

    rule: AlertRule
    status: str
    value: float | None
    starts_at: datetime
    ends_at: datetime | None
    project: str
    test: bool = False

    def labels(self) -> dict[str, str]:
        e = self.rule.expr
        out = {
            "alertname": self.rule.name,
            "severity": self.rule.severity.value,
            "deployment": e.deployment,
            "signal": e.signal,
            "project": self.project,
        }
        if e.revision is not None:
            out["revision"] = str(e.revision)
        if self.test:
            out["test"] = "true"
        return out

    def summary(self) -> str:
        e = self.rule.expr
        shown = "no value" if self.value is None else f"{self.value:.4g}"
        prefix = "[test] " if self.test else ""
        state = "resolved: " if self.status == RESOLVED else ""
        where = e.deployment + (f" revision {e.revision}" if e.revision is not None else "")
        span = f" for {duration_text(self.rule.for_s)}" if self.rule.for_s else ""
        return (
            f"{prefix}{state}{e.signal} of {where} is {shown} ({e.comparison.value} {e.threshold:g} over {duration_text(e.window_s)}{span})"
        )

    def annotations(self) -> dict[str, str]:
        out = {"summary": self.summary()}
        if self.rule.runbook:
            out["description"] = self.rule.runbook
            if re.match(r"^https?://\S+$", self.rule.runbook.strip()):
                out["runbook_url"] = self.rule.runbook.strip()
        if self.value is not None:
            out["value"] = repr(self.value)
        if self.rule.expr.signal in FLAGGED_SIGNALS:  # where the requests behind the value are listed
            out["flagged_requests"] = "/api/v1/requests?" + urlencode({"deployment": self.rule.expr.deployment, "flagged": "true"})
        return out

    def trigger(self) -> dict[str, Any]:
        return {"labels": self.labels(), "value": self.value, "status": self.status, "starts_at": _rfc3339(self.starts_at)}


@dataclass(frozen=True)
class ActionOutcome:
    kind: str
    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "ok": self.ok, "message": self.message, **self.details}


@dataclass
class ActionContext:
    """What actions act through. ``sleep`` waits between webhook attempts (tests pass one
    that does not sleep)."""

    outbound: Outbound | None = None
    deployments: DeploymentService | None = None
    pipelines: PipelineStarter | None = None
    external_url: str = ""
    webhook_timeout_s: float = 10.0
    sleep: Callable[[float], None] = time.sleep


class AlertAction(abc.ABC):
    """An action kind. ``fields`` are the spec's keys besides ``kind`` and ``on`` (name ->
    what it means), ``required`` those it must have; ``acts_on`` the notices it handles unless
    the spec's ``on`` narrows them."""

    kind: ClassVar[str]
    description: ClassVar[str]
    fields: ClassVar[dict[str, str]] = {}
    required: ClassVar[tuple[str, ...]] = ()
    acts_on: ClassVar[tuple[str, ...]] = (FIRING,)

    def check(self, spec: dict[str, Any], ctx: ActionContext, param: str) -> dict[str, Any]:
        """The spec, checked and completed (``on`` filled in); 400 naming the field."""
        return dict(spec)

    @abc.abstractmethod
    def run(self, spec: dict[str, Any], notice: Notice, ctx: ActionContext) -> ActionOutcome:
        """Do it (``notice.test``: a test; an action with lasting effects says what it would do)."""

    @classmethod
    def public_dict(cls) -> dict[str, Any]:
        return {
            "kind": cls.kind,
            "description": cls.description,
            "fields": dict(cls.fields),
            "required": list(cls.required),
            "on": list(cls.acts_on),
        }


_ACTIONS: dict[str, AlertAction] = {}
_LOCK = threading.Lock()


def register_action(action: type[AlertAction], *, replace: bool = False) -> None:
    with _LOCK:
        if action.kind in _ACTIONS and not replace:
            raise ValueError(f"alert action {action.kind!r} is already registered")
        _ACTIONS[action.kind] = action()


def action_kinds() -> dict[str, AlertAction]:
    with _LOCK:
        return dict(sorted(_ACTIONS.items()))


def check_action(spec: Any, ctx: ActionContext, param: str) -> dict[str, Any]:
    """One action spec of a rule, checked: a known kind, known fields, ``on`` a subset of
    what the kind acts on."""
    if not isinstance(spec, dict):
        raise PlinthError(ErrorCode.INVALID_REQUEST, "an action must be an object with a 'kind'", param=param)
    kinds = action_kinds()
    kind = spec.get("kind")
    action = kinds.get(kind) if isinstance(kind, str) else None
    if action is None:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"unknown action kind {kind!r}; kinds: {', '.join(kinds)}", param=f"{param}.kind")
    allowed = {"kind", "on", *action.fields}
    for key in spec:
        if key not in allowed:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"unknown field {key!r} of a {kind} action; fields: {', '.join(sorted(allowed))}",
                param=f"{param}.{key}",
            )
    for key in action.required:
        if spec.get(key) in (None, ""):
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"a {kind} action needs {key!r}", param=f"{param}.{key}")
    on = spec.get("on", list(action.acts_on))
    if not isinstance(on, list) or not on or any(o not in action.acts_on for o in on):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"'on' of a {kind} action is a non-empty list of {', '.join(action.acts_on)}; got {on!r}",
            param=f"{param}.on",
        )
    checked = action.check({k: v for k, v in spec.items() if k != "on"}, ctx, param)
    return {**checked, "on": sorted(set(on), key=[FIRING, RESOLVED].index)}


def run_actions(specs: tuple[dict[str, Any], ...], notice: Notice, ctx: ActionContext) -> list[ActionOutcome]:
    """Run the actions that act on ``notice.status``, in order; a failing one never stops the
    next."""
    out = []
    kinds = action_kinds()
    for spec in specs:
        kind = str(spec.get("kind"))
        if notice.status not in spec.get("on", (FIRING,)):
            continue
        action = kinds.get(kind)
        if action is None:
            out.append(ActionOutcome(kind, False, f"action kind {kind!r} is not installed on this server"))
            continue
        try:
            out.append(action.run(spec, notice, ctx))
        except PlinthError as e:
            out.append(ActionOutcome(kind, False, e.message))
        except Exception as e:  # an action's bug is recorded and logged, never stops the others
            log.exception("alert action %s of rule %s failed", kind, notice.rule.name)
            out.append(ActionOutcome(kind, False, f"failed: {type(e).__name__}"))
    return out


# -- webhook ---------------------------------------------------------------------------------------
def alertmanager_payload(notices: list[Notice], external_url: str) -> dict[str, Any]:
    """The JSON Alertmanager POSTs to a webhook receiver (version 4) for these alerts of one
    rule."""
    alerts = [_alert(n, external_url) for n in notices]
    labels = [a["labels"] for a in alerts]
    annotations = [a["annotations"] for a in alerts]
    common_labels = {k: v for k, v in labels[0].items() if all(other.get(k) == v for other in labels)}
    common_annotations = {k: v for k, v in annotations[0].items() if all(other.get(k) == v for other in annotations)}
    name = notices[0].rule.name
    return {
        "version": "4",
        "groupKey": "{}:{alertname=" + json.dumps(name) + "}",
        "truncatedAlerts": 0,
        "status": FIRING if any(a["status"] == FIRING for a in alerts) else RESOLVED,
        "receiver": "plinth",
        "groupLabels": {"alertname": name},
        "commonLabels": common_labels,
        "commonAnnotations": common_annotations,
        "externalURL": external_url,
        "alerts": alerts,
    }


def _alert(n: Notice, external_url: str) -> dict[str, Any]:
    labels = n.labels()
    fingerprint = hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:16]
    return {
        "status": n.status,
        "labels": labels,
        "annotations": n.annotations(),
        "startsAt": _rfc3339(n.starts_at),
        "endsAt": _rfc3339(n.ends_at) if n.ends_at is not None else _ZERO_TIME,
        "generatorURL": f"{external_url.rstrip('/')}/api/v1/alerts/rules/{n.rule.name}",
        "fingerprint": fingerprint,
    }


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WebhookAction(AlertAction):
    kind = "webhook"
    description = "POST the alert to a URL as Alertmanager's webhook receivers get it (version 4), with retries"
    fields: ClassVar[dict[str, str]] = {
        "url": "http(s) URL, allowed by the outbound rules (PLINTH_OUTBOUND_ALLOW for internal hosts)",
        "secret": "a named secret (PLINTH_SECRETS) sent as 'Authorization: Bearer <value>'",
        "attempts": f"tries before giving up, 1 to {MAX_ATTEMPTS} (default 3); a 5xx, 429 or no answer is retried",
    }
    required = ("url",)
    acts_on = (FIRING, RESOLVED)

    def check(self, spec: dict[str, Any], ctx: ActionContext, param: str) -> dict[str, Any]:
        url = spec.get("url")
        if not isinstance(url, str):
            raise PlinthError(ErrorCode.INVALID_REQUEST, "a webhook's url must be a string", param=f"{param}.url")
        if ctx.outbound is None:
            raise PlinthError(ErrorCode.UNSUPPORTED, "this process cannot make outbound requests", param=f"{param}.url")
        u = ctx.outbound.check_url(url, what="webhook URL", param=f"{param}.url")
        out: dict[str, Any] = {"kind": self.kind, "url": url}
        secret = spec.get("secret")
        if secret is not None:
            if not isinstance(secret, str):
                raise PlinthError(ErrorCode.INVALID_REQUEST, "a webhook's secret is a secret's name", param=f"{param}.secret")
            ctx.outbound.secrets.get(secret, host=u.host, param=f"{param}.secret", what="webhook secret")
            out["secret"] = secret
        attempts = spec.get("attempts", 3)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= MAX_ATTEMPTS:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, f"attempts must be a whole number from 1 to {MAX_ATTEMPTS}", param=f"{param}.attempts"
            )
        out["attempts"] = attempts
        return out

    def run(self, spec: dict[str, Any], notice: Notice, ctx: ActionContext) -> ActionOutcome:
        if ctx.outbound is None:
            return ActionOutcome(self.kind, False, "this process cannot make outbound requests")
        url = str(spec["url"])
        shown = shown_url(url)
        attempts = int(spec.get("attempts", 3))
        headers = {"content-type": "application/json", "user-agent": f"plinth/{__version__} (alerts)"}
        try:
            if spec.get("secret"):
                host = httpx.URL(url).host
                headers["authorization"] = "Bearer " + ctx.outbound.secrets.get(str(spec["secret"]), host=host).value
            body = json.dumps(alertmanager_payload([notice], ctx.external_url)).encode()
        except (PlinthError, httpx.InvalidURL) as e:
            return ActionOutcome(self.kind, False, f"{shown}: {getattr(e, 'message', str(e))}")
        last = ""
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                ctx.sleep(min(30.0, 2.0 ** (attempt - 2)))
            try:
                with ctx.outbound.client(what="webhook URL", deadline_s=ctx.webhook_timeout_s, max_bytes=64 * 1024) as client:
                    r = client.post(url, content=body, headers=headers)
            except OutboundRefused as e:  # the rules refuse it: retrying cannot help
                return ActionOutcome(self.kind, False, f"{shown}: {e.message}", {"attempts": attempt})
            except (OutboundLimit, httpx.HTTPError) as e:
                last = f"no answer ({getattr(e, 'message', type(e).__name__)})"
                continue
            if 200 <= r.status_code < 300:
                return ActionOutcome(
                    self.kind, True, f"delivered to {shown} ({r.status_code})", {"attempts": attempt, "status": r.status_code}
                )
            last = f"answered {r.status_code}"
            if r.status_code < 500 and r.status_code != 429:  # the receiver refuses it: retrying cannot help
                return ActionOutcome(self.kind, False, f"{shown} {last}", {"attempts": attempt, "status": r.status_code})
        return ActionOutcome(self.kind, False, f"{shown}: {last} after {attempts} attempts", {"attempts": attempts})


# -- rollback ---------------------------------------------------------------------------------------
class RollbackAction(AlertAction):
    kind = "rollback"
    description = "roll the deployment's canary back (all traffic to the stable revision); nothing when it has no canary"

    def run(self, spec: dict[str, Any], notice: Notice, ctx: ActionContext) -> ActionOutcome:
        if ctx.deployments is None:
            return ActionOutcome(self.kind, False, "deployments are not available in this process")
        name = notice.rule.expr.deployment
        dep = ctx.deployments.store.find_deployment(name)
        if dep is None:
            return ActionOutcome(self.kind, False, f"deployment {name!r} does not exist")
        if dep.canary_revision is None:
            return ActionOutcome(self.kind, True, f"deployment {name!r} has no canary: nothing to roll back", {"rolled_back": None})
        if notice.test:
            return ActionOutcome(
                self.kind, True, f"would roll canary revision {dep.canary_revision} of {name!r} back (test: nothing changed)"
            )
        try:
            ctx.deployments.rollback(
                name,
                actor=ALERTS_ACTOR,
                reason=f"alert {notice.rule.name}: {notice.summary()}",
                trigger="auto",
                rule=notice.rule.expr.signal,
                expected_generation=dep.generation,
                details={"alert": notice.rule.name, "value": notice.value},
            )
        except PlinthError as e:
            if e.code is ErrorCode.CONFLICT:
                return ActionOutcome(self.kind, False, f"deployment {name!r} changed meanwhile; nothing rolled back")
            raise
        return ActionOutcome(
            self.kind,
            True,
            f"rolled canary revision {dep.canary_revision} of {name!r} back to stable revision {dep.stable_revision}",
            {"rolled_back": dep.canary_revision},
        )


# -- pipeline ---------------------------------------------------------------------------------------
class PipelineAction(AlertAction):
    kind = "pipeline"
    description = "start a pipeline (retraining, re-evaluation) with the alert as its trigger"
    fields: ClassVar[dict[str, str]] = {"pipeline": "the pipeline's name"}
    required = ("pipeline",)

    def check(self, spec: dict[str, Any], ctx: ActionContext, param: str) -> dict[str, Any]:
        name = spec.get("pipeline")
        if not isinstance(name, str) or not PIPELINE_NAME_RE.match(name):
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"invalid pipeline name {name!r}: 1-128 letters, digits, '.', '_' or '-'",
                param=f"{param}.pipeline",
            )
        return {"kind": self.kind, "pipeline": name}

    def run(self, spec: dict[str, Any], notice: Notice, ctx: ActionContext) -> ActionOutcome:
        pipeline = str(spec["pipeline"])
        if ctx.pipelines is None:
            return ActionOutcome(
                self.kind,
                False,
                f"pipelines are not available in this version of plinth: pipeline {pipeline!r} was not started",
                {"pipeline": pipeline, "available": False},
            )
        if notice.test:
            return ActionOutcome(self.kind, True, f"would start pipeline {pipeline!r} (test: nothing started)", {"pipeline": pipeline})
        run = ctx.pipelines.start_pipeline(pipeline, reason=f"alert {notice.rule.name}: {notice.summary()}", trigger=notice.trigger())
        return ActionOutcome(self.kind, True, f"started pipeline {pipeline!r} (run {run})", {"pipeline": pipeline, "run": run})


BUILTIN_ACTIONS: tuple[type[AlertAction], ...] = (WebhookAction, RollbackAction, PipelineAction)

for _a in BUILTIN_ACTIONS:
    register_action(_a)
