"""Deployments: create, canary, traffic, promote, roll back (by hand or automatically),
replace, rules and gates, status and history.

Every change is one compare-and-set on the deployment row (its ``generation``), written
together with its history event, so two actors (a person and the rollout watcher, or two
server processes on one Postgres) never both win; each is also written to the audit log
with the state before and after.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from plinth.auth.audit import AuditLog
from plinth.deployments.gates import GateKind
from plinth.deployments.routing import DeploymentRouter
from plinth.domain.deployments import (
    DEFAULT_FIELDS,
    DEFAULT_RULES,
    DEPLOYMENT_NAME_RE,
    Comparison,
    Deployment,
    DeploymentEvent,
    EventKind,
    GateRule,
    Revision,
    RolloutRule,
    RuleCheck,
    RuleMetric,
    Target,
    WindowStats,
    judge,
)
from plinth.domain.numbers import VERSION_MAX, whole_number
from plinth.domain.serving import Attachments
from plinth.errors import ErrorCode, PlinthError
from plinth.monitoring.metrics import Metrics
from plinth.store import MetadataStore

log = logging.getLogger("plinth.deployments")

MAX_TARGETS = 8
MIN_WINDOW_S, MAX_WINDOW_S = 10, 7 * 86400
AUTO_ACTOR = "system:rollout-watcher"
_NO_CANARY = {"canary_revision": None, "canary_percent": 0.0, "canary_started_at": None}


def check_name(name: str) -> str:
    if not DEPLOYMENT_NAME_RE.match(name or ""):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid deployment name {name!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
            param="name",
        )
    return name


def parse_rules(items: list[dict[str, Any]]) -> tuple[RolloutRule, ...]:
    rules = []
    for i, d in enumerate(items):
        if not isinstance(d, dict) or "metric" not in d or "threshold" not in d:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"rule {i} needs 'metric' and 'threshold'", param=f"rules.{i}")
        try:
            rule = RolloutRule.from_dict(d)
        except (ValueError, TypeError) as e:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"rule {i} is invalid ({e}); metrics: {', '.join(m.value for m in RuleMetric)}; "
                f"comparisons: {', '.join(c.value for c in Comparison)}",
                param=f"rules.{i}",
            ) from None
        if rule.threshold < 0 or rule.threshold != rule.threshold:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"rule {i}: threshold must be >= 0", param=f"rules.{i}.threshold")
        if not 1 <= rule.min_samples <= 1_000_000:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"rule {i}: min_samples must be 1 to 1000000", param=f"rules.{i}.min_samples")
        rules.append(rule)
    return tuple(rules)


def parse_gate(items: list[dict[str, Any]], kinds: dict[str, GateKind] | None = None) -> tuple[GateRule, ...]:
    """Gate rules from their dicts: evaluation rules (``metric``), or ``{"kind": K, ...}``
    checked by the gate kind registered under K (``kinds``)."""
    gate = []
    for i, d in enumerate(items):
        if isinstance(d, dict) and d.get("kind", "eval") != "eval":
            known = kinds or {}
            gk = known.get(str(d["kind"]))
            if gk is None:
                raise PlinthError(
                    ErrorCode.INVALID_REQUEST,
                    f"gate rule {i}: unknown kind {d['kind']!r}; kinds: {', '.join(['eval', *sorted(known)])}",
                    param=f"gate.{i}.kind",
                )
            options = gk.parse({k: v for k, v in d.items() if k != "kind"}, f"gate.{i}")
            gate.append(GateRule(kind=gk.kind, options=options))
            continue
        if not isinstance(d, dict) or not d.get("metric"):
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"gate rule {i} needs a 'metric'", param=f"gate.{i}")
        try:
            g = GateRule.from_dict(d)
        except (ValueError, TypeError) as e:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"gate rule {i} is invalid: {e}", param=f"gate.{i}") from None
        if g.min is None and g.max is None:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"gate rule {i} needs 'min' or 'max'", param=f"gate.{i}")
        gate.append(g)
    return tuple(gate)


class DeploymentService:
    def __init__(
        self,
        store: MetadataStore,
        metrics: Metrics,
        audit: AuditLog,
        *,
        registry: Any,
        catalog: Any,
        check_attachments: Callable[[Attachments], None],
        router: DeploymentRouter,
        default_window_s: int = 300,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.audit = audit
        self.registry = registry
        self.catalog = catalog
        self.check_attachments = check_attachments
        self.router = router
        self.default_window_s = default_window_s
        #: gate kinds beyond evaluation reports, by name (registered by the composition root)
        self.gate_kinds: dict[str, GateKind] = {}

    # -- reading --------------------------------------------------------------------------------
    def list(self) -> builtins.list[Deployment]:
        return self.store.list_deployments()

    def get(self, name: str) -> Deployment:
        return self.store.get_deployment(name)

    def revisions(self, name: str) -> builtins.list[Revision]:
        self.store.get_deployment(name)
        return self.store.list_revisions(name)

    def revision(self, name: str, number: int) -> Revision:
        return self.store.get_revision(name, number)

    def history(self, name: str, limit: int = 100) -> builtins.list[DeploymentEvent]:
        self.store.get_deployment(name)
        return self.store.list_deployment_events(name, limit=limit)

    def view(self, dep: Deployment) -> dict[str, Any]:
        """The deployment with its live revisions."""
        out = dep.public_dict()
        out["stable"] = self.store.get_revision(dep.name, dep.stable_revision).public_dict()
        out["canary"] = self.store.get_revision(dep.name, dep.canary_revision).public_dict() if dep.canary_revision else None
        return out

    def window_since(self, dep: Deployment, now: datetime | None = None) -> datetime:
        now = now or datetime.now(UTC)
        since = now - timedelta(seconds=dep.window_s)
        if dep.canary_started_at is not None and dep.canary_started_at > since:
            since = dep.canary_started_at
        return since

    def rule_checks(self, dep: Deployment) -> tuple[dict[int, WindowStats], builtins.list[RuleCheck]]:
        """The window of the live revisions, and each rule judged on it (only with a canary)."""
        revisions = [dep.stable_revision] + ([dep.canary_revision] if dep.canary_revision else [])
        stats = self.store.window_stats(dep.name, revisions, self.window_since(dep))
        if dep.canary_revision is None:
            return stats, []
        return stats, [judge(r, stats[dep.canary_revision], stats[dep.stable_revision]) for r in dep.rules]

    def status(self, name: str) -> dict[str, Any]:
        dep = self.get(name)
        stats, checks = self.rule_checks(dep)
        out = self.view(dep)
        out["window"] = {
            "since": self.window_since(dep).isoformat(),
            "window_s": dep.window_s,
            "revisions": {str(k): v.public_dict() for k, v in stats.items()},
        }
        out["checks"] = [c.public_dict() for c in checks]
        return out

    # -- targets and gates ----------------------------------------------------------------------
    def targets(self, specs: builtins.list[dict[str, Any]]) -> tuple[Target, ...]:
        """Validate target specs and pin each model id to what serves it now."""
        if not specs:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "a revision needs at least one target (a model)", param="targets")
        if len(specs) > MAX_TARGETS:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"a revision may have at most {MAX_TARGETS} targets", param="targets")
        out = []
        for i, spec in enumerate(specs):
            param = f"targets.{i}"
            model = str(spec.get("model") or "")
            if not model:
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"target {i} needs a 'model'", param=f"{param}.model")
            weight = spec.get("weight", 100)
            if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 1_000_000:
                raise PlinthError(
                    ErrorCode.INVALID_REQUEST, f"target {i}: weight must be a whole number from 1 to 1000000", param=f"{param}.weight"
                )
            pinned, version = self._pin(model, param)
            defaults = self._defaults(spec.get("defaults") or {}, f"{param}.defaults")
            target = Target(
                model=model,
                weight=weight,
                pinned=pinned,
                version=version,
                knowledge_base=spec.get("knowledge_base") or None,
                guardrail_policy=spec.get("guardrail_policy") or None,
                system_prompt=spec.get("system_prompt") or None,
                defaults=defaults,
                grounding=spec.get("grounding") or None,
            )
            if target.system_prompt is not None and len(target.system_prompt) > 32_000:
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"target {i}: system_prompt is over 32000 characters", param=param)
            self.check_attachments(target.attachments())
            out.append(target)
        return tuple(out)

    def _pin(self, model: str, param: str) -> tuple[str, str]:
        """(id to serve, model version to report) for a model id as given."""
        if self.store.find_deployment(model) is not None:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"{model!r} is a deployment; a target must be a model id", param=f"{param}.model")
        mv = self.registry.resolve_version(model) if self.registry is not None else None
        if mv is not None:
            return mv.ref, mv.ref  # acme-faq@production is pinned to the version it names now
        try:
            self.catalog.check_model_id(model)
        except PlinthError as e:
            raise PlinthError(e.code, e.message, param=f"{param}.model") from None
        return model, model

    def _defaults(self, given: dict[str, Any], param: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if not isinstance(given, dict):
            raise PlinthError(ErrorCode.INVALID_REQUEST, "defaults must be an object", param=param)
        for key, value in given.items():
            if key not in DEFAULT_FIELDS:
                raise PlinthError(
                    ErrorCode.INVALID_REQUEST,
                    f"unknown generation default {key!r}; use {', '.join(DEFAULT_FIELDS)}",
                    param=f"{param}.{key}",
                )
            lo, hi = DEFAULT_FIELDS[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"{key} must be a number from {lo:g} to {hi:g}", param=f"{param}.{key}")
            if key == "max_tokens":
                if int(value) != value:
                    raise PlinthError(ErrorCode.INVALID_REQUEST, "max_tokens must be a whole number", param=f"{param}.{key}")
                value = int(value)
            out[key] = value
        return out

    def gate_failures(self, gate: tuple[GateRule, ...], targets: tuple[Target, ...]) -> builtins.list[str]:
        """Why ``targets`` do not pass ``gate`` (empty: they pass)."""
        failures = []
        for t in targets:
            reports = self._reports(t) if any(g.kind == "eval" for g in gate) else []
            for g in gate:
                if g.kind != "eval":
                    gk = self.gate_kinds.get(g.kind)
                    failures += gk.failures(g, t) if gk is not None else [f"gate kind {g.kind!r} is not available on this server"]
                    continue
                matching = [
                    r
                    for r in reports
                    if _dataset_matches(g.dataset, r.dataset)
                    and (g.split is None or r.split == g.split)
                    and _number(r.metrics.get(g.metric)) is not None
                ]
                if not matching:
                    failures.append(
                        f"{t.version} has no evaluation report with {g.metric}"
                        + (f" on {g.dataset}" if g.dataset else "")
                        + f" (run `plinth eval {t.version} --dataset {g.dataset or 'DATASET'}`)"
                    )
                    continue
                newest = matching[0]
                value = _number(newest.metrics.get(g.metric))
                assert value is not None
                if not g.passes(value):
                    failures.append(
                        f"{t.version} fails the gate '{g.describe()}': report {newest.id} on {newest.dataset} has {g.metric} {value:.4g}"
                    )
        return failures

    def _reports(self, t: Target) -> builtins.list[Any]:
        name, sep, number = t.version.partition("@")
        version = whole_number(number, maximum=VERSION_MAX) if sep else None
        if version is not None:
            return self.store.list_eval_reports(registry_name=name, registry_version=version)
        return self.store.list_eval_reports(model=t.served)

    def _check_gate(self, dep: Deployment, targets: tuple[Target, ...], actor: str, revision: int | None, *, record: bool = True) -> None:
        if not dep.gate:
            return
        failures = self.gate_failures(dep.gate, targets)
        if not failures:
            return
        self.metrics.deployment_gate_refusals.labels(dep.name).inc()
        if record:
            self.store.add_deployment_event(
                DeploymentEvent(
                    dep.name,
                    EventKind.GATE_REFUSED,
                    actor,
                    revision=revision,
                    reason="; ".join(failures),
                    details={"targets": [t.version for t in targets], "gate": [g.to_dict() for g in dep.gate]},
                )
            )
        raise PlinthError(
            ErrorCode.CONFLICT,
            f"the candidate does not pass the evaluation gate of {dep.name!r}: " + "; ".join(failures),
            details={"gate": [g.to_dict() for g in dep.gate], "failures": failures},
        )

    # -- changes --------------------------------------------------------------------------------
    def create(
        self,
        name: str,
        targets: builtins.list[dict[str, Any]],
        *,
        actor: str,
        description: str = "",
        rules: builtins.list[dict[str, Any]] | None = None,
        gate: builtins.list[dict[str, Any]] | None = None,
        window_s: int | None = None,
        auto_rollback: bool = True,
        note: str = "",
    ) -> Deployment:
        check_name(name)
        if self.catalog.store.find_model(name) is not None:
            raise PlinthError(ErrorCode.CONFLICT, f"{name!r} is a catalog model; a deployment needs a name of its own", param="name")
        if self.registry is not None and self.store.find_registered_model(name) is not None:
            raise PlinthError(ErrorCode.CONFLICT, f"{name!r} is a registered model; a deployment needs a name of its own", param="name")
        dep = Deployment(
            name=name,
            stable_revision=1,
            description=description,
            rules=parse_rules(rules) if rules is not None else DEFAULT_RULES,
            gate=parse_gate(gate, self.gate_kinds) if gate else (),
            window_s=self._window(window_s),
            auto_rollback=auto_rollback,
        )
        pinned = self.targets(targets)
        self._check_gate(dep, pinned, actor, None, record=False)  # nothing to record history on yet
        created = self.store.create_deployment(dep, pinned, actor=actor, note=note)
        self.router.invalidate(name)
        self.audit.record(actor, "deployment.create", "deployment", name, after=self.view(created))
        return created

    def replace(self, name: str, targets: builtins.list[dict[str, Any]], *, actor: str, note: str = "") -> Deployment:
        """A new revision that takes all traffic at once (no canary)."""
        dep = self.get(name)
        if dep.canary_revision is not None:
            raise PlinthError(
                ErrorCode.CONFLICT,
                f"{name!r} has canary revision {dep.canary_revision} in progress; promote or roll it back first",
            )
        pinned = self.targets(targets)
        self._check_gate(dep, pinned, actor, None)
        rev = self.store.add_revision(name, pinned, actor=actor, note=note)
        return self._change(
            dep,
            {"stable_revision": rev.number},
            EventKind.REVISION,
            actor,
            rev.number,
            note,
            {"stable": rev.number, "previous_stable": dep.stable_revision},
            "deployment.replace",
        )

    def canary(self, name: str, targets: builtins.list[dict[str, Any]] | None, *, percent: float, actor: str, note: str = "") -> Deployment:
        """Put a candidate on ``percent`` of the traffic, or (without targets) change the
        running canary's share."""
        percent = _percent(percent)
        dep = self.get(name)
        if not targets:
            if dep.canary_revision is None:
                raise PlinthError(ErrorCode.CONFLICT, f"{name!r} has no canary; give the model to put on canary", param="model")
            return self._change(
                dep,
                {"canary_percent": percent},
                EventKind.TRAFFIC,
                actor,
                dep.canary_revision,
                note,
                {"from_percent": dep.canary_percent, "percent": percent},
                "deployment.traffic",
            )
        if dep.canary_revision is not None:
            raise PlinthError(
                ErrorCode.CONFLICT,
                f"{name!r} already has canary revision {dep.canary_revision}; promote or roll it back first",
            )
        pinned = self.targets(targets)
        self._check_gate(dep, pinned, actor, None)
        rev = self.store.add_revision(name, pinned, actor=actor, note=note)
        return self._change(
            dep,
            {"canary_revision": rev.number, "canary_percent": percent, "canary_started_at": datetime.now(UTC)},
            EventKind.CANARY,
            actor,
            rev.number,
            note,
            {"percent": percent, "stable": dep.stable_revision},
            "deployment.canary",
        )

    def promote(self, name: str, *, actor: str, note: str = "") -> Deployment:
        dep = self.get(name)
        if dep.canary_revision is None:
            raise PlinthError(ErrorCode.CONFLICT, f"{name!r} has no canary to promote")
        self._check_gate(dep, self.store.get_revision(name, dep.canary_revision).targets, actor, dep.canary_revision)
        return self._change(
            dep,
            {"stable_revision": dep.canary_revision, **_NO_CANARY},
            EventKind.PROMOTED,
            actor,
            dep.canary_revision,
            note,
            {"stable": dep.canary_revision, "previous_stable": dep.stable_revision},
            "deployment.promote",
        )

    def rollback(
        self,
        name: str,
        *,
        actor: str,
        reason: str = "",
        to_revision: int | None = None,
        trigger: str = "manual",
        rule: str = "",
        expected_generation: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> Deployment:
        """With a canary: all traffic back to the stable revision. Without one (or with
        ``to_revision``): the stable revision goes back to the previous stable one (or to
        ``to_revision``)."""
        dep = self.get(name)
        if expected_generation is not None and dep.generation != expected_generation:
            raise PlinthError(ErrorCode.CONFLICT, f"deployment {name!r} changed meanwhile")
        extra = dict(details or {})
        if dep.canary_revision is not None and to_revision is None:
            changes: dict[str, Any] = dict(_NO_CANARY)
            revision = dep.canary_revision
            extra.update({"stable": dep.stable_revision, "rolled_back": dep.canary_revision, "percent": dep.canary_percent})
        else:
            target = to_revision if to_revision is not None else self._previous_stable(dep)
            if target is None:
                raise PlinthError(ErrorCode.CONFLICT, f"{name!r} has no canary and no earlier stable revision to roll back to")
            self.store.get_revision(name, target)  # not_found for an unknown revision
            if target == dep.stable_revision and dep.canary_revision is None:
                raise PlinthError(ErrorCode.CONFLICT, f"revision {target} is already the stable revision of {name!r}")
            changes = {"stable_revision": target, **_NO_CANARY}
            revision = target
            extra.update({"stable": target, "previous_stable": dep.stable_revision, "rolled_back": dep.canary_revision})
        kind = EventKind.AUTO_ROLLBACK if trigger == "auto" else EventKind.ROLLED_BACK
        updated = self._change(dep, changes, kind, actor, revision, reason, extra, f"deployment.{kind.value}")
        self.metrics.deployment_rollbacks.labels(name, trigger, rule).inc()
        if trigger == "auto":
            log.warning("deployment %s: canary revision %s rolled back automatically: %s", name, revision, reason)
        return updated

    def _previous_stable(self, dep: Deployment) -> int | None:
        for e in self.store.list_deployment_events(dep.name, limit=1000):
            if e.details.get("stable") == dep.stable_revision and e.details.get("previous_stable") is not None:
                return int(e.details["previous_stable"])
        return None

    def configure(
        self,
        name: str,
        *,
        actor: str,
        rules: builtins.list[dict[str, Any]] | None = None,
        gate: builtins.list[dict[str, Any]] | None = None,
        window_s: int | None = None,
        auto_rollback: bool | None = None,
        description: str | None = None,
    ) -> Deployment:
        """Change the rollout rules, the evaluation gate, the window, auto-rollback or the
        description (what is None stays)."""
        dep = self.get(name)
        changes: dict[str, Any] = {}
        if rules is not None:
            changes["rules"] = parse_rules(rules)
        if gate is not None:
            changes["gate"] = parse_gate(gate, self.gate_kinds)
        if window_s is not None:
            changes["window_s"] = self._window(window_s)
        if auto_rollback is not None:
            changes["auto_rollback"] = bool(auto_rollback)
        if description is not None:
            changes["description"] = description
        if not changes:
            return dep
        before = {k: v for k, v in dep.public_dict().items() if k in ("rules", "gate", "window_s", "auto_rollback", "description")}
        return self._change(dep, changes, EventKind.RULES, actor, None, "", {"before": before}, "deployment.configure")

    def delete(self, name: str, *, actor: str) -> Deployment:
        dep = self.get(name)
        before = self.view(dep)
        gone = self.store.delete_deployment(name)
        self.router.invalidate(name)
        self.audit.record(actor, "deployment.delete", "deployment", name, before=before)
        return gone

    def _change(
        self,
        dep: Deployment,
        changes: dict[str, Any],
        kind: EventKind,
        actor: str,
        revision: int | None,
        reason: str,
        details: dict[str, Any],
        action: str,
    ) -> Deployment:
        before = self.view(dep)
        updated = self.store.update_deployment(
            dep.name,
            changes,
            expected_generation=dep.generation,
            event=DeploymentEvent(dep.name, kind, actor, revision=revision, reason=reason, details=details),
        )
        self.router.invalidate(dep.name)
        self.audit.record(
            actor, action, "deployment", dep.name, before=before, after=self.view(updated), details={"reason": reason} if reason else None
        )
        return updated

    def _window(self, window_s: int | None) -> int:
        if window_s is None:
            return self.default_window_s
        if not isinstance(window_s, int) or not MIN_WINDOW_S <= window_s <= MAX_WINDOW_S:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"window_s must be {MIN_WINDOW_S} to {MAX_WINDOW_S} seconds; got {window_s!r}",
                param="window_s",
            )
        return window_s


def _percent(value: float) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"percent must be a number from 0 to 100; got {value!r}", param="percent") from None
    if not 0.0 <= p <= 100.0:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"percent must be from 0 to 100; got {value!r}", param="percent")
    return p


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _dataset_matches(wanted: str | None, actual: str) -> bool:
    if wanted is None:
        return True
    return actual == wanted or ("@" not in wanted and actual.split("@", 1)[0] == wanted)
