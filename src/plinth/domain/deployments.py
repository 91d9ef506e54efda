"""Deployments, revisions, rollout rules, evaluation gates, usage and feedback (no I/O).

A **deployment** is a stable name on ``/v1`` (``model="acme-assistant"``). It serves one
**stable** revision and, during a rollout, one **canary** revision that gets
``canary_percent`` of the traffic. A **revision** is immutable: one or more **targets**, each a
model id (a catalog model, ``base:adapter`` or a registry version ``name@N``) with a traffic
weight inside the revision, the attachments it brings (knowledge base, guardrail policy,
system prompt) and generation defaults. The model id is pinned when the revision is made
(``acme-faq@production`` is stored as the version the alias named then), so a revision
always answers with the same model version.

**Rollout rules** compare the canary with the stable revision over a sliding window (error
rate, latency p95, guardrail block rate, negative feedback rate); a breach rolls the canary
back. An **evaluation gate** is what a candidate's evaluation reports must show before it
may receive traffic.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from plinth.domain.serving import Attachments

DEPLOYMENT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

#: generation fields a target may give defaults for (used when a request leaves them unset)
DEFAULT_FIELDS: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (1e-9, 1.0),
    "max_tokens": (1, 1_000_000),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}


class Role(str, enum.Enum):
    STABLE = "stable"
    CANARY = "canary"


@dataclass(frozen=True)
class Target:
    """One model behind a revision. ``model`` is the id as given; ``pinned`` the concrete id
    served (a registry version ``name@N`` or a catalog id); ``version`` what response headers
    and usage name as the model version (``name@N`` for a registry version, else the catalog id)."""

    model: str
    weight: int = 100
    pinned: str = ""
    version: str = ""
    knowledge_base: str | None = None
    guardrail_policy: str | None = None
    system_prompt: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    grounding: str | None = None  # "strict" | "off" (ADR 0115)

    @property
    def served(self) -> str:
        return self.pinned or self.model

    def attachments(self) -> Attachments:
        return Attachments(
            knowledge_base=self.knowledge_base,
            guardrail_policy=self.guardrail_policy,
            system_prompt=self.system_prompt,
            grounding=self.grounding,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "weight": self.weight, "pinned": self.served, "version": self.version or self.served}
        for key in ("knowledge_base", "guardrail_policy", "system_prompt", "grounding"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.defaults:
            out["defaults"] = dict(self.defaults)
        return out

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Target:
        return Target(
            model=str(d["model"]),
            weight=int(d.get("weight", 100)),
            pinned=str(d.get("pinned") or ""),
            version=str(d.get("version") or ""),
            knowledge_base=d.get("knowledge_base"),
            guardrail_policy=d.get("guardrail_policy"),
            system_prompt=d.get("system_prompt"),
            defaults=dict(d.get("defaults") or {}),
            grounding=d.get("grounding"),
        )


@dataclass(frozen=True)
class Revision:
    deployment: str
    number: int
    targets: tuple[Target, ...]
    note: str = ""
    created_by: str = ""
    created_at: datetime | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "number": self.number,
            "targets": [t.to_dict() for t in self.targets],
            "note": self.note,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


class RuleMetric(str, enum.Enum):
    ERROR_RATE = "error_rate"  # server-side failures (5xx) / requests
    LATENCY_P95 = "latency_p95"  # seconds, whole request
    GUARDRAIL_BLOCK_RATE = "guardrail_block_rate"  # requests with a content_filter finish / requests
    NEGATIVE_FEEDBACK_RATE = "negative_feedback_rate"  # negative ratings / ratings


class Comparison(str, enum.Enum):
    DELTA = "delta"  # breach when canary - stable > threshold
    RATIO = "ratio"  # breach when canary > stable * threshold
    ABSOLUTE = "absolute"  # breach when canary > threshold


@dataclass(frozen=True)
class RolloutRule:
    """``metric`` of the canary against the stable revision over the window; judged once the
    canary has ``min_samples`` requests (ratings for the feedback rule) in the window."""

    metric: RuleMetric
    comparison: Comparison
    threshold: float
    min_samples: int = 10

    def describe(self) -> str:
        m = self.metric.value
        if self.comparison is Comparison.DELTA:
            return f"canary {m} <= stable + {self.threshold:g}"
        if self.comparison is Comparison.RATIO:
            return f"canary {m} <= stable x {self.threshold:g}"
        return f"canary {m} <= {self.threshold:g}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric.value,
            "comparison": self.comparison.value,
            "threshold": self.threshold,
            "min_samples": self.min_samples,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> RolloutRule:
        return RolloutRule(
            metric=RuleMetric(d["metric"]),
            comparison=Comparison(d.get("comparison", "delta")),
            threshold=float(d["threshold"]),
            min_samples=int(d.get("min_samples", 10)),
        )


#: rules a new deployment gets unless it is given its own
DEFAULT_RULES: tuple[RolloutRule, ...] = (
    RolloutRule(RuleMetric.ERROR_RATE, Comparison.DELTA, 0.05, 10),
    RolloutRule(RuleMetric.LATENCY_P95, Comparison.RATIO, 2.0, 20),
    RolloutRule(RuleMetric.GUARDRAIL_BLOCK_RATE, Comparison.DELTA, 0.10, 20),
    RolloutRule(RuleMetric.NEGATIVE_FEEDBACK_RATE, Comparison.DELTA, 0.20, 10),
)


@dataclass(frozen=True)
class GateRule:
    """An evaluation report of the candidate on ``dataset`` (``name`` or ``name@version``; any
    when None) and ``split`` (any when None) must show ``metric >= min`` and/or ``metric <= max``.

    Another ``kind`` (``{"kind": "bias", "suite": ...}``) is judged by the gate kind registered
    under that name (:mod:`plinth.deployments.gates`); ``options`` are its fields."""

    metric: str = ""
    min: float | None = None
    max: float | None = None
    dataset: str | None = None
    split: str | None = None
    kind: str = "eval"
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind != "eval":
            return f"{self.kind}: " + ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        parts = []
        if self.min is not None:
            parts.append(f"{self.metric} >= {self.min:g}")
        if self.max is not None:
            parts.append(f"{self.metric} <= {self.max:g}")
        where = f" on {self.dataset}" if self.dataset else ""
        if self.split:
            where += f" ({self.split})"
        return " and ".join(parts) + where

    def passes(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def to_dict(self) -> dict[str, Any]:
        if self.kind != "eval":
            return {"kind": self.kind, **self.options}
        return {"metric": self.metric, "min": self.min, "max": self.max, "dataset": self.dataset, "split": self.split}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> GateRule:
        kind = str(d.get("kind") or "eval")
        if kind != "eval":
            return GateRule(kind=kind, options={k: v for k, v in d.items() if k != "kind"})
        return GateRule(
            metric=str(d["metric"]),
            min=None if d.get("min") is None else float(d["min"]),
            max=None if d.get("max") is None else float(d["max"]),
            dataset=d.get("dataset"),
            split=d.get("split"),
        )


@dataclass(frozen=True)
class Deployment:
    """A named endpoint. ``generation`` grows with every change, so two processes that act on
    the same deployment at once (a person promoting while the watcher rolls back) cannot both
    win: a change names the generation it was decided on."""

    name: str
    stable_revision: int
    description: str = ""
    canary_revision: int | None = None
    canary_percent: float = 0.0
    canary_started_at: datetime | None = None
    rules: tuple[RolloutRule, ...] = DEFAULT_RULES
    gate: tuple[GateRule, ...] = ()
    window_s: int = 300
    auto_rollback: bool = True
    generation: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def role_of(self, revision: int) -> Role | None:
        if revision == self.canary_revision:
            return Role.CANARY
        if revision == self.stable_revision:
            return Role.STABLE
        return None

    def traffic(self) -> dict[int, float]:
        """Percent of requests per revision."""
        if self.canary_revision is None:
            return {self.stable_revision: 100.0}
        return {self.stable_revision: 100.0 - self.canary_percent, self.canary_revision: self.canary_percent}

    def with_changes(self, **changes: Any) -> Deployment:
        return replace(self, **changes)

    def public_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "stable_revision": self.stable_revision,
            "canary_revision": self.canary_revision,
            "canary_percent": self.canary_percent,
            "canary_started_at": self.canary_started_at.isoformat() if self.canary_started_at else None,
            "traffic": {str(k): v for k, v in self.traffic().items()},
            "rules": [r.to_dict() for r in self.rules],
            "gate": [g.to_dict() for g in self.gate],
            "window_s": self.window_s,
            "auto_rollback": self.auto_rollback,
            "generation": self.generation,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


class EventKind(str, enum.Enum):
    CREATED = "created"
    REVISION = "revision"  # a new revision replaced the stable one directly
    CANARY = "canary"  # a candidate started receiving canary traffic
    TRAFFIC = "traffic"  # the canary's share changed
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    AUTO_ROLLBACK = "auto_rollback"
    GATE_REFUSED = "gate_refused"
    RULES = "rules"  # rules, window, auto-rollback or gate changed


@dataclass(frozen=True)
class DeploymentEvent:
    deployment: str
    kind: EventKind
    actor: str
    revision: int | None = None
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None
    id: int | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "deployment": self.deployment,
            "kind": self.kind.value,
            "revision": self.revision,
            "actor": self.actor,
            "reason": self.reason,
            "details": self.details,
            "at": self.at.isoformat() if self.at else None,
        }


# -- what requests did --------------------------------------------------------------------------
class Outcome(str, enum.Enum):
    OK = "ok"
    ERROR = "error"  # the server failed (5xx): counts against a revision
    REFUSED = "refused"  # the request was refused (4xx: limits, bad input): not the revision's fault
    CANCELLED = "cancelled"  # the client went away


@dataclass(frozen=True)
class UsageRecord:
    """One ``/v1`` chat or text completion request, as accounted."""

    response_id: str
    kind: str  # chat | text
    model: str  # the model id requested (a deployment name, a model, ...)
    served_model: str  # the catalog id that answered
    outcome: Outcome
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    key_id: str | None = None
    deployment: str | None = None
    revision: int | None = None
    role: Role | None = None
    model_version: str | None = None
    error_code: str | None = None
    blocked: bool = False
    at: datetime | None = None
    #: the project of the request (None: the scope of the store call that writes it)
    project: str | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "response_id": self.response_id,
            "kind": self.kind,
            "model": self.model,
            "served_model": self.served_model,
            "outcome": self.outcome.value,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_s": self.latency_s,
            "key_id": self.key_id,
            "deployment": self.deployment,
            "revision": self.revision,
            "role": self.role.value if self.role else None,
            "model_version": self.model_version,
            "error_code": self.error_code,
            "blocked": self.blocked,
            "at": self.at.isoformat() if self.at else None,
        }


#: what usage can be grouped by
USAGE_GROUPS = ("key", "deployment", "revision", "model", "model_version", "outcome")


@dataclass(frozen=True)
class Feedback:
    """A rating of one response, stored against the deployment revision and model version
    that answered it. ``rating`` is -1 (negative), 0 (neutral) or 1 (positive)."""

    response_id: str
    rating: int
    comment: str = ""
    key_id: str | None = None
    deployment: str | None = None
    revision: int | None = None
    model_version: str | None = None
    served_model: str | None = None
    at: datetime | None = None
    id: int | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "response_id": self.response_id,
            "rating": self.rating,
            "comment": self.comment,
            "deployment": self.deployment,
            "revision": self.revision,
            "model_version": self.model_version,
            "served_model": self.served_model,
            "at": self.at.isoformat() if self.at else None,
        }


@dataclass(frozen=True)
class WindowStats:
    """What one revision did in the rule window."""

    revision: int
    requests: int = 0
    errors: int = 0
    blocked: int = 0
    latency_p95_s: float | None = None
    ratings: int = 0
    negative: int = 0

    def value(self, metric: RuleMetric) -> float | None:
        if metric is RuleMetric.ERROR_RATE:
            return self.errors / self.requests if self.requests else None
        if metric is RuleMetric.GUARDRAIL_BLOCK_RATE:
            return self.blocked / self.requests if self.requests else None
        if metric is RuleMetric.LATENCY_P95:
            return self.latency_p95_s
        return self.negative / self.ratings if self.ratings else None

    def samples(self, metric: RuleMetric) -> int:
        return self.ratings if metric is RuleMetric.NEGATIVE_FEEDBACK_RATE else self.requests

    def public_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "requests": self.requests,
            "errors": self.errors,
            "blocked": self.blocked,
            "latency_p95_s": self.latency_p95_s,
            "ratings": self.ratings,
            "negative": self.negative,
            **{m.value: self.value(m) for m in RuleMetric},
        }


@dataclass(frozen=True)
class RuleCheck:
    """One rule judged on one window: ``breached`` only when both sides had enough samples."""

    rule: RolloutRule
    canary: float | None
    stable: float | None
    samples: int
    breached: bool
    judged: bool

    def message(self) -> str:
        def fmt(v: float | None) -> str:
            return "-" if v is None else f"{v:.3g}"

        return f"{self.rule.metric.value}: canary {fmt(self.canary)} vs stable {fmt(self.stable)} breaks '{self.rule.describe()}'"

    def public_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.to_dict(),
            "description": self.rule.describe(),
            "canary": self.canary,
            "stable": self.stable,
            "samples": self.samples,
            "judged": self.judged,
            "breached": self.breached,
        }


def judge(rule: RolloutRule, canary: WindowStats, stable: WindowStats) -> RuleCheck:
    """Judge ``rule`` on the canary's and the stable revision's window."""
    c, s = canary.value(rule.metric), stable.value(rule.metric)
    n = canary.samples(rule.metric)
    judged = n >= rule.min_samples and c is not None
    breached = False
    if judged and c is not None:
        if rule.comparison is Comparison.ABSOLUTE:
            breached = c > rule.threshold
        elif rule.comparison is Comparison.DELTA:
            breached = c - (s or 0.0) > rule.threshold
        elif s is not None and s > 0:
            breached = c > s * rule.threshold
        else:  # a ratio against no baseline cannot be judged
            judged = False
    return RuleCheck(rule=rule, canary=c, stable=s, samples=n, breached=breached, judged=judged)


def p95(values: list[float]) -> float | None:
    """The 95th percentile (nearest rank)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-95 * len(ordered) // 100))  # ceil(0.95 n)
    return ordered[rank - 1]
