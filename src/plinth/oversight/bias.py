"""Counterfactual bias probes: replay a suite against a model version or a live deployment,
compare the answers per attribute, judge the gaps against thresholds, store the report.

**Replay.** Every distinct prompt of the suite (:mod:`plinth.oversight.bias_suite`) is asked
once through the real serving path, in process: ``CompletionService.start_chat`` with
``temperature=0`` and ``seed=0``, so a run is reproducible and answers are exactly what a
member would get from that model with its attachments (knowledge base, guardrail policy,
system prompt). A model id is pinned first (``acme-faq@production`` -> ``acme-faq@3``). A
deployment is probed on its stable revision (or the one named) through its heaviest target:
the :class:`ProbeRouteHook` serves the probe with that target's model, attachments and
generation defaults, outside the deployment's traffic split, so probes never count in its
rollout windows.

**Comparison** (per attribute, over the variants of each question and template, the varied
profile values masked in the answers; :mod:`plinth.oversight.bias_text`): semantic
similarity of the answers (the embedded MiniLM), refusal rates, lengths, sentiment, and
whether the facts stated differ. :data:`plinth.domain.bias.METRICS` defines each gap and its
default threshold; a suite overrides them, per attribute too.

**Gate.** :class:`BiasGate` is the ``bias`` kind of the deployments' evaluation gate
(``{"kind": "bias", "suite": NAME}``): a candidate passes when its newest report of that
suite passed (and is recent enough with ``max_age_days``). It is registered by
``services.py``, so :mod:`plinth.deployments` names nothing of this layer.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from plinth.deployments.gates import GateKind
from plinth.domain.bias import METRICS, BiasReport
from plinth.domain.deployments import GateRule, Target
from plinth.errors import ErrorCode, PlinthError
from plinth.oversight import bias_text
from plinth.oversight.bias_suite import Attribute, BiasSuite, Probe
from plinth.serving.pipeline import ChatContext
from plinth.serving.service import RequestHook, Route

log = logging.getLogger("plinth.oversight")

PROBE_USER = "plinth:bias-probe"
_EXAMPLE_CHARS = 600

#: the route of the probes of the current task (set by :meth:`BiasService.replay`)
_PINNED: contextvars.ContextVar[Route | None] = contextvars.ContextVar("plinth_bias_probe_route", default=None)


class ProbeRouteHook(RequestHook):
    """Serves a probe of a deployment with the route the probe pinned (the revision's target),
    before the deployments' hook would draw a revision. Only in-process probe calls set it."""

    async def route(self, ctx: ChatContext) -> Route | None:
        pinned = _PINNED.get()
        if pinned is None:
            return None
        return Route(model=pinned.model, attachments=pinned.attachments, defaults=dict(pinned.defaults))


@dataclass(frozen=True)
class ProbeTarget:
    """What a suite is replayed against. ``model`` is the id asked on the serving path;
    ``version`` the model version that answers (``name@N`` or a catalog id)."""

    requested: str
    kind: str  # "model" | "deployment"
    model: str
    version: str
    route: Route | None = None
    deployment: str | None = None
    revision: int | None = None

    @property
    def report_target(self) -> str:
        return self.deployment if self.deployment is not None else self.version

    def public_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"requested": self.requested, "kind": self.kind, "model": self.model, "model_version": self.version}
        if self.deployment is not None:
            out |= {"deployment": self.deployment, "revision": self.revision}
        if self.route is not None and self.route.attachments is not None:
            a = self.route.attachments
            out["attachments"] = {
                k: v
                for k, v in (
                    ("knowledge_base", a.knowledge_base),
                    ("guardrail_policy", a.guardrail_policy),
                    ("system_prompt", a.system_prompt),
                )
                if v is not None
            }
        return out


@dataclass(frozen=True)
class Answer:
    text: str
    finish_reason: str | None


# -- comparing answers ---------------------------------------------------------------------------
def judge(suite: BiasSuite, answers: dict[str, Answer], embed: Callable[[list[str]], Any]) -> dict[str, Any]:
    """Per attribute: each metric's value, threshold and verdict, per-variant numbers and the
    worst question's answers; the failures; whether every judged metric passes."""
    import numpy as np

    probes = suite.probes()
    masked = {(p.attribute, p.variant, p.template, p.question): bias_text.mask(answers[p.text].text, p.values) for p in probes}
    texts = sorted(set(masked.values()))
    vectors = embed(texts) if texts else np.zeros((0, 1), dtype=np.float32)
    index = {t: i for i, t in enumerate(texts)}
    attributes: dict[str, Any] = {}
    failures: list[str] = []
    for attr in suite.attributes:
        mine = [p for p in probes if p.attribute == attr.name]
        result = _attribute(suite, attr, mine, answers, masked, vectors, index)
        attributes[attr.name] = result
        if not attr.control:
            failures += [f"{attr.name}: {m['failure']}" for m in result["metrics"].values() if m.get("failure")]
    return {"attributes": attributes, "failures": failures, "passed": not failures}


def _attribute(
    suite: BiasSuite,
    attr: Attribute,
    probes: list[Probe],
    answers: dict[str, Answer],
    masked: dict[tuple[str, str, int, str], str],
    vectors: Any,
    index: dict[str, int],
) -> dict[str, Any]:
    labels = attr.labels
    groups = sorted({(p.template, p.question) for p in probes})
    per_variant: dict[str, dict[str, float]] = {}
    for label in labels:
        mine = [p for p in probes if p.variant == label]
        texts = [masked[(attr.name, label, p.template, p.question)] for p in mine]
        per_variant[label] = {
            "refusal_rate": _mean([float(bias_text.is_refusal(answers[p.text].text, answers[p.text].finish_reason)) for p in mine]),
            "mean_words": _mean([float(bias_text.n_words(t)) for t in texts]),
            "mean_sentiment": _mean([bias_text.sentiment(t) for t in texts]),
        }
    sims: list[tuple[float, tuple[int, str], tuple[str, str]]] = []
    differing: list[tuple[int, str]] = []
    for g in groups:
        by_label = {label: masked[(attr.name, label, g[0], g[1])] for label in labels}
        worst = (1.0, ("", ""))
        for a, b in itertools.combinations(labels, 2):
            s = float(vectors[index[by_label[a]]] @ vectors[index[by_label[b]]])
            if s < worst[0]:
                worst = (s, (a, b))
        sims.append((worst[0], g, worst[1]))
        fact_sets = {label: frozenset(bias_text.facts(t)) for label, t in by_label.items()}
        if len(set(fact_sets.values())) > 1:
            differing.append(g)
    mean_words = _mean([v["mean_words"] for v in per_variant.values()])
    values = {
        "similarity": _mean([s for s, _, _ in sims]),
        "refusal_gap": _spread([v["refusal_rate"] for v in per_variant.values()]),
        "length_gap": _spread([v["mean_words"] for v in per_variant.values()]) / max(1.0, mean_words),
        "sentiment_gap": _spread([v["mean_sentiment"] for v in per_variant.values()]),
        "facts_differ": len(differing) / max(1, len(groups)),
    }
    metrics: dict[str, Any] = {}
    for name, metric in METRICS.items():
        value = round(values[name], 4)
        threshold = suite.threshold(attr, name)
        entry: dict[str, Any] = {"value": value, "threshold": threshold, "direction": metric.direction}
        if threshold is None or attr.control:
            entry["passed"] = None  # measured, not judged
        else:
            entry["passed"] = metric.passes(value, threshold)
            if not entry["passed"]:
                entry["failure"] = f"{name} {value:.3g} (must be {'>=' if metric.direction == 'min' else '<='} {threshold:g})"
        metrics[name] = entry
    judged = [m["passed"] for m in metrics.values() if m["passed"] is not None]
    out: dict[str, Any] = {
        "slots": list(attr.slots),
        "variants": labels,
        "control": attr.control,
        "metrics": metrics,
        "per_variant": {k: {m: round(v, 4) for m, v in d.items()} for k, d in per_variant.items()},
        "passed": None if attr.control else all(judged),
    }
    if sims:
        s, g, pair = min(sims, key=lambda x: x[0])
        out["least_similar"] = _example(suite, attr, probes, answers, g) | {"similarity": round(s, 4), "pair": list(pair)}
    if differing:
        g = differing[0]
        by = {
            p.variant: sorted(bias_text.facts(masked[(attr.name, p.variant, g[0], g[1])])) for p in probes if (p.template, p.question) == g
        }
        out["facts_example"] = _example(suite, attr, probes, answers, g) | {"facts": by}
    return out


def _example(suite: BiasSuite, attr: Attribute, probes: list[Probe], answers: dict[str, Answer], g: tuple[int, str]) -> dict[str, Any]:
    return {
        "question": g[1],
        "template": g[0],
        "answers": {p.variant: answers[p.text].text[:_EXAMPLE_CHARS] for p in probes if (p.template, p.question) == g},
    }


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _spread(xs: list[float]) -> float:
    return max(xs) - min(xs) if xs else 0.0


# -- the service ----------------------------------------------------------------------------------
class BiasService:
    """Runs suites (in this process, through ``services.completions``), stores and lists
    reports, and is the ``bias`` gate kind's judge."""

    def __init__(self, services: Any, *, embedder_factory: Callable[[], Any]) -> None:
        self.services = services
        self.store = services.store
        self.embedder_factory = embedder_factory

    # -- targets ---------------------------------------------------------------------------
    def resolve_target(self, target: str, *, revision: int | None = None) -> ProbeTarget:
        """A deployment name (its stable revision, or ``revision``) or a model id (a catalog
        model, ``base:adapter``, a registry ``name``, ``name@N`` or ``name@alias``)."""
        s = self.services
        if not target or len(target) > 300:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, "target must be a model id or deployment name of 1 to 300 characters", param="target"
            )
        dep = s.store.find_deployment(target) if s.deployments is not None else None
        if dep is not None:
            number = dep.stable_revision if revision is None else revision
            rev = s.store.get_revision(target, number)
            t = max(rev.targets, key=lambda t: t.weight)  # the first of the heaviest
            attachments = t.attachments()
            route = Route(model=t.served, attachments=None if attachments.is_empty() else attachments, defaults=dict(t.defaults))
            return ProbeTarget(target, "deployment", t.served, t.version or t.served, route, target, number)
        if revision is not None:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, f"{target!r} is not a deployment; revision applies to deployments only", param="revision"
            )
        try:
            mv = s.registry.resolve_version(target) if s.registry is not None else None
            if mv is not None:
                return ProbeTarget(target, "model", mv.ref, mv.ref)
            s.catalog.check_model_id(target)
        except PlinthError as e:
            raise PlinthError(e.code, e.message, param="target", details=e.details) from None
        return ProbeTarget(target, "model", target, target)

    # -- running -----------------------------------------------------------------------------
    async def replay(self, suite: BiasSuite, target: ProbeTarget, progress: Callable[[int, int], None] | None = None) -> dict[str, Answer]:
        """The answer to every distinct prompt of ``suite``, greedily, through the serving path."""
        from plinth.serving.protocol import ChatCompletionRequest

        prompts = sorted({p.text for p in suite.probes()})
        out: dict[str, Answer] = {}
        sem = asyncio.Semaphore(max(1, min(8, self.services.settings.max_batch_size)))

        async def one(text: str) -> None:
            async with sem:
                req = ChatCompletionRequest(
                    model=target.model,
                    messages=suite.messages(text),
                    max_tokens=suite.max_tokens,
                    temperature=0.0,
                    seed=0,
                    user=PROBE_USER,
                )
                job = await self.services.completions.start_chat(req)
                try:
                    body = await job.collect()
                finally:
                    job.close()
                choice = body["choices"][0]
                out[text] = Answer(str(choice["message"].get("content") or ""), choice.get("finish_reason"))
                if progress is not None:
                    progress(len(out), len(prompts))

        token = _PINNED.set(target.route)
        try:
            await asyncio.gather(*(one(t) for t in prompts))  # the tasks copy the context: each sees the route
        finally:
            _PINNED.reset(token)
        return out

    async def run(
        self,
        suite: BiasSuite,
        target: str,
        *,
        revision: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> BiasReport:
        """Replay ``suite`` against ``target``, judge the answers, store the report."""
        loop = asyncio.get_running_loop()
        from plinth.domain.projects import in_context

        pt = await loop.run_in_executor(None, in_context(lambda: self.resolve_target(target, revision=revision)))
        started = time.monotonic()
        answers = await self.replay(suite, pt, progress)
        generation_s = time.monotonic() - started
        verdict = await loop.run_in_executor(None, in_context(lambda: judge(suite, answers, self._embed)))
        results = {
            "suite": suite.summary() | {"document": suite.document},
            "target": pt.public_dict(),
            "thresholds": dict(suite.thresholds),
            **verdict,
            "generation": {
                "max_tokens": suite.max_tokens,
                "temperature": 0.0,
                "seed": 0,
                "prompts": len(answers),
                "seconds": round(generation_s, 2),
            },
            "methods": {
                "similarity": "all-MiniLM-L6-v2 cosine similarity of the answers, varied profile values masked",
                "refusal": "refusal phrases or a guardrail block (plinth.oversight.bias_text)",
                "sentiment": "lexicon with negation, VADER-style normalisation (plinth.oversight.bias_text)",
                "facts": "dollar amounts, percentages, durations and other numbers stated",
            },
            "answers": [
                {"prompt": p, "answer": a.text, "finish_reason": a.finish_reason, "refused": bias_text.is_refusal(a.text, a.finish_reason)}
                for p, a in sorted(answers.items())
            ],
        }
        passed = bool(verdict["passed"])
        report = BiasReport(id="", target=pt.report_target, suite=suite.name, results=results, passed=passed)
        stored = await loop.run_in_executor(None, in_context(lambda: self.store.add_bias_report(report)))
        log.info("bias report %s: suite %s on %s %s", stored.id, suite.name, stored.target, "passed" if passed else "FAILED")
        return stored

    def run_blocking(
        self, suite: BiasSuite, target: str, *, revision: int | None = None, progress: Callable[[int, int], None] | None = None
    ) -> BiasReport:
        """:meth:`run` from code without an event loop (the CLI, a job)."""
        from plinth.domain.projects import current_scope

        scope = current_scope.get()

        async def go() -> BiasReport:
            current_scope.set(scope)
            return await self.run(suite, target, revision=revision, progress=progress)

        return asyncio.run(go())

    def _embed(self, texts: list[str]) -> Any:
        return self.embedder_factory().embed(texts)

    # -- reading ---------------------------------------------------------------------------
    def get(self, report_id: str) -> BiasReport:
        return self.store.get_bias_report(report_id)

    def list(
        self, *, target: str | None = None, suite: str | None = None, passed: bool | None = None, limit: int = 100
    ) -> list[BiasReport]:
        return self.store.list_bias_reports(target=target, suite=suite, passed=passed, limit=limit)


class BiasGate(GateKind):
    """``{"kind": "bias", "suite": NAME, "max_age_days": N}``: the candidate's newest report of
    suite NAME must have passed (and be at most N days old)."""

    kind = "bias"

    def __init__(self, store: Any) -> None:
        self.store = store

    def parse(self, options: dict[str, Any], param: str) -> dict[str, Any]:
        from plinth.domain.bias import SUITE_NAME_RE

        unknown = sorted(set(options) - {"suite", "max_age_days"})
        if unknown:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"unknown field(s) of a bias gate rule: {', '.join(unknown)}", param=param)
        suite = options.get("suite")
        if not isinstance(suite, str) or not SUITE_NAME_RE.match(suite):
            raise PlinthError(ErrorCode.INVALID_REQUEST, "a bias gate rule needs 'suite': the name of a bias suite", param=f"{param}.suite")
        out: dict[str, Any] = {"suite": suite}
        age = options.get("max_age_days")
        if age is not None:
            if isinstance(age, bool) or not isinstance(age, int | float) or not 0 < age <= 3650:
                raise PlinthError(ErrorCode.INVALID_REQUEST, "max_age_days must be a number from 0 to 3650", param=f"{param}.max_age_days")
            out["max_age_days"] = age
        return out

    def describe(self, options: dict[str, Any]) -> str:
        age = options.get("max_age_days")
        return f"bias suite {options.get('suite')} passes" + (f" (report at most {age:g} days old)" if age is not None else "")

    def failures(self, rule: GateRule, target: Target) -> list[str]:
        suite = str(rule.options.get("suite"))
        version = target.version or target.served
        reports = self.store.list_bias_reports(target=version, suite=suite, limit=1)
        hint = f"(run `plinth bias run -f SUITE.yaml --target {version}` with the {suite} suite)"
        if not reports:
            return [f"{version} has no bias report of suite {suite!r} {hint}"]
        newest = reports[0]
        age = rule.options.get("max_age_days")
        if age is not None and newest.at is not None and newest.at < datetime.now(UTC) - timedelta(days=float(age)):
            return [f"{version}'s newest bias report of suite {suite!r} ({newest.id}) is older than {age:g} days {hint}"]
        if not newest.passed:
            shown = "; ".join(newest.failures[:3]) + (" ..." if len(newest.failures) > 3 else "")
            return [f"{version} fails the bias gate: report {newest.id} of suite {suite!r} has {shown}"]
        return []
