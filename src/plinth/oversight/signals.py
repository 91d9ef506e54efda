"""Signals that alert rules watch: a registry by name, like the runtimes and detectors.

A :class:`Signal` reads one number about a deployment (optionally one revision of it) over a
window from what plinth stores, and may say how Prometheus computes the same number from
plinth's own metrics (:attr:`Signal.promql`), so the rule can be exported as a Prometheus
alerting rule. A new signal is one :func:`register_signal` call; built-in signals use the
same call (see the bottom of this module).

Built-in signals and where their numbers come from:

- ``error_rate``, ``guardrail_block_rate``, ``negative_feedback_rate``, ``latency_p95``,
  ``requests``: the usage records and feedback of the deployment (``window_stats``, the
  rollout rules' own window); ``tokens``: the usage records (``usage_summary``);
- ``ttft_p95``, ``anomaly_count``: the request log (``request_log``: time to first token,
  per-request anomaly scores);
- ``drift_score``, ``drift_detected``: the newest stored drift measurement of the deployment
  in the window (``drift_runs``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from plinth.domain.alerts import AlertExpr, duration_text
from plinth.domain.deployments import Deployment, WindowStats
from plinth.errors import ErrorCode, PlinthError
from plinth.store import MetadataStore


@dataclass(frozen=True)
class Reading:
    """A signal's value over a window (None: it cannot be computed, e.g. no canary) and how
    many samples it rests on."""

    value: float | None
    samples: int = 0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class SignalContext:
    """What a signal reads: the store (in the rule's project scope), the deployment (None when
    it does not exist) and the window ``[since, now)``."""

    store: MetadataStore
    deployment: Deployment | None
    now: datetime
    _stats: dict[tuple[int, ...], dict[int, WindowStats]] = field(default_factory=dict)

    def since(self, expr: AlertExpr) -> datetime:
        return self.now - timedelta(seconds=expr.window_s)

    def revisions(self, expr: AlertExpr) -> list[int] | None:
        """The revision numbers the expression names (every revision: all of them); None when
        it names the canary and there is none, or the deployment does not exist."""
        dep = self.deployment
        if dep is None:
            return None
        if expr.revision is None:
            return [r.number for r in self.store.list_revisions(dep.name)]
        if expr.revision == "stable":
            return [dep.stable_revision]
        if expr.revision == "canary":
            return [dep.canary_revision] if dep.canary_revision is not None else None
        return [int(expr.revision)]

    def window_stats(self, expr: AlertExpr) -> list[WindowStats] | None:
        revisions = self.revisions(expr)
        if revisions is None or self.deployment is None:
            return None
        key = (expr.window_s, *revisions)
        if key not in self._stats:
            self._stats[key] = self.store.window_stats(self.deployment.name, revisions, self.since(expr))
        return list(self._stats[key].values())


@dataclass(frozen=True)
class Signal:
    """One signal. ``read`` computes it; ``promql`` (optional) gives the PromQL expression over
    plinth's metrics that computes the same number, or None when a rule's revision cannot be
    expressed there, with ``metrics`` the metric names it needs (a rule is exported only when
    plinth declares them all); ``prometheus_note`` says why there is no equivalent, or where
    the equivalent differs."""

    name: str
    description: str
    unit: str
    source: str
    read: Callable[[SignalContext, AlertExpr], Reading]
    promql: Callable[[AlertExpr], str | None] | None = None
    metrics: tuple[str, ...] = ()
    prometheus_note: str = ""
    #: the options a rule may give in ``params`` (name -> what it means); required ones too
    params: dict[str, str] = field(default_factory=dict)
    required_params: tuple[str, ...] = ()
    #: whether ``min_samples`` applies (counts such as ``requests`` are their own samples)
    sampled: bool = True

    def public_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "unit": self.unit,
            "source": self.source,
            "prometheus": self.promql is not None,
            "prometheus_metrics": list(self.metrics),
            "prometheus_note": self.prometheus_note,
            "params": dict(self.params),
            "required_params": list(self.required_params),
        }


_SIGNALS: dict[str, Signal] = {}
_LOCK = threading.Lock()


def register_signal(signal: Signal, *, replace: bool = False) -> None:
    """Add a signal to the registry (``replace``: over one of the same name)."""
    with _LOCK:
        if signal.name in _SIGNALS and not replace:
            raise ValueError(f"alert signal {signal.name!r} is already registered")
        _SIGNALS[signal.name] = signal


def unregister_signal(name: str) -> None:
    with _LOCK:
        _SIGNALS.pop(name, None)


def signals() -> dict[str, Signal]:
    with _LOCK:
        return dict(sorted(_SIGNALS.items()))


def get_signal(name: str, *, param: str = "signal") -> Signal:
    found = signals().get(name)
    if found is None:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"unknown alert signal {name!r}; signals: {', '.join(signals())}", param=param)
    return found


# -- PromQL helpers ------------------------------------------------------------------------------------
def selector(expr: AlertExpr, *, deployment_label: str = "deployment", revision: bool = True, role: bool = True) -> str | None:
    """The label matchers of the rule's deployment and revision (None when the metric cannot
    tell the revision the rule names: ``revision`` / ``role`` say which labels it has)."""
    parts = [f'{deployment_label}="{_label_value(expr.deployment)}"']
    if isinstance(expr.revision, int) or (isinstance(expr.revision, str) and expr.revision.isdigit()):
        if not revision:
            return None
        parts.append(f'revision="{int(expr.revision)}"')
    elif expr.revision is not None:
        if not role:
            return None
        parts.append(f'role="{_label_value(str(expr.revision))}"')
    return ",".join(parts)


def _label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _range(expr: AlertExpr) -> str:
    return f"[{duration_text(expr.window_s)}]"


def _with_min_samples(value: str, counter: str, expr: AlertExpr) -> str:
    """``value`` compared with the threshold, and (with ``min_samples`` above 1) only where
    ``counter`` grew by at least ``min_samples`` in the window."""
    compared = f"({value}) {expr.comparison.value} {_number(expr.threshold)}"
    if expr.min_samples <= 1:
        return compared
    return f"{compared} and on() (sum(increase({counter}{_range(expr)})) >= {expr.min_samples})"


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


# -- the built-in signals -------------------------------------------------------------------------------
_COUNTED = 'outcome=~"ok|error"'  # the records window_stats counts: the revision's own successes and failures


def _rate(
    numerator: Callable[[WindowStats], int], denominator: Callable[[WindowStats], int]
) -> Callable[[SignalContext, AlertExpr], Reading]:
    def read(ctx: SignalContext, expr: AlertExpr) -> Reading:
        stats = ctx.window_stats(expr)
        if stats is None:
            return Reading(None, 0, {"reason": _missing(ctx, expr)})
        num, den = sum(numerator(s) for s in stats), sum(denominator(s) for s in stats)
        return Reading(num / den if den else None, den, {"count": num, "of": den})

    return read


def _missing(ctx: SignalContext, expr: AlertExpr) -> str:
    if ctx.deployment is None:
        return f"deployment {expr.deployment!r} does not exist"
    return f"deployment {expr.deployment!r} has no {expr.revision} revision now"


def _read_latency(ctx: SignalContext, expr: AlertExpr) -> Reading:
    stats = ctx.window_stats(expr)
    if stats is None:
        return Reading(None, 0, {"reason": _missing(ctx, expr)})
    values = [s.latency_p95_s for s in stats if s.latency_p95_s is not None]
    ok = sum(s.requests - s.errors for s in stats)
    # several revisions: the highest of their p95s, an upper bound of the deployment's
    return Reading(max(values) if values else None, ok, {"revisions": {s.revision: s.latency_p95_s for s in stats}})


def _read_requests(ctx: SignalContext, expr: AlertExpr) -> Reading:
    stats = ctx.window_stats(expr)
    if stats is None:
        return Reading(None, 0, {"reason": _missing(ctx, expr)})
    n = sum(s.requests for s in stats)
    return Reading(float(n), n)


def _read_tokens(ctx: SignalContext, expr: AlertExpr) -> Reading:
    revisions = ctx.revisions(expr)
    if revisions is None:
        return Reading(None, 0, {"reason": _missing(ctx, expr)})
    total = requests = 0
    for rev in revisions if expr.revision is not None else [None]:
        rows = ctx.store.usage_summary(
            group_by=(), since=ctx.since(expr), until=ctx.now, filters={"deployment": expr.deployment, "revision": rev}
        )
        for r in rows:
            total += int(r["total_tokens"])
            requests += int(r["requests"])
    return Reading(float(total), requests, {"requests": requests})


def _read_ttft(ctx: SignalContext, expr: AlertExpr) -> Reading:
    revisions = ctx.revisions(expr)
    if revisions is None:
        return Reading(None, 0, {"reason": _missing(ctx, expr)})
    w = ctx.store.request_log_window(expr.deployment, revisions if expr.revision is not None else None, ctx.since(expr), ctx.now)
    return Reading(w.ttft_p95_s, w.ttft_samples, {"logged": w.requests})


def _read_anomalies(ctx: SignalContext, expr: AlertExpr) -> Reading:
    revisions = ctx.revisions(expr)
    if revisions is None:
        return Reading(None, 0, {"reason": _missing(ctx, expr)})
    above = float(expr.params["score_above"])
    w = ctx.store.request_log_window(
        expr.deployment, revisions if expr.revision is not None else None, ctx.since(expr), ctx.now, anomaly_above=above
    )
    return Reading(float(w.anomalies), w.scored, {"scored": w.scored, "logged": w.requests, "score_above": above})


def _drift(pick: Callable[[Any], float]) -> Callable[[SignalContext, AlertExpr], Reading]:
    def read(ctx: SignalContext, expr: AlertExpr) -> Reading:
        if ctx.deployment is None:
            return Reading(None, 0, {"reason": _missing(ctx, expr)})
        points = ctx.store.drift_points(expr.deployment, since=ctx.since(expr), until=ctx.now + timedelta(microseconds=1))
        revisions = ctx.revisions(expr) if expr.revision is not None else None
        if revisions is not None:
            points = [p for p in points if p.revision in revisions]
        if not points:
            return Reading(None, 0, {"reason": f"no drift measurement of {expr.deployment!r} in the window"})
        newest = points[-1]
        return Reading(pick(newest), len(points), {"at": newest.at.isoformat(), "score": newest.score, "drifted": newest.drifted})

    return read


def _promql_error_rate(expr: AlertExpr) -> str | None:
    sel = selector(expr)
    if sel is None:
        return None
    m = "plinth_deployment_requests_total"
    ratio = f'sum(rate({m}{{{sel},outcome="error"}}{_range(expr)})) / sum(rate({m}{{{sel},{_COUNTED}}}{_range(expr)}))'
    return _with_min_samples(ratio, f"{m}{{{sel},{_COUNTED}}}", expr)


def _promql_latency(expr: AlertExpr) -> str | None:
    sel = selector(expr, role=False)
    if sel is None:
        return None
    m = "plinth_deployment_request_duration_seconds"
    value = f"histogram_quantile(0.95, sum by (le) (rate({m}_bucket{{{sel}}}{_range(expr)})))"
    return _with_min_samples(value, f"{m}_count{{{sel}}}", expr)


def _promql_ttft(expr: AlertExpr) -> str | None:
    if expr.revision is not None:
        return None
    m = "plinth_time_to_first_token_seconds"
    sel = f'model="{_label_value(expr.deployment)}"'
    value = f"histogram_quantile(0.95, sum by (le) (rate({m}_bucket{{{sel}}}{_range(expr)})))"
    return _with_min_samples(value, f"{m}_count{{{sel}}}", expr)


def _promql_requests(expr: AlertExpr) -> str | None:
    sel = selector(expr)
    if sel is None:
        return None
    value = f"sum(increase(plinth_deployment_requests_total{{{sel},{_COUNTED}}}{_range(expr)})) or on() vector(0)"
    return f"({value}) {expr.comparison.value} {_number(expr.threshold)}"


def _promql_tokens(expr: AlertExpr) -> str | None:
    sel = selector(expr, role=False)
    if sel is None:
        return None
    value = f"sum(increase(plinth_deployment_tokens_total{{{sel}}}{_range(expr)})) or on() vector(0)"
    return f"({value}) {expr.comparison.value} {_number(expr.threshold)}"


def _promql_drift(expr: AlertExpr) -> str | None:
    if expr.revision is not None:
        return None
    return f'(max(plinth_drift_score{{deployment="{_label_value(expr.deployment)}"}})) {expr.comparison.value} {_number(expr.threshold)}'


_NO_ROLE = " (a rule on the stable or canary role is not exported: this metric has no role label)"

BUILTIN_SIGNALS: tuple[Signal, ...] = (
    Signal(
        "error_rate",
        "share of the deployment's requests that failed on the server's side (5xx, or a target that is gone)",
        "ratio",
        "usage records",
        _rate(lambda s: s.errors, lambda s: s.requests),
        _promql_error_rate,
        ("plinth_deployment_requests_total",),
    ),
    Signal(
        "latency_p95",
        "95th percentile of whole-request latency of successful requests (several revisions: the highest of theirs)",
        "seconds",
        "usage records",
        _read_latency,
        _promql_latency,
        ("plinth_deployment_request_duration_seconds",),
        prometheus_note="histogram_quantile over the latency histogram's buckets approximates plinth's exact p95" + _NO_ROLE,
    ),
    Signal(
        "guardrail_block_rate",
        "share of requests whose answer a guardrail policy blocked (finish_reason content_filter)",
        "ratio",
        "usage records",
        _rate(lambda s: s.blocked, lambda s: s.requests),
        prometheus_note="blocked answers are recorded per request in the store; plinth_guardrail_hits_total counts findings "
        "by served model, not blocked requests by deployment",
    ),
    Signal(
        "negative_feedback_rate",
        "share of ratings of the deployment's answers that were negative",
        "ratio",
        "feedback",
        _rate(lambda s: s.negative, lambda s: s.ratings),
        prometheus_note="feedback is stored, not counted in a metric",
    ),
    Signal(
        "requests",
        "requests the deployment answered or failed in the window",
        "requests",
        "usage records",
        _read_requests,
        _promql_requests,
        ("plinth_deployment_requests_total",),
        sampled=False,
    ),
    Signal(
        "tokens",
        "prompt and completion tokens of the deployment's requests in the window",
        "tokens",
        "usage records",
        _read_tokens,
        _promql_tokens,
        ("plinth_deployment_tokens_total",),
        prometheus_note="a rule on the stable or canary role is not exported: the token counter has no role label",
        sampled=False,
    ),
    Signal(
        "ttft_p95",
        "95th percentile of the time to the first token of the deployment's logged requests",
        "seconds",
        "request log",
        _read_ttft,
        _promql_ttft,
        ("plinth_time_to_first_token_seconds",),
        prometheus_note="the time-to-first-token histogram is labelled by the model id requested, not by revision",
    ),
    Signal(
        "anomaly_count",
        "logged requests whose anomaly score is above params.score_above",
        "requests",
        "request log",
        _read_anomalies,
        prometheus_note="anomaly scores are stored per request in the request log, not counted in a metric",
        params={"score_above": "the anomaly score above which a request counts"},
        required_params=("score_above",),
    ),
    Signal(
        "drift_score",
        "headline statistic of the newest drift measurement in the window (0 = like the reference)",
        "score",
        "drift runs",
        _drift(lambda p: p.score),
        _promql_drift,
        ("plinth_drift_score",),
        prometheus_note="exported only where plinth declares the plinth_drift_score gauge; per revision it is not",
    ),
    Signal(
        "drift_detected",
        "1 when the newest drift measurement in the window found drift, else 0",
        "boolean",
        "drift runs",
        _drift(lambda p: 1.0 if p.drifted else 0.0),
        prometheus_note="whether a run found drift is stored with the run, not exported as a metric",
    ),
)

for _s in BUILTIN_SIGNALS:
    register_signal(_s)


def check_value(value: Any, what: str, param: str) -> float:
    """A finite number, or 400 naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{what} must be a finite number; got {value!r}", param=param)
    return float(value)
