"""Alert rules that act (ADR 0094): the service behind ``/api/v1/alerts`` and ``plinth alerts``.

:class:`AlertService` checks and stores rules, evaluates them and keeps their history:

- a rule's definition is checked before it is stored: the signal is registered, its
  ``params`` are the signal's, the deployment exists, every action passes
  :func:`plinth.oversight.actions.check_action`;
- :meth:`AlertService.evaluate` reads the rule's signal over its window and moves its state:
  ``inactive -> pending`` when the condition starts to hold (straight to ``firing`` with no
  ``for``), ``pending -> firing`` once it has held for ``for``, ``pending -> inactive`` when it
  stops holding first, ``firing -> resolved`` (inactive) when it stops holding. Each change is
  stored with compare-and-set on the state and the time it was entered
  (:meth:`transition_alert_rule`): of two processes that decide the same change, one records
  it and runs the actions, the other sees it lost and does nothing;
- on ``firing`` and ``resolved`` the rule's actions run and what they did is stored on the event;
- :class:`AlertEvaluator` evaluates the enabled rules of every project every ``interval_s``
  on its own thread. Time comes from an injectable ``clock``: tests step it instead of sleeping;
- :meth:`AlertService.export_prometheus` writes the rules whose signals have a PromQL
  equivalent as a Prometheus rules file (``promtool check rules`` accepts it).
"""

from __future__ import annotations

import builtins
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from plinth.domain.alerts import (
    MAX_ACTIONS,
    MAX_FOR_S,
    MAX_WINDOW_S,
    MIN_WINDOW_S,
    REVISION_ROLES,
    RULE_NAME_RE,
    AlertEvent,
    AlertExpr,
    AlertRule,
    AlertState,
    Comparison,
    Severity,
    Transition,
    duration_text,
)
from plinth.domain.numbers import VERSION_MAX
from plinth.domain.projects import current_project, project_scope, system_scope
from plinth.errors import ErrorCode, PlinthError, transient
from plinth.oversight.actions import FIRING, RESOLVED, ActionContext, Notice, action_kinds, check_action, run_actions
from plinth.oversight.signals import Reading, Signal, SignalContext, check_value, get_signal, signals
from plinth.store import MetadataStore
from plinth.usage.service import parse_duration

log = logging.getLogger("plinth.alerts")

Clock = Callable[[], datetime]

#: the fields of a rule's definition (``for`` and ``window`` are accepted as durations too)
DEFINITION_FIELDS = frozenset(
    {
        "name",
        "signal",
        "deployment",
        "revision",
        "comparison",
        "threshold",
        "window_s",
        "window",
        "min_samples",
        "params",
        "for_s",
        "for",
        "severity",
        "runbook",
        "actions",
        "enabled",
    }
)
MAX_RUNBOOK = 4000
MAX_MIN_SAMPLES = 1_000_000


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation of a rule found and did: the reading, whether the condition held,
    the state change it recorded (None: none, or another process recorded it first)."""

    rule: AlertRule
    reading: Reading
    holds: bool
    at: datetime
    event: AlertEvent | None = None
    lost_race: bool = False

    def public_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.public_dict(),
            "at": self.at.isoformat(),
            "value": self.reading.value,
            "samples": self.reading.samples,
            "details": self.reading.details,
            "holds": self.holds,
            "event": self.event.public_dict() if self.event is not None else None,
            "lost_race": self.lost_race,
        }


@dataclass
class AlertService:
    store: MetadataStore
    actions: ActionContext = field(default_factory=ActionContext)
    clock: Clock = utc_now
    #: checks a deployment exists in the current project (PlinthError not_found otherwise)
    check_deployment: Callable[[str], Any] | None = None
    #: plinth's metrics (their names decide which rules a Prometheus export can express)
    metrics: Any = None

    # -- signals and action kinds ------------------------------------------------------------------
    def signals(self) -> builtins.list[dict[str, Any]]:
        return [s.public_dict() for s in signals().values()]

    def action_kinds(self) -> builtins.list[dict[str, Any]]:
        return [a.public_dict() for a in action_kinds().values()]

    # -- rules --------------------------------------------------------------------------------------
    def list(self, *, deployment: str | None = None) -> builtins.list[AlertRule]:
        return self.store.list_alert_rules(deployment=deployment)

    def get(self, name: str) -> AlertRule:
        return self.store.get_alert_rule(name)

    def create(self, definition: dict[str, Any]) -> AlertRule:
        rule = self.parse(definition)
        return self.store.create_alert_rule(rule)

    def update(self, name: str, definition: dict[str, Any]) -> AlertRule:
        """Replace the definition of ``name`` (its state stays; ``name`` in the body, when
        given, must be the same)."""
        current = self.store.get_alert_rule(name)
        given = definition.get("name", name)
        if given != name:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"a rule cannot be renamed ({name!r} -> {given!r})", param="name")
        rule = self.parse({**definition, "name": name})
        return self.store.update_alert_rule(replace(rule, state=current.state, state_since=current.state_since))

    def delete(self, name: str) -> AlertRule:
        return self.store.delete_alert_rule(name)

    def parse(self, d: Any) -> AlertRule:
        """A rule from its definition (as ``POST /api/v1/alerts/rules`` takes it), checked: 400
        naming the field."""
        if not isinstance(d, dict):
            raise PlinthError(ErrorCode.INVALID_REQUEST, "an alert rule is an object (name, signal, deployment, ...)")
        for key in d:
            if key not in DEFINITION_FIELDS:
                raise PlinthError(
                    ErrorCode.INVALID_REQUEST,
                    f"unknown field {key!r} of an alert rule; fields: {', '.join(sorted(DEFINITION_FIELDS))}",
                    param=str(key),
                )
        name = d.get("name")
        if not isinstance(name, str) or not RULE_NAME_RE.match(name):
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, f"invalid rule name {name!r}: 1-128 letters, digits, '.', '_' or '-'", param="name"
            )
        signal_name = d.get("signal")
        if not isinstance(signal_name, str):
            raise PlinthError(ErrorCode.INVALID_REQUEST, "a rule needs a 'signal' (GET /api/v1/alerts/signals)", param="signal")
        signal = get_signal(signal_name)
        deployment = d.get("deployment")
        if not isinstance(deployment, str) or not deployment:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "a rule needs the 'deployment' it watches", param="deployment")
        if self.check_deployment is not None:
            try:
                self.check_deployment(deployment)
            except PlinthError as e:
                raise PlinthError(e.code, e.message, param="deployment") from None
        comparison = d.get("comparison", ">")
        try:
            cmp = Comparison(comparison)
        except ValueError:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"invalid comparison {comparison!r}: one of {', '.join(c.value for c in Comparison)}",
                param="comparison",
            ) from None
        if "threshold" not in d:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "a rule needs a 'threshold'", param="threshold")
        threshold = check_value(d["threshold"], "threshold", "threshold")
        window_s = _seconds(d, "window_s", "window", default=300, low=MIN_WINDOW_S, high=MAX_WINDOW_S)
        for_s = _seconds(d, "for_s", "for", default=0, low=0, high=MAX_FOR_S)
        min_samples = d.get("min_samples", 1)
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) or not 1 <= min_samples <= MAX_MIN_SAMPLES:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, f"min_samples must be a whole number from 1 to {MAX_MIN_SAMPLES}", param="min_samples"
            )
        return AlertRule(
            name=name,
            expr=AlertExpr(
                signal=signal.name,
                deployment=deployment,
                comparison=cmp,
                threshold=threshold,
                window_s=window_s,
                revision=_revision(d.get("revision")),
                min_samples=min_samples,
                params=_params(signal, d.get("params")),
            ),
            for_s=for_s,
            severity=_severity(d.get("severity", Severity.WARNING.value)),
            runbook=_runbook(d.get("runbook", "")),
            actions=self._actions(d.get("actions", [])),
            enabled=_bool(d.get("enabled", True), "enabled"),
        )

    def _actions(self, specs: Any) -> tuple[dict[str, Any], ...]:
        if specs is None:
            return ()
        if not isinstance(specs, list) or len(specs) > MAX_ACTIONS:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"actions is a list of at most {MAX_ACTIONS} actions", param="actions")
        return tuple(check_action(spec, self.actions, f"actions[{i}]") for i, spec in enumerate(specs))

    # -- history ------------------------------------------------------------------------------------
    def events(
        self,
        *,
        rule: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> builtins.list[AlertEvent]:
        if rule is not None:
            self.store.get_alert_rule(rule)  # 404 for a rule that does not exist
        return self.store.list_alert_events(rule=rule, since=since, until=until, before_id=before_id, limit=limit)

    # -- evaluation ---------------------------------------------------------------------------------
    def read(self, rule: AlertRule, now: datetime) -> tuple[Reading, bool]:
        """The rule's signal now, and whether its condition holds (a value with enough samples
        that compares true)."""
        signal = get_signal(rule.expr.signal)
        ctx = SignalContext(self.store, self.store.find_deployment(rule.expr.deployment), now)
        try:
            reading = signal.read(ctx, rule.expr)
        except PlinthError as e:
            reading = Reading(None, 0, {"reason": e.message})
        value = reading.value
        if value is None or not math.isfinite(value):
            return reading, False
        if signal.sampled and reading.samples < rule.expr.min_samples:
            return reading, False
        return reading, rule.expr.comparison.holds(value, rule.expr.threshold)

    def evaluate(self, name: str, *, now: datetime | None = None) -> Evaluation:
        """Evaluate ``name`` now in the current project: read, change state, act."""
        return self.evaluate_rule(self.store.get_alert_rule(name), now=now)

    def evaluate_all(self, *, now: datetime | None = None) -> builtins.list[Evaluation]:
        """Every enabled rule of the current project (one rule's failure never stops the next)."""
        out = []
        for rule in self.store.list_alert_rules(enabled=True):
            try:
                out.append(self.evaluate_rule(rule, now=now))
            except Exception as e:
                if transient(e):  # the store busy for a moment: the next round evaluates it again
                    log.warning("evaluating alert rule %s (project %s) deferred: %s", rule.name, current_project(), e)
                else:
                    log.exception("evaluating alert rule %s (project %s) failed", rule.name, current_project())
        return out

    def evaluate_rule(self, rule: AlertRule, *, now: datetime | None = None) -> Evaluation:
        at = now or self.clock()
        reading, holds = self.read(rule, at)
        if not rule.enabled:  # a disabled rule shows its value and changes nothing
            return Evaluation(rule, reading, holds, at)
        to = _next(rule, holds, at)
        if to is None:
            self.store.note_alert_evaluation(rule.name, value=reading.value, at=at)
            return Evaluation(rule, reading, holds, at)
        details = {
            "description": rule.expr.describe(),
            "samples": reading.samples,
            **({"reading": reading.details} if reading.details else {}),
        }
        event = self.store.transition_alert_rule(
            rule.name,
            expected_state=rule.state,
            expected_since=rule.state_since,
            event=AlertEvent(rule.name, rule.state, to, reading.value, details=details, at=at),
            since=at,
        )
        if event is None:  # another process moved the rule first: it acts, not this one
            return Evaluation(rule, reading, holds, at, lost_race=True)
        if to in (Transition.FIRING, Transition.RESOLVED) and rule.actions:
            status = FIRING if to is Transition.FIRING else RESOLVED
            started = at if to is Transition.FIRING else (rule.state_since or at)
            notice = Notice(
                rule=rule,
                status=status,
                value=reading.value,
                starts_at=started,
                ends_at=at if status == RESOLVED else None,
                project=current_project(),
            )
            delivered = [o.to_dict() for o in run_actions(rule.actions, notice, self.actions)]
            if delivered and event.id is not None:
                self.store.set_alert_event_delivered(event.id, delivered)
                event = replace(event, delivered=tuple(delivered))
        after = self.store.find_alert_rule(rule.name) or rule
        return Evaluation(after, reading, holds, at, event=event)

    def test(self, name: str) -> builtins.list[dict[str, Any]]:
        """Run the rule's actions once with a test notice (``test`` label; rollback and
        pipeline say what they would do)."""
        rule = self.store.get_alert_rule(name)
        at = self.clock()
        notice = Notice(rule, FIRING, rule.last_value, at, None, current_project(), test=True)
        return [o.to_dict() for o in run_actions(rule.actions, notice, self.actions)]

    # -- Prometheus ---------------------------------------------------------------------------------
    def export_prometheus(self) -> tuple[str, builtins.list[dict[str, str]]]:
        """The project's rules as a Prometheus rules file, and the rules left out with why."""
        declared = metric_names(self.metrics.registry) if self.metrics is not None else None
        return prometheus_rules(self.store.list_alert_rules(), project=current_project(), declared_metrics=declared)


def metric_names(registry: Any) -> frozenset[str]:
    """The metric names a Prometheus registry exposes (a counter's with ``_total``)."""
    names: set[str] = set()
    for family in registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
    return frozenset(names)


def _next(rule: AlertRule, holds: bool, at: datetime) -> Transition | None:
    """The state change an evaluation at ``at`` makes (None: none)."""
    if rule.state is AlertState.INACTIVE:
        if not holds:
            return None
        return Transition.FIRING if rule.for_s <= 0 else Transition.PENDING
    if rule.state is AlertState.PENDING:
        if not holds:
            return Transition.INACTIVE
        since = rule.state_since or at
        return Transition.FIRING if at - since >= timedelta(seconds=rule.for_s) else None
    return None if holds else Transition.RESOLVED


# -- checking a definition ---------------------------------------------------------------------------
def _seconds(d: dict[str, Any], key: str, alias: str, *, default: int, low: int, high: int) -> int:
    if key in d and alias in d:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"give either {key!r} or {alias!r}, not both", param=key)
    param = key if key in d else alias
    value = d.get(key, d.get(alias, default))
    if isinstance(value, str):
        seconds = parse_duration(value, param).total_seconds()
    elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{param} must be seconds or a duration such as 5m; got {value!r}", param=param)
    else:
        seconds = float(value)
    if not seconds.is_integer() or not low <= seconds <= high:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"{param} must be whole seconds from {duration_text(low)} to {duration_text(high)}; got {value!r}",
            param=param,
        )
    return int(seconds)


def _revision(value: Any) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, str) and value in REVISION_ROLES:
        return value
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= VERSION_MAX:
        return value
    raise PlinthError(
        ErrorCode.INVALID_REQUEST, f"revision is a revision number, 'stable' or 'canary' (or none: all); got {value!r}", param="revision"
    )


def _params(signal: Signal, params: Any) -> dict[str, Any]:
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise PlinthError(ErrorCode.INVALID_REQUEST, "params is an object of the signal's options", param="params")
    for key in params:
        if key not in signal.params:
            known = ", ".join(signal.params) or "none"
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, f"signal {signal.name!r} has no option {key!r} (options: {known})", param=f"params.{key}"
            )
    for key in signal.required_params:
        if key not in params:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"signal {signal.name!r} needs params.{key}", param=f"params.{key}")
    return {k: check_value(v, f"params.{k}", f"params.{k}") for k, v in params.items()}


def _severity(value: Any) -> Severity:
    try:
        return Severity(value)
    except ValueError:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST, f"invalid severity {value!r}: one of {', '.join(s.value for s in Severity)}", param="severity"
        ) from None


def _runbook(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_RUNBOOK:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"runbook is text of at most {MAX_RUNBOOK} characters", param="runbook")
    return value


def _bool(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{param} must be true or false; got {value!r}", param=param)
    return value


# -- the Prometheus rules file --------------------------------------------------------------------------
def prometheus_rules(
    rules: list[AlertRule], *, project: str, declared_metrics: frozenset[str] | None = None
) -> tuple[str, list[dict[str, str]]]:
    """A Prometheus rules file (one group per project) of the rules that have a PromQL
    equivalent, and those left out with the reason. ``declared_metrics``: the metric names
    plinth exports (a rule whose signal needs another is left out)."""
    out: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for rule in rules:
        reason = None
        signal = signals().get(rule.expr.signal)
        expr = None
        if signal is None:
            reason = f"signal {rule.expr.signal!r} is not installed on this server"
        elif signal.promql is None:
            reason = signal.prometheus_note or f"signal {signal.name!r} has no Prometheus equivalent"
        elif declared_metrics is not None and any(m not in declared_metrics for m in signal.metrics):
            missing = [m for m in signal.metrics if m not in declared_metrics]
            reason = f"plinth does not export {', '.join(missing)}"
        else:
            expr = signal.promql(rule.expr)
            if expr is None:
                reason = signal.prometheus_note or f"revision {rule.expr.revision!r} cannot be told apart in the metric"
        if not rule.enabled and reason is None:
            reason = "the rule is disabled"
        if reason is not None or expr is None or signal is None:
            skipped.append({"rule": rule.name, "reason": reason or "no PromQL expression"})
            continue
        labels = {"severity": rule.severity.value, "deployment": rule.expr.deployment, "signal": signal.name, "project": project}
        if rule.expr.revision is not None:
            labels["revision"] = str(rule.expr.revision)
        annotations = {"summary": rule.expr.describe() + (f" for {duration_text(rule.for_s)}" if rule.for_s else "")}
        if rule.runbook:
            annotations["description"] = rule.runbook
        entry: dict[str, Any] = {"alert": rule.name, "expr": expr}
        if rule.for_s:
            entry["for"] = duration_text(rule.for_s)
        entry["labels"] = labels
        entry["annotations"] = annotations
        out.append(entry)
    header = (
        f"# Prometheus alerting rules exported by plinth from the alert rules of project {project!r}.\n"
        "# Check with: promtool check rules FILE\n"
    )
    for s in skipped:
        header += f"# not exported: {s['rule']}: {_comment(s['reason'])}\n"
    body = yaml.safe_dump(
        {"groups": [{"name": f"plinth-{project}" if project else "plinth", "rules": out}]},
        sort_keys=False,
        allow_unicode=True,
        width=10_000,
    )
    return header + body, skipped


def _comment(text: str) -> str:
    return " ".join(text.split())


# -- the evaluator thread -----------------------------------------------------------------------------
class AlertEvaluator:
    """Evaluates the enabled rules of every project every ``interval_s`` on its own thread
    (``interval_s`` 0: never; :meth:`run_once` still works)."""

    def __init__(self, service: AlertService, *, interval_s: float) -> None:
        self.service = service
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0

    def start(self) -> None:
        if self.interval_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="plinth-alert-evaluator", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
            except Exception as e:
                if transient(e):
                    log.warning("evaluating alert rules deferred to the next round: %s", e)
                else:
                    log.exception("evaluating alert rules failed")

    def run_once(self, *, now: datetime | None = None) -> list[Evaluation]:
        """Evaluate every project's enabled rules once (all at one time ``now``)."""
        self.rounds += 1
        at = now or self.service.clock()
        with system_scope():
            projects = self.service.store.alert_rule_projects()
        out: list[Evaluation] = []
        for project in projects:
            if self._stop.is_set():
                break
            with project_scope(project):
                out.extend(self.service.evaluate_all(now=at))
        return out
