"""Console benchmark (issue 16): the server time of every web console page on a store with
1,000 tracking runs, 100,000 metric points and 100,000 logged requests.

    python bench/console.py              # a few minutes; writes bench/results/console-<cpu>.{md,json}
    python bench/console.py --quick      # a tenth of the data, 5 requests per page; writes nothing (unless --results-dir)
    python bench/console.py --profile    # also cProfile every page over the target (top functions in the results)
    python bench/console.py --only /console/runs   # just the routes starting with that path

The services are built as ``plinth up`` builds them (``build_services(settings, strict=True)``
on a fresh SQLite ``PLINTH_HOME``, ``PLINTH_AUTH=true``, no model loaded: nothing here
generates text) and seeded through their own methods; the bulk rows go through the store's
own bulk methods (``log_metrics``, ``add_request_logs``, ``add_usage``,
``add_guardrail_events``), never through SQL:

- 1,000 finished tuning runs with params and summaries; one of them has 100,000
  ``train/loss`` points (and 1,000 ``val/loss``), ten others 1,000 ``train/loss`` points each;
- 100,000 request log entries over the last 7 days, across 3 deployments (stable and canary
  revisions) and 3 model ids, with redacted text, guardrail findings on some, citations on
  some, ratings on some, anomaly scores on some, and a MiniLM-sized vector on the newest
  10,000; the same 100,000 requests as usage records; 10,000 guardrail events;
- what pages list besides: jobs (queued, one cancelled), two knowledge bases (three Acme
  Health documents in one), two guardrail policies, a dataset, registry versions with an
  alias and evaluation reports, three deployments (one with a canary), alert rules, a
  pipeline with a run, 1,000 audit entries. A seed that fails is reported, not fatal.

Then ``create_app(services)`` is driven in process (httpx over ASGI, no sockets, no
lifespan: the alert evaluator, drift scheduler and pipeline runner threads do not run
beside the measurement) with an admin API key. Every GET route under ``/console`` that
exists when it runs is measured (``/console/static``, ``/console/login`` and the project
switch excluded); path parameters are filled with seeded ids (the run with 100,000 points for
a run page); a route that answers 422 for a missing query parameter is retried with
seeded values for it. Each page is loaded once to warm up, then ``--repeat`` times
(20); the time is from the request to the last byte of the response, in this process, so it
is the server's time without a network. Target (issue 16): under 300 ms per page.

<cpu> is this CPU's slug from bench/machine.py; each run also rewrites bench/results/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

from machine import add_results_args, describe, machine_line, results_dir_of, title, write_results

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
BASE = "smollm2-135m-instruct"
TARGET_MS = 300.0
EXAMPLES = REPO / "examples" / "acme-health"
#: the first segment under /console that is no page
SKIP_PREFIXES = ("/console/static", "/console/login")
SKIP_PATHS = frozenset({"/console/project"})
DEPLOYMENTS = ("acme-assistant", "claims-helper", "intake-triage")
QUESTIONS = (
    "Is a dental cleaning covered on the Gold plan?",
    "How much is the Bronze deductible for a family?",
    "My member id is <MEMBER_ID>: what is my copay for a specialist?",
    "Do I need prior authorization for an MRI?",
    "How do I appeal a denied claim for <PERSON>?",
    "Are travel vaccines covered abroad?",
    "What does the nurse line cost?",
    "Can I see an out-of-network therapist on the Silver plan?",
)


@dataclass(frozen=True)
class Scale:
    runs: int = 1000
    big_run_points: int = 100_000
    small_runs: int = 10
    small_run_points: int = 1000
    requests: int = 100_000
    vectors: int = 10_000
    guardrail_events: int = 10_000
    audit: int = 1000
    jobs: int = 8

    def scaled(self, f: float) -> Scale:
        return Scale(**{k: max(2, int(v * f)) for k, v in asdict(self).items()})


# -- statistics ----------------------------------------------------------------------------------
def _ms(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, max(0, int(q * len(s) + 0.5) - 1))] * 1000, 1)


def stats(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "p95_ms": _ms(values, 0.95),
        "max_ms": round(max(values) * 1000, 1),
    }


# -- the services, as `plinth up` builds them -------------------------------------------------------
def build(home: Path) -> Any:
    from plinth.config import load_settings
    from plinth.domain.projects import project_scope
    from plinth.services import build_services

    settings = load_settings(home=home, auth=True, preload_default_model=False, jobs_local_worker=False, request_log_prune_interval_s=3600)
    with project_scope("default"):  # as the CLI's `plinth up` builds them (its --project)
        return build_services(settings, strict=True)


class Seeded:
    """What was seeded: ids and names for path parameters, counts and times for the results."""

    def __init__(self) -> None:
        self.ids: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.skipped: dict[str, str] = {}  # seed -> why it failed (the run goes on without it)

    @contextmanager
    def phase(self, name: str, *, optional: bool = True) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        except Exception as e:
            if not optional:
                raise
            self.skipped[name] = f"{type(e).__name__}: {str(e)[:300]}"
            print(f"  seed {name}: skipped ({self.skipped[name]})", flush=True)
        finally:
            self.seconds[name] = round(time.perf_counter() - t0, 2)
            if name not in self.skipped:
                print(f"  seed {name}: {self.seconds[name]} s", flush=True)


def seed(s: Any, scale: Scale, rng: random.Random) -> Seeded:
    from plinth.domain.projects import project_scope

    out = Seeded()
    now = datetime.now(UTC)
    with project_scope("default"):
        with out.phase("model", optional=False):
            s.catalog.ensure_embedded()
        with out.phase("key", optional=False):
            key, token = s.auth.create_key("bench-console", scopes=["admin"], actor="bench")
            out.ids.update(key=key.id, token=token)
        with out.phase("dataset"):
            version, _ = s.datasets.add(EXAMPLES / "faq.jsonl", "acme-faq", description="Acme Health FAQ pairs")
            out.ids["dataset"] = "acme-faq"
            out.ids["dataset_version"] = version.version
        with out.phase("runs", optional=False):
            _seed_runs(s, scale, rng, out, now)
        with out.phase("metrics", optional=False):
            _seed_metrics(s, scale, rng, out, now)
        with out.phase("jobs"):
            _seed_jobs(s, scale, out)
        with out.phase("knowledge"):
            _seed_knowledge(s, out)
        with out.phase("guardrails"):
            s.guardrails.apply((REPO / "examples" / "guardrails" / "acme-health.yaml").read_text())
            s.guardrails.apply({"name": "bench-pii", "rules": [{"detector": "pii", "on": ["input", "output"], "action": "redact"}]})
            out.ids["policy"] = "acme-health"
            out.counts["guardrail_policies"] = 2
        with out.phase("registry"):
            _seed_registry(s, out, rng)
        with out.phase("deployments"):
            _seed_deployments(s, out)
        with out.phase("request_log", optional=False):
            _seed_requests(s, scale, rng, out, now)
        with out.phase("usage"):
            _seed_usage(s, scale, rng, out, now)
        with out.phase("guardrail_events"):
            _seed_guardrail_events(s, scale, rng, out, now)
        with out.phase("alerts"):
            _seed_alerts(s, out)
        with out.phase("pipelines"):
            _seed_pipelines(s, out)
        with out.phase("audit"):
            for i in range(scale.audit):
                s.audit.record(
                    f"user{i % 7}",
                    rng.choice(("deployment.promote", "deployment.canary", "key.create", "kb.add", "guardrails.apply", "job.cancel")),
                    rng.choice(("deployment", "key", "knowledge_base", "policy", "job")),
                    f"target-{i % 50}",
                    before={"state": "a"},
                    after={"state": "b", "i": i},
                )
            out.counts["audit_entries"] = scale.audit
    return out


def _seed_runs(s: Any, scale: Scale, rng: random.Random, out: Seeded, now: datetime) -> None:
    from plinth.domain.tracking import Run, RunStatus

    ids: list[str] = []
    for i in range(scale.runs):
        started = now - timedelta(minutes=(scale.runs - i) * 7)
        status = RunStatus.FAILED if i % 29 == 0 else RunStatus.FINISHED
        run = s.store.create_run(
            Run(
                id=uuid4().hex,
                name=f"acme-lora-{i:04d}",
                kind=rng.choice(("lora", "lora", "lora", "eval", "full")),
                status=status,
                params={"rank": rng.choice((8, 16, 32)), "lr": rng.choice((1e-4, 2e-4, 5e-4)), "epochs": rng.randint(1, 5), "seed": i},
                tags={"team": rng.choice(("claims", "member-services", "pharmacy"))},
                base_model=BASE,
                dataset="acme-faq@1",
                summary={"train/loss": round(rng.uniform(0.4, 2.0), 4), "val/loss": round(rng.uniform(0.5, 2.2), 4), "steps": 1000},
                error="CUDA out of memory" if status is RunStatus.FAILED else None,
                started_at=started,
                ended_at=started + timedelta(minutes=rng.randint(2, 60)),
            )
        )
        ids.append(run.id)
    out.ids["runs"] = ids
    out.counts["runs"] = len(ids)


def _seed_metrics(s: Any, scale: Scale, rng: random.Random, out: Seeded, now: datetime) -> None:
    from plinth.domain.tracking import MetricPoint

    def curve(n: int, key: str, every: int = 1) -> list[MetricPoint]:
        t0 = now - timedelta(seconds=n)
        return [
            MetricPoint(key, step, 2.5 * (1 + step) ** -0.25 + rng.gauss(0, 0.03), t0 + timedelta(seconds=step))
            for step in range(0, n * every, every)
        ]

    big = out.ids["runs"][-1]
    total = 0
    points = curve(scale.big_run_points, "train/loss")
    for k in range(0, len(points), 10_000):
        s.tracking.log_metric_points(big, points[k : k + 10_000])
    val = curve(max(2, scale.big_run_points // 100), "val/loss", every=100)
    s.tracking.log_metric_points(big, val)
    total += len(points) + len(val)
    for run_id in out.ids["runs"][-1 - scale.small_runs : -1]:
        s.tracking.log_metric_points(run_id, curve(scale.small_run_points, "train/loss"))
        total += scale.small_run_points
    out.ids["run"] = big
    out.ids["run_small"] = out.ids["runs"][-2]
    out.ids["run_first"] = out.ids["runs"][0]
    out.counts["metric_points"] = total
    out.counts["big_run_points"] = len(points) + len(val)


def _seed_jobs(s: Any, scale: Scale, out: Seeded) -> None:
    jobs = [
        s.jobs.submit("selftest", {"steps": 5, "sleep_s": 0.1}, name=f"bench-selftest-{i}", labels={"bench": "console"})
        for i in range(scale.jobs)
    ]
    s.jobs.cancel(jobs[0].id)
    out.ids["job"] = jobs[-1].id
    out.counts["jobs"] = len(jobs)


def _seed_knowledge(s: Any, out: Seeded) -> None:
    s.knowledge.create("acme-policies", description="Acme Health policy documents")
    docs = [EXAMPLES / "policies" / n for n in ("gold-plan.md", "bronze-plan.md", "travel-coverage.md")]
    s.knowledge.add_sources("acme-policies", s.knowledge.sources_from_paths([p for p in docs if p.exists()]))
    s.knowledge.create("empty-kb", description="no documents yet")
    out.ids["kb"] = "acme-policies"
    out.counts["knowledge_bases"] = 2


def _seed_registry(s: Any, out: Seeded, rng: random.Random) -> None:
    from plinth.domain.tracking import EvalReport
    from plinth.services import embedded_model_file

    gguf = embedded_model_file()
    for v in (1, 2):
        s.registry.register_model(
            "acme-faq-model",
            base_model=BASE,
            model_dir=gguf,
            run_id=out.ids["runs"][-v],
            dataset="acme-faq@1",
            metrics={"train/loss": 0.6 + 0.1 * v},
            description=f"version {v}",
        )
    s.registry.set_alias("acme-faq-model", "production", 1)
    reports = []
    for v in (1, 2):
        report = s.registry.attach_report(
            EvalReport(
                id=uuid4().hex,
                model=f"acme-faq-model@{v}",
                dataset="acme-faq@1",
                split="validation",
                metrics={"token_f1": round(rng.uniform(0.3, 0.6), 3), "exact_match": round(rng.uniform(0.0, 0.2), 3)},
                registry_name="acme-faq-model",
                registry_version=v,
                samples=[{"prompt": "Is a cleaning covered?", "expected": "Yes, twice a year.", "output": "<script>alert(1)</script>"}],
            )
        )
        reports.append(report.id)
    out.ids["registry"] = "acme-faq-model"
    out.ids["eval"] = reports[-1]
    out.counts["registry_versions"] = 2


def _seed_deployments(s: Any, out: Seeded) -> None:
    for name in DEPLOYMENTS:
        s.deployments.create(name, [{"model": BASE}], actor="bench", description=f"{name} (bench)")
    s.deployments.canary(DEPLOYMENTS[0], [{"model": BASE, "guardrail_policy": "bench-pii"}], percent=10, actor="bench")
    out.ids["deployment"] = DEPLOYMENTS[0]
    out.counts["deployments"] = len(DEPLOYMENTS)


def _request_shape(i: int, n: int, rng: random.Random, now: datetime) -> dict[str, Any]:
    dep = DEPLOYMENTS[i % 3] if i % 10 else None
    canary = dep == DEPLOYMENTS[0] and i % 10 == 3
    outcome = "error" if i % 97 == 0 else "refused" if i % 89 == 0 else "ok"
    return {
        "response_id": f"chatcmpl-bench{i:020x}",
        "model": dep or rng.choice((BASE, "acme-faq-model@production", "acme-faq-model@2")),
        "served_model": BASE,
        "deployment": dep,
        "revision": (2 if canary else 1) if dep else None,
        "outcome": outcome,
        "at": now - timedelta(seconds=(n - i) * 7 * 86400 / n),
        "latency_s": round(rng.lognormvariate(0, 0.5), 3),
        "prompt_tokens": rng.randint(20, 400),
        "completion_tokens": rng.randint(5, 200),
    }


def _seed_requests(s: Any, scale: Scale, rng: random.Random, out: Seeded, now: datetime) -> None:
    from plinth.domain.projects import system_scope
    from plinth.domain.requests import RequestLogEntry, TextMode

    n = scale.requests
    vector = bytes(384 * 4)
    batch: list[RequestLogEntry] = []
    for i in range(n):
        shape = _request_shape(i, n, rng, now)
        findings = [{"direction": "input", "detector": "pii", "action": "redact", "label": "MEMBER_ID", "count": 1}] if i % 7 == 0 else []
        cited = [{"index": 1, "document": "gold-plan.md", "chunk_id": f"c{i % 99}", "score": 0.61}] if shape["deployment"] else []
        batch.append(
            RequestLogEntry(
                response_id=shape["response_id"],
                kind="chat",
                model=shape["model"],
                served_model=shape["served_model"],
                outcome=shape["outcome"],
                at=shape["at"],
                model_version="acme-faq-model@1" if shape["model"].startswith("acme-faq-model") else None,
                deployment=shape["deployment"],
                revision=shape["revision"],
                key_id=out.ids["key"],
                user=f"user{i % 13}",
                error_code="internal_error" if shape["outcome"] == "error" else None,
                finish_reason="stop" if shape["outcome"] == "ok" else None,
                latency_s=shape["latency_s"],
                ttft_s=round(shape["latency_s"] / 5, 3),
                prompt_tokens=shape["prompt_tokens"],
                completion_tokens=shape["completion_tokens"],
                text_mode=TextMode.REDACTED,
                prompt_text=QUESTIONS[i % len(QUESTIONS)],
                response_text="Yes: the Gold plan covers two dental cleanings a year at no cost [1]." if shape["outcome"] == "ok" else None,
                policy="acme-health@1",
                findings=findings,
                finding_count=len(findings),
                blocked=i % 211 == 0,
                refused=i % 17 == 0,
                grounded=bool(cited) and i % 5 != 0,
                citations=cited,
                embedding=vector if i >= n - scale.vectors else None,
                anomaly_score=round(rng.random(), 3) if i >= n - scale.vectors else None,
                feedback=(1 if i % 3 else -1) if i % 23 == 0 else None,
                size_bytes=400,
                project="default",
            )
        )
        if len(batch) == 2000:
            with system_scope():
                s.store.add_request_logs(batch)
            batch = []
    if batch:
        with system_scope():
            s.store.add_request_logs(batch)
    out.ids["request"] = f"chatcmpl-bench{n - 1:020x}"
    out.counts["request_log"] = n


def _seed_usage(s: Any, scale: Scale, rng: random.Random, out: Seeded, now: datetime) -> None:
    from plinth.domain.deployments import Outcome, Role, UsageRecord
    from plinth.domain.projects import system_scope

    n = scale.requests
    batch: list[UsageRecord] = []
    for i in range(n):
        shape = _request_shape(i, n, rng, now)
        batch.append(
            UsageRecord(
                response_id=shape["response_id"],
                kind="chat",
                model=shape["model"],
                served_model=shape["served_model"],
                outcome=Outcome(shape["outcome"]),
                prompt_tokens=shape["prompt_tokens"],
                completion_tokens=shape["completion_tokens"],
                latency_s=shape["latency_s"],
                key_id=out.ids["key"],
                deployment=shape["deployment"],
                revision=shape["revision"],
                role=(Role.CANARY if shape["revision"] == 2 else Role.STABLE) if shape["deployment"] else None,
                error_code="internal_error" if shape["outcome"] == "error" else None,
                at=shape["at"],
                project="default",
            )
        )
        if len(batch) == 5000:
            with system_scope():
                s.store.add_usage(batch)
            batch = []
    if batch:
        with system_scope():
            s.store.add_usage(batch)
    out.counts["usage_records"] = n


def _seed_guardrail_events(s: Any, scale: Scale, rng: random.Random, out: Seeded, now: datetime) -> None:
    from plinth.domain.guardrails import Action, Direction, GuardrailEvent
    from plinth.domain.projects import system_scope

    n = scale.guardrail_events
    labels = (
        ("pii", "pii", "MEMBER_ID", Action.REDACT),
        ("pii", "pii", "EMAIL", Action.REDACT),
        ("injection", "injection", "INJECTION", Action.BLOCK),
    )
    events = []
    for i in range(n):
        detector, kind, label, action = labels[i % 3 if i % 10 == 0 else i % 2]
        events.append(
            GuardrailEvent(
                request_id=f"chatcmpl-bench{i * 10:020x}",
                model_id=BASE,
                policy="acme-health",
                policy_version=1,
                direction=Direction.INPUT if i % 4 else Direction.OUTPUT,
                detector=detector,
                kind=kind,
                label=label,
                action=action,
                score=round(rng.uniform(0.5, 1.0), 3),
                start=3,
                end=14,
                created_at=now - timedelta(seconds=(n - i) * 7 * 86400 / n),
                project="default",
            )
        )
    with system_scope():
        for k in range(0, n, 2000):
            s.store.add_guardrail_events(events[k : k + 2000])
    out.counts["guardrail_events"] = n


def _seed_alerts(s: Any, out: Seeded) -> None:
    import yaml

    docs = [d for d in yaml.safe_load_all((EXAMPLES / "project" / "alerts.yaml").read_text()) if d]
    made = []
    for d in docs:
        spec = dict(d["spec"])
        if spec.get("deployment") == "acme-assistant" and any(a.get("kind") == "pipeline" for a in spec.get("actions", [])):
            spec.pop("actions")  # the pipeline is seeded after the alerts
        made.append(s.alerts.create({"name": d["metadata"]["name"], **spec}).name)
    evaluated = s.alerts.evaluate_all()
    out.ids["alert"] = made[0]
    out.counts["alert_rules"] = len(made)
    out.counts["alert_evaluations"] = len(evaluated)


def _seed_pipelines(s: Any, out: Seeded) -> None:
    import yaml

    docs = yaml.safe_load_all((EXAMPLES / "project" / "pipeline.yaml").read_text())
    doc = next(d for d in docs if d and d.get("kind") == "Pipeline")
    pipeline, _ = s.pipelines.apply(doc)
    run = s.pipelines.start(pipeline.name)
    out.ids["pipeline"] = pipeline.name
    out.ids["pipeline_run"] = run.id
    out.ids["pipeline_step"] = doc["spec"]["steps"][0]["name"]
    out.counts["pipelines"] = 1


# -- the pages ---------------------------------------------------------------------------------
#: what a path parameter is, by its name (first) or by the path segment before it
PARAM_KINDS = {
    "run_id": "run",
    "job_id": "job",
    "response_id": "request",
    "request_id": "request",
    "report_id": "eval",
    "deployment": "deployment",
    "model": "model",
    "model_id": "model",
    "kb": "kb",
    "policy": "policy",
    "dataset": "dataset",
    "pipeline": "pipeline",
    "key_id": "key",
    "rule": "alert",
    "queue": "queue",
    "step": "pipeline_step",
    "version": "version",
    "revision": "revision",
}
SEGMENT_KINDS = {
    "runs": "run",
    "jobs": "job",
    "deployments": "deployment",
    "models": "model",
    "knowledge": "kb",
    "kb": "kb",
    "guardrails": "policy",
    "policies": "policy",
    "datasets": "dataset",
    "registry": "registry",
    "pipelines": "pipeline",
    "alerts": "alert",
    "keys": "key",
    "requests": "request",
    "monitoring": "deployment",
    "evaluations": "eval",
    "queues": "queue",
    "usage": "key",
}
#: values for query parameters a route requires (it answers 422 without them), by name; a list repeats the parameter
QUERY_VALUES: dict[str, Callable[[dict[str, Any]], str | list[str]]] = {
    "ids": lambda ids: [ids["run"], ids["run_small"], ids["run_first"]],
    "runs": lambda ids: [ids["run"], ids["run_small"]],
    "run": lambda ids: ids["run"],
    "run_id": lambda ids: ids["run"],
    "key": lambda ids: "train/loss",
    "keys": lambda ids: ["train/loss", "val/loss"],
    "metric": lambda ids: "train/loss",
    "q": lambda ids: "dental cleaning",
    "query": lambda ids: "dental cleaning",
    "deployment": lambda ids: ids.get("deployment", DEPLOYMENTS[0]),
    "model": lambda ids: BASE,
}
#: the query strings a route is measured with instead of none ({name}: a seeded id)
PAGE_QUERIES = {
    "/console/runs/compare": ["ids={run}&ids={run_small}&ids={run_first}"],
    "/console/runs/compare/series.json": ["ids={run}&ids={run_small}&ids={run_first}&key=train/loss"],
}
#: query strings a route is measured with besides the plain page (longer windows, other tabs, filters)
EXTRA_QUERIES = {
    "/console/usage": ["since=7d", "since=30d"],
    "/console/usage/series.json": ["since=7d", "since=30d"],
    "/console/usage/table": ["by=key", "by=day", "since=30d", "by=key&since=30d", "by=day&since=30d"],
    "/console/monitoring": ["tab=drift", "tab=anomalies", "tab=bias", "tab=alerts", "deployment=acme-assistant", "outcome=error"],
    "/console/runs": ["page=10", "status=failed"],
    "/console/evaluations": ["models=acme-faq-model@1,acme-faq-model@2"],
    "/console/runs/{run_id}/series.json": ["key=train/loss&key=val/loss"],
}


def value_for(param: str, before: list[str], ids: dict[str, Any]) -> str | None:
    """A seeded value for ``{param}``, ``before`` being the literal segments before it."""
    kind = PARAM_KINDS.get(param)
    if param.endswith(("version", "revision")) or kind in ("version", "revision"):
        return "1"
    if kind is None or param in ("name", "id", "ref"):
        kind = next((SEGMENT_KINDS[seg] for seg in reversed(before) if seg in SEGMENT_KINDS), None)
    if kind in ("run",) and "pipelines" in before:
        kind = "pipeline_run"
    values = {
        "model": BASE,
        "queue": "default",
        "registry": ids.get("registry"),
        **{k: v for k, v in ids.items() if isinstance(v, (str, int))},
    }
    value = values.get(kind or "")
    return None if value is None else str(value)


def _routes(app: Any) -> list[Any]:
    """Every route with its full path: FastAPI 0.16x keeps an included router as one entry of
    ``app.routes`` (``iter_route_contexts`` flattens them); older versions flatten on include."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def console_pages(app: Any, ids: dict[str, Any], only: str | None = None) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(pages to measure, routes skipped and why) for every GET route under /console."""
    pages, skipped = [], []
    for route in _routes(app):
        path, methods = getattr(route, "path", None), getattr(route, "methods", None) or set()
        if not isinstance(path, str) or "GET" not in methods:
            continue
        if not path.startswith("/console") or path.startswith(SKIP_PREFIXES) or path in SKIP_PATHS:
            continue
        if only and not path.startswith(only):
            continue
        url, before, missing = "", [], []
        for seg in path.strip("/").split("/"):
            m = re.fullmatch(r"\{(\w+)(?::\w+)?\}", seg)
            if m is None:
                before.append(seg)
                url += "/" + seg
                continue
            value = value_for(m.group(1), before, ids)
            if value is None:
                missing.append(m.group(1))
                value = ""
            url += "/" + value
        if path.endswith("/") and not url.endswith("/"):
            url += "/"
        if missing:
            skipped.append({"route": path, "why": f"no seeded value for {', '.join(missing)}"})
            continue
        values = {k: v for k, v in ids.items() if isinstance(v, (str, int))}
        queries = [q.format(**values) for q in PAGE_QUERIES.get(path, [""]) + EXTRA_QUERIES.get(path, [])]
        pages += [{"route": path, "url": url + (f"?{q}" if q else ""), "label": _label(url, q, ids)} for q in queries]
    return pages, skipped


def _label(url: str, query: str, ids: dict[str, Any]) -> str:
    """The URL as the results show it: seeded ids as <run>, <job>... (the run is the one with the most points)."""
    text = url + (f"?{query}" if query else "")
    for name in ("run", "run_small", "run_first", "job", "pipeline_run", "request", "eval"):
        value = ids.get(name)
        if isinstance(value, str) and value:
            text = text.replace(value, f"<{name}>")
    return text


def _missing_query(response: Any) -> list[str]:
    """The query parameters an error answer names as missing (plinth answers a missing field
    with 400 "missing required field 'key'", as a page under /console; FastAPI's own 422 names
    its ``loc``)."""
    text = response.text
    names = re.findall(r"missing required field (?:'|&#39;|&#x27;|&quot;|\")(\w+)", text)
    names += re.findall(r"\[\s*\"query\"\s*,\s*\"(\w+)\"\s*\]", text)
    return sorted(set(names))


@contextmanager
def profiled() -> Iterator[list[cProfile.Profile]]:
    """Profile this thread (the event loop: middleware, routing, the response) and what
    FastAPI runs in its thread pool (the page handlers, sync dependencies); yields both."""
    import fastapi.dependencies.utils as deps
    import fastapi.routing as routing

    original = routing.run_in_threadpool
    loop_prof, worker = cProfile.Profile(), cProfile.Profile()

    async def run_profiled(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def call() -> Any:
            worker.enable()  # requests run one at a time: one thread at a time enables it
            try:
                return func(*args, **kwargs)
            finally:
                worker.disable()

        return await original(call)

    routing.run_in_threadpool = run_profiled  # patched for the profile only
    deps.run_in_threadpool = run_profiled
    loop_prof.enable()
    try:
        yield [loop_prof, worker]
    finally:
        loop_prof.disable()
        routing.run_in_threadpool = original
        deps.run_in_threadpool = original


def top_functions(profiles: list[cProfile.Profile], n: int = 15) -> list[str]:
    """The ``n`` functions with the most cumulative time, the event loop's waiting left out."""
    out = io.StringIO()
    st = pstats.Stats(profiles[0], stream=out)
    for more in profiles[1:]:
        with contextlib.suppress(TypeError):  # a profile that recorded nothing
            st.add(more)
    st.sort_stats("cumulative").print_stats(n + 40)
    lines = [ln.rstrip() for ln in out.getvalue().splitlines()]
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    # the event loop waiting for the thread pool, and this client, are not the page's time
    noise = ("asyncio/", "selectors.py", "select.epoll", "/httpx/", "/anyio/", "threading.py", "concurrent/futures", "bench/console.py")
    kept = [ln for ln in lines[start + 1 :] if ln.strip() and not any(x in ln for x in noise)]
    return [lines[start], *kept[:n]] if lines else []


async def measure(
    app: Any, pages: list[dict[str, str]], ids: dict[str, Any], repeat: int, profile: bool, skipped: list[dict[str, str]]
) -> list[dict[str, Any]]:
    """Each page's times (a redirect is added to ``skipped`` instead)."""
    import httpx

    headers = {"Authorization": f"Bearer {ids['token']}"}
    results = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench", headers=headers, timeout=120) as client:
        for page in pages:
            url = page["url"]
            r = await client.get(url)  # warm up (templates compile, caches fill)
            for _ in range(3):  # a required query parameter at a time
                if r.status_code not in (400, 422):
                    break
                query = {q: QUERY_VALUES[q](ids) for q in _missing_query(r) if q in QUERY_VALUES and f"{q}=" not in url}
                if not query:
                    break
                url += ("&" if "?" in url else "?") + urlencode(query, doseq=True, safe="/,")
                r = await client.get(url)
            if 300 <= r.status_code < 400:  # /console -> /console/: not a page of its own
                skipped.append({"route": page["route"], "why": f"{r.status_code} redirect to {r.headers.get('location', '?')}"})
                continue
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                r = await client.get(url)
                _ = r.content
                times.append(time.perf_counter() - t0)
            row: dict[str, Any] = {
                "route": page["route"],
                "label": page["label"] + url[len(page["url"]) :],
                "url": url,
                "status": r.status_code,
                "kib": round(len(r.content) / 1024, 1),
                "content_type": r.headers.get("content-type", "").split(";")[0],
                **stats(times),
            }
            row["under_target"] = row["p95_ms"] < TARGET_MS
            print(
                f"  {url}: {r.status_code} p50 {row['p50_ms']} ms p95 {row['p95_ms']} ms max {row['max_ms']} ms {row['kib']} KiB",
                flush=True,
            )
            if profile and not row["under_target"]:
                with profiled() as profiles:
                    for _ in range(3):
                        await client.get(url)
                row["profile_top"] = top_functions(profiles)
            results.append(row)
    return results


# -- results ---------------------------------------------------------------------------------------
def write_md(r: dict[str, Any]) -> str:
    sc, c = r["scale"], r["seeded"]["counts"]
    lines = [title("Console page times", r["machine"]), "", machine_line(r["machine"]), ""]
    lines += [
        (
            f"Measured {r['measured_at']} with `bench/console.py`: every GET page under `/console` that existed then "
            f"({len(r['pages'])} pages), driven in process over ASGI (httpx, no network) on the services `plinth up` builds "
            f"(SQLite, `PLINTH_AUTH=true`, an admin API key, no model loaded); one warm-up load, then {r['repeat']} loads per page. "
            f"Target (issue 16): server time under {TARGET_MS:.0f} ms per page. The machine's load average was "
            f"{r['loadavg_before']} before the pages and {r['loadavg_after']} after (it is shared)."
        ),
        "",
        "### The store",
        "",
        (
            f"{c.get('runs', 0):,} tracking runs; {c.get('metric_points', 0):,} metric points, {c.get('big_run_points', 0):,} of them "
            f"in one run (the one run pages show); {c.get('request_log', 0):,} request log entries over 7 days across "
            f"{len(DEPLOYMENTS)} deployments and 3 model ids ({sc['vectors']:,} with a stored vector), the same requests as "
            f"{c.get('usage_records', 0):,} usage records; {c.get('guardrail_events', 0):,} guardrail events; "
            f"{c.get('audit_entries', 0):,} audit entries; {c.get('jobs', 0)} jobs, {c.get('knowledge_bases', 0)} knowledge bases, "
            f"{c.get('guardrail_policies', 0)} guardrail policies, {c.get('registry_versions', 0)} registry versions, "
            f"{c.get('deployments', 0)} deployments (one with a canary), {c.get('alert_rules', 0)} alert rules, "
            f"{c.get('pipelines', 0)} pipeline(s). Database: {r['db_mib']} MiB."
        ),
        "",
        f"Seeding took **{r['seed_s']} s**: " + ", ".join(f"{k} {v} s" for k, v in r["seeded"]["seconds"].items()) + ".",
        "",
    ]
    if r["seeded"]["skipped"]:
        lines += ["Seeds that failed (their pages show less):", ""]
        lines += [f"- {k}: {v}" for k, v in r["seeded"]["skipped"].items()]
        lines.append("")
    over = [p for p in r["pages"] if not p["under_target"] or p["status"] != 200]
    lines += [
        "### Pages",
        "",
        "| page | status | KiB | p50 ms | p95 ms | max ms | p95 < 300 ms |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for p in r["pages"]:
        ok = "yes" if p["under_target"] else "**no**"
        lines.append(f"| `{p['label']}` | {p['status']} | {p['kib']} | {p['p50_ms']} | {p['p95_ms']} | {p['max_ms']} | {ok} |")
    lines.append("")
    if r["skipped_routes"]:
        lines += ["Routes not measured:", ""]
        lines += [f"- `{s['route']}`: {s['why']}" for s in r["skipped_routes"]]
        lines.append("")
    n_ok = sum(1 for p in r["pages"] if p["under_target"] and p["status"] == 200)
    lines.append(f"{n_ok} of {len(r['pages'])} pages answered 200 with a p95 under {TARGET_MS:.0f} ms.")
    for p in over:
        if p.get("profile_top"):
            lines += ["", f"#### Where `{p['label']}` spends its time (cProfile, 3 loads, cumulative)", "", "```"]
            lines += p["profile_top"]
            lines.append("```")
    return "\n".join(lines) + "\n"


def run(scale: Scale, repeat: int, *, profile: bool = False, only: str | None = None, seed_value: int = 0) -> dict[str, Any]:
    from plinth.api.app import create_app

    result: dict[str, Any] = {"scale": asdict(scale), "repeat": repeat}
    with tempfile.TemporaryDirectory(prefix="plinth-bench-console-") as tmp:
        home = Path(tmp)
        s = build(home)
        try:
            t0 = time.perf_counter()
            seeded = seed(s, scale, random.Random(seed_value))
            result["seed_s"] = round(time.perf_counter() - t0, 1)
            app = create_app(s)
            pages, skipped = console_pages(app, seeded.ids, only)
            result["loadavg_before"] = _loadavg()
            result["pages"] = asyncio.run(measure(app, pages, seeded.ids, repeat, profile, skipped))
            result["loadavg_after"] = _loadavg()
            result["skipped_routes"] = skipped
            result["seeded"] = {
                "counts": seeded.counts,
                "seconds": seeded.seconds,
                "skipped": seeded.skipped,
                "ids": {k: v for k, v in seeded.ids.items() if k not in ("token", "runs")},
            }
            result["db_mib"] = round(sum(p.stat().st_size for p in home.rglob("*.db*") if p.is_file()) / 2**20, 1)
        finally:
            s.close()
    return result


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the data, 5 loads per page; write nothing (unless --results-dir)")
    ap.add_argument("--repeat", type=int, default=None, help="loads per page after the warm-up (default 20; 5 with --quick)")
    ap.add_argument("--scale", type=float, default=None, help="multiply every seeded count (default 1; 0.1 with --quick)")
    ap.add_argument("--profile", action="store_true", help="cProfile every page whose p50 is over the target")
    ap.add_argument("--only", default=None, help="measure only routes starting with this path (e.g. /console/runs)")
    add_results_args(ap)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["PLINTH_PRELOAD_DEFAULT_MODEL"] = "false"
    facts = describe(with_torch=False)
    print(machine_line(facts), flush=True)
    factor = args.scale if args.scale is not None else (0.1 if args.quick else 1.0)
    scale = Scale() if factor == 1 else Scale().scaled(factor)
    repeat = args.repeat or (5 if args.quick else 20)
    result = {"measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": facts}
    result.update(run(scale, repeat, profile=args.profile, only=args.only))
    md = write_md(result)
    print(md)
    results_dir = results_dir_of(args)
    if args.results_dir is None and (factor != 1 or args.only):
        results_dir = None  # a scaled or partial run is not the benchmark: bench/results/ keeps the last full one
    if results_dir is not None:
        write_results("console", facts, md, result, results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
