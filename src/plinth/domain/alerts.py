"""Alert rules, their states and the history of their state changes (no I/O).

A **rule** watches one **signal** of one deployment (optionally one revision of it: a number,
or ``stable`` / ``canary``): its value over a sliding window is compared with a threshold.
While the comparison holds the rule is **pending**; once it has held for the rule's ``for``
duration it is **firing** and its actions run (notify a webhook, roll the canary back, start
a pipeline); when it stops holding the rule is **resolved** and back to **inactive**. A value
that cannot be computed (no deployment, no canary, fewer than ``min_samples`` samples in the
window) does not hold.

Every change of state is an :class:`AlertEvent` with the value that caused it and what each
action did.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

RULE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

MIN_WINDOW_S, MAX_WINDOW_S = 10, 30 * 86400
MAX_FOR_S = 7 * 86400
MAX_ACTIONS = 8


class AlertState(str, enum.Enum):
    """The state a rule is in (stored on the rule)."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


class Transition(str, enum.Enum):
    """What an :class:`AlertEvent` records the rule went to. ``resolved`` is firing -> inactive;
    ``inactive`` is pending -> inactive (the condition stopped holding before ``for`` ran out)."""

    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"
    INACTIVE = "inactive"

    @property
    def state(self) -> AlertState:
        return AlertState.INACTIVE if self in (Transition.RESOLVED, Transition.INACTIVE) else AlertState(self.value)


class Severity(str, enum.Enum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class Comparison(str, enum.Enum):
    GT = ">"
    LT = "<"
    GE = ">="
    LE = "<="

    def holds(self, value: float, threshold: float) -> bool:
        if self is Comparison.GT:
            return value > threshold
        if self is Comparison.LT:
            return value < threshold
        if self is Comparison.GE:
            return value >= threshold
        return value <= threshold


#: what a rule's ``revision`` may name besides a number
REVISION_ROLES = ("stable", "canary")


@dataclass(frozen=True)
class AlertExpr:
    """``signal`` of ``deployment`` (``revision``: a number, ``stable``, ``canary``, or None for
    every revision) over the last ``window_s`` seconds, compared with ``threshold``.

    ``min_samples``: the value counts only with at least this many samples in the window (the
    signal says what a sample is: requests, ratings, drift runs); ``params``: the signal's own
    options (e.g. ``score_above`` of ``anomaly_count``)."""

    signal: str
    deployment: str
    comparison: Comparison
    threshold: float
    window_s: int = 300
    revision: int | str | None = None
    min_samples: int = 1
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        where = self.deployment + (f" revision {self.revision}" if self.revision is not None else "")
        return f"{self.signal} of {where} {self.comparison.value} {self.threshold:g} over {duration_text(self.window_s)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "deployment": self.deployment,
            "revision": self.revision,
            "comparison": self.comparison.value,
            "threshold": self.threshold,
            "window_s": self.window_s,
            "min_samples": self.min_samples,
            "params": dict(self.params),
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> AlertExpr:
        return AlertExpr(
            signal=str(d["signal"]),
            deployment=str(d["deployment"]),
            comparison=Comparison(d["comparison"]),
            threshold=float(d["threshold"]),
            window_s=int(d.get("window_s", 300)),
            revision=d.get("revision"),
            min_samples=int(d.get("min_samples", 1)),
            params=dict(d.get("params") or {}),
        )


@dataclass(frozen=True)
class AlertRule:
    """A rule with its current state. ``actions`` are specs by kind (``{"kind": "webhook",
    "url": ...}``), run in order when the rule fires (and, for those that act on it, when it
    resolves)."""

    name: str
    expr: AlertExpr
    for_s: int = 0
    severity: Severity = Severity.WARNING
    runbook: str = ""
    actions: tuple[dict[str, Any], ...] = ()
    enabled: bool = True
    state: AlertState = AlertState.INACTIVE
    state_since: datetime | None = None
    last_value: float | None = None
    last_evaluated_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    project: str | None = None

    def definition(self) -> dict[str, Any]:
        """What a person wrote (as ``POST /api/v1/alerts/rules`` takes it)."""
        return {
            "name": self.name,
            **self.expr.to_dict(),
            "for_s": self.for_s,
            "severity": self.severity.value,
            "runbook": self.runbook,
            "actions": [dict(a) for a in self.actions],
            "enabled": self.enabled,
        }

    def public_dict(self) -> dict[str, Any]:
        return {
            **self.definition(),
            "description": self.expr.describe() + (f" for {duration_text(self.for_s)}" if self.for_s else ""),
            "state": self.state.value,
            "state_since": _iso(self.state_since),
            "last_value": self.last_value,
            "last_evaluated_at": _iso(self.last_evaluated_at),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True)
class AlertEvent:
    """One change of a rule's state: the value that caused it, what the rule said then
    (``details``) and what each action did (``delivered``: ``{"kind", "ok", "message", ...}``)."""

    rule: str
    from_state: AlertState
    to: Transition
    value: float | None
    details: dict[str, Any] = field(default_factory=dict)
    delivered: tuple[dict[str, Any], ...] = ()
    at: datetime | None = None
    id: int | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "from_state": self.from_state.value,
            "to_state": self.to.value,
            "value": self.value,
            "details": self.details,
            "delivered": [dict(d) for d in self.delivered],
            "at": _iso(self.at),
        }


# -- what the monitoring tables of other areas hold, as alerts and reports read them -----------------
@dataclass(frozen=True)
class RequestLogWindow:
    """What the request log holds of a deployment in a window: requests, the p95 of their time
    to first token, and how many scored above an anomaly threshold."""

    requests: int = 0
    ttft_samples: int = 0
    ttft_p95_s: float | None = None
    scored: int = 0
    anomalies: int = 0


@dataclass(frozen=True)
class DriftPoint:
    """One stored drift measurement (a row of ``drift_runs``)."""

    at: datetime
    deployment: str
    revision: int | None
    adapter: str | None
    score: float
    drifted: bool
    n_recent: int
    n_reference: int
    reference: dict[str, Any]
    results: dict[str, Any]


@dataclass(frozen=True)
class BiasPoint:
    """One stored bias report (a row of ``bias_reports``)."""

    id: str
    at: datetime
    target: str
    suite: str
    passed: bool
    results: dict[str, Any]


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def duration_text(seconds: int) -> str:
    """``300`` -> ``5m``, ``90`` -> ``90s`` (also Prometheus' duration syntax)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
