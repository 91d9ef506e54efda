"""Console pages of training: jobs and queues, runs and their curves, the registry with its
lineage, and evaluations (see plinth.console.render.NAV).

Curves are drawn from the tracking service's downsampled series (at most about 1,000 points
a metric, computed by the database), fetched by the charts as JSON, so a run of 100k steps
draws at once and a page never reads a run's points. Changes (submitting a fine-tune,
cancelling, retrying, setting aliases) are the pages' scripts calling the JSON API.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from plinth.console.render import SECURITY_HEADERS, page, principal_of
from plinth.domain.jobs import JOB_ID_RE, JobState
from plinth.domain.tracking import MetricPoint, ModelVersion, RunStatus
from plinth.errors import ErrorCode, PlinthError, not_found

router = APIRouter()

PAGE_SIZE = 50
#: the most runs a comparison overlays (each is a series of every chart)
MAX_COMPARE = 10
#: points a chart asks for per metric
CHART_POINTS = 1000


def _services(request: Request) -> Any:  # Any: tracking and registry are always built by build_services
    s = request.app.state.services
    if s.tracking is None or s.registry is None:  # pragma: no cover - always built
        raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, "tracking is not configured")
    return s


def _json(data: Any) -> JSONResponse:
    return JSONResponse(data, headers=SECURITY_HEADERS)


def chart_spec(series: dict[str, list[MetricPoint]], *, xlabel: str = "step", ylabel: str = "") -> dict[str, Any]:
    """Series of (step, value) on one x axis (the union of their steps; a series without a
    point at a step has null there, which the chart spans)."""
    steps = sorted({p.step for pts in series.values() for p in pts})
    out = []
    for label, pts in series.items():
        at = {p.step: p.value for p in pts}
        out.append({"label": label, "values": [at.get(s) for s in steps], "points": len(pts) < 30})
    return {"x": steps, "series": out, "xlabel": xlabel, "ylabel": ylabel, "height": 260}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _keys_of(params: list[str]) -> list[str]:
    """``key=a&key=b`` or ``key=a,b``: the metric keys (at most 8)."""
    return [k for v in params for k in v.split(",") if k][:8]


# -- jobs ------------------------------------------------------------------------------------
def _job_id(job_id: str) -> str:
    if not JOB_ID_RE.match(job_id):
        raise not_found("job", job_id)
    return job_id


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, state: str = "", kind: str = "", before: str = "") -> HTMLResponse:
    s = _services(request)
    states = (JobState(state),) if state in {st.value for st in JobState} else ()
    jobs = s.jobs.list(states=states, kind=kind or None, limit=PAGE_SIZE, before=before if JOB_ID_RE.match(before) else None)
    p = principal_of(request)
    usage = s.jobs.queue_usage()
    queues = []
    for q in s.jobs.list_queues():
        if p.server_admin or q.project in ("", p.project):
            u = usage.get(q.name, {})
            queues.append({"queue": q, "running": u.get("running", 0), "queued": u.get("queued", 0), "used": u.get("used")})
    return page(
        request,
        "training/jobs.html",
        title="Jobs",
        section="jobs",
        jobs=jobs,
        queues=queues,
        workers=s.jobs.live_workers(),
        kinds=sorted(k.kind for k in s.jobs.kinds()),
        states=[st.value for st in JobState],
        state=state,
        kind=kind,
        next_before=jobs[-1].id if len(jobs) == PAGE_SIZE else None,
        **_tune_choices(s),
    )


def _tune_choices(s: Any) -> dict[str, Any]:
    """What the fine-tune form offers: the catalog's models and the datasets' latest versions."""
    models = [m.name for m in s.catalog.list() if m.runtime != "openai"]  # an upstream API cannot be trained here
    datasets = [f"{d.name}@{v.version}" for d, v in s.datasets.list()]
    return {"tune_models": models, "tune_datasets": datasets}


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str) -> HTMLResponse:
    s = _services(request)
    job = s.jobs.get(_job_id(job_id))
    run = s.tracking.run_of_job(job.id)
    return page(request, "training/job.html", title=f"Job {job.name or job.id}", section="jobs", job=job, run=run)


@router.get("/jobs/{job_id}/loss.json")
def job_loss(request: Request, job_id: str) -> JSONResponse:
    """The loss curve of the job's run (empty until the job started its run)."""
    s = _services(request)
    job = s.jobs.get(_job_id(job_id))
    run = s.tracking.run_of_job(job.id)
    if run is None:
        return _json({"x": [], "series": []})
    keys = [k for k in s.tracking.metric_keys(run.id) if k.endswith("loss")]
    series = s.tracking.downsampled(run.id, keys, CHART_POINTS) if keys else {}
    return _json(chart_spec(series, ylabel="loss"))


# -- runs ------------------------------------------------------------------------------------
@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, page_no: int = Query(1, alias="page", ge=1, le=100_000), kind: str = "", status: str = "") -> HTMLResponse:
    s = _services(request)
    st = RunStatus(status) if status in {r.value for r in RunStatus} else None
    runs, total = s.tracking.page(kind=kind or None, status=st, offset=(page_no - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    rows = [{"run": r, "summary": _summary_of(r.summary)} for r in runs]
    return page(
        request,
        "training/runs.html",
        title="Runs",
        section="runs",
        rows=rows,
        total=total,
        page_no=page_no,
        pages=max(1, -(-total // PAGE_SIZE)),
        kind=kind,
        status=status,
        statuses=[r.value for r in RunStatus],
        **_tune_choices(s),
    )


def _summary_of(summary: dict[str, Any], most: int = 3) -> list[tuple[str, Any]]:
    """A few final metrics to show in a list: losses first."""
    numeric = [(k, v) for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    numeric.sort(key=lambda kv: (not kv[0].endswith("loss"), kv[0]))
    return numeric[:most]


def _compare_ids(ids: list[str]) -> list[str]:
    out: list[str] = []
    for v in ids:
        for part in v.split(","):
            if part and part not in out:
                out.append(part)
    return out[:MAX_COMPARE]


@router.get("/runs/compare", response_class=HTMLResponse)
def compare_page(request: Request, ids: list[str] = Query(default_factory=list)) -> HTMLResponse:
    s = _services(request)
    run_ids = _compare_ids(ids)
    if len(run_ids) < 2:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "choose at least two runs to compare", param="ids")
    cmp = s.tracking.compare(run_ids)
    keys = sorted({k for r in run_ids for k in s.tracking.metric_keys(r)})
    differing = set(cmp["differing_params"])
    return page(
        request,
        "training/compare.html",
        title="Compare runs",
        section="runs",
        runs=cmp["runs"],
        params=cmp["params"],
        differing=differing,
        metrics=cmp["metrics"],
        keys=keys,
        ids=",".join(run_ids),
    )


@router.get("/runs/compare/series.json")
def compare_series(request: Request, ids: list[str] = Query(default_factory=list), key: str = Query(..., max_length=128)) -> JSONResponse:
    """One metric of several runs overlaid (each run a series, labelled by its name)."""
    s = _services(request)
    series: dict[str, list[MetricPoint]] = {}
    for run_id in _compare_ids(ids):
        run = s.tracking.get(run_id)
        label = run.name if run.name not in series else f"{run.name} ({run.id[:8]})"
        series[label] = s.tracking.downsampled(run_id, [key], CHART_POINTS).get(key, [])
    return _json(chart_spec(series, ylabel=key))


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str) -> HTMLResponse:
    s = _services(request)
    run = s.tracking.get(run_id)
    keys = s.tracking.metric_keys(run_id)
    loss_keys = [k for k in keys if k.endswith("loss")]
    other_keys = [k for k in keys if not k.endswith("loss")]
    return page(
        request,
        "training/run.html",
        title=f"Run {run.name}",
        section="runs",
        run=run,
        params=sorted(_flatten(run.params).items()),
        summary=sorted(run.summary.items()),
        keys=keys,
        loss_keys=loss_keys,
        other_keys=other_keys,
        artifacts=s.tracking.artifacts_of(run_id),
    )


@router.get("/runs/{run_id}/series.json")
def run_series(request: Request, run_id: str, key: list[str] = Query(default_factory=list)) -> JSONResponse:
    """The run's metrics (``key=...``, repeated or comma-separated; all when none) downsampled
    on the server, as a chart spec."""
    s = _services(request)
    keys = _keys_of(key)
    series = s.tracking.downsampled(run_id, keys or None, CHART_POINTS)
    return _json(chart_spec(series, ylabel=keys[0] if len(keys) == 1 else ""))


# -- registry --------------------------------------------------------------------------------
@router.get("/registry", response_class=HTMLResponse)
def registry_page(request: Request) -> HTMLResponse:
    return page(request, "training/registry.html", title="Registry", section="registry", models=_services(request).registry.list())


@router.get("/registry/{name}", response_class=HTMLResponse)
def registered_page(request: Request, name: str) -> HTMLResponse:
    reg = _services(request).registry
    model = reg.get(name)
    versions = list(reversed(reg.versions(name)))
    by_version: dict[int, list[str]] = {}
    for alias, v in sorted(model.aliases.items()):
        by_version.setdefault(v, []).append(alias)
    return page(
        request, "training/model.html", title=f"Model {name}", section="registry", model=model, versions=versions, by_version=by_version
    )


def _deployments_serving(s: Any, mv: ModelVersion) -> list[dict[str, Any]]:
    """Deployments whose stable or canary revision serves this version."""
    if s.deployments is None:
        return []
    out = []
    for dep in s.deployments.list():
        for role, number in (("stable", dep.stable_revision), ("canary", dep.canary_revision)):
            if number is None:
                continue
            rev = s.deployments.revision(dep.name, number)
            if any(t.served == mv.ref or t.version == mv.ref for t in rev.targets):
                out.append({"name": dep.name, "role": role, "revision": number})
    return out


@router.get("/registry/{name}/{version}", response_class=HTMLResponse)
def version_page(request: Request, name: str, version: str) -> HTMLResponse:
    s = _services(request)
    if not version.isdigit() or not 1 <= int(version) <= 2**31 - 1:
        raise not_found("model version", f"{name}@{version}")
    mv = s.registry.version(name, int(version))
    model = s.registry.get(name)
    aliases = sorted(a for a, v in model.aliases.items() if v == mv.version)
    deployments = _deployments_serving(s, mv)
    run = None
    if mv.run_id:
        try:
            run = s.tracking.get(mv.run_id)
        except PlinthError:
            run = None
    return page(
        request,
        "training/version.html",
        title=f"{mv.ref}",
        section="registry",
        mv=mv,
        run=run,
        aliases=aliases,
        deployments=deployments,
        lineage=_lineage(mv, run, aliases, deployments),
        reports=s.registry.reports(name, mv.version),
    )


def _lineage(mv: ModelVersion, run: Any, aliases: list[str], deployments: list[dict[str, Any]]) -> dict[str, Any]:
    """Boxes of the lineage graph, left to right: base model, dataset, run (job), this version,
    then what serves it (aliases, deployments). Text only: the template escapes it."""
    cols: list[list[dict[str, str]]] = [
        [{"label": "base model", "text": mv.base_model, "href": f"/console/models/{mv.base_model}"}],
        [{"label": "dataset", "text": mv.dataset or "-", "href": ""}],
        [
            {
                "label": "run",
                "text": run.name if run else (mv.run_id or "-"),
                "href": f"/console/runs/{mv.run_id}" if run else "",
            }
        ],
        [{"label": "version", "text": mv.ref, "href": ""}],
    ]
    if run is not None and run.job_id:
        cols[2].append({"label": "job", "text": run.job_id, "href": f"/console/jobs/{run.job_id}"})
    serving = [{"label": "alias", "text": f"{mv.name}@{a}", "href": f"/console/registry/{mv.name}"} for a in aliases]
    serving += [{"label": f"deployment ({d['role']})", "text": d["name"], "href": f"/console/deployments/{d['name']}"} for d in deployments]
    if serving:
        cols.append(serving)
    box_w, box_h, gap_x, gap_y = 190, 44, 40, 14
    boxes, edges = [], []
    for ci, col in enumerate(cols):
        for ri, node in enumerate(col):
            x, y = 10 + ci * (box_w + gap_x), 10 + ri * (box_h + gap_y)
            text = node["text"] if len(node["text"]) <= 26 else node["text"][:25] + "…"
            boxes.append({**node, "short": text, "x": x, "y": y, "w": box_w, "h": box_h})
    for ci in range(len(cols) - 1):
        x1 = 10 + ci * (box_w + gap_x) + box_w
        for ri in range(len(cols[ci + 1])):
            y2 = 10 + ri * (box_h + gap_y) + box_h // 2
            edges.append({"x1": x1, "y1": 10 + box_h // 2, "x2": x1 + gap_x, "y2": y2})
    height = 20 + max(len(c) for c in cols) * (box_h + gap_y)
    return {"boxes": boxes, "edges": edges, "width": 20 + len(cols) * (box_w + gap_x), "height": height}


# -- evaluations -----------------------------------------------------------------------------
@router.get("/evaluations", response_class=HTMLResponse)
def evaluations_page(request: Request, models: list[str] = Query(default_factory=list)) -> HTMLResponse:
    s = _services(request)
    reports = s.tracking.eval_reports()
    refs = [m.strip() for v in models for m in v.split(",") if m.strip()][:MAX_COMPARE]
    comparison = _comparison(s, refs) if refs else None
    return page(
        request,
        "training/evaluations.html",
        title="Evaluations",
        section="evaluations",
        reports=reports[:100],
        total=len(reports),
        refs=", ".join(refs),
        comparison=comparison,
    )


def _comparison(s: Any, refs: list[str]) -> dict[str, Any]:
    """``/api/v1/evaluations/compare`` as a table (each metric with its delta against the
    first model) and a bar chart (one group of bars per metric)."""
    from plinth.tuning.evaluation import compare

    cmp = compare(s, refs)
    keys: list[str] = cmp["metrics"]
    rows = []
    first: dict[str, Any] = {}
    for i, m in enumerate(cmp["models"]):
        metrics = (m["report"] or {}).get("metrics", {}) if m["report"] else {}
        if i == 0:
            first = metrics
        cells = []
        for k in keys:
            v = metrics.get(k)
            base = first.get(k)
            delta = v - base if i > 0 and isinstance(v, int | float) and isinstance(base, int | float) else None
            cells.append({"value": v, "delta": delta})
        rows.append({"model": m["model"], "version": m["version"], "report": m["report"], "cells": cells})
    # grouped bars: metric k's bar of model m at x = k * (models + 1) + m (a gap between groups);
    # each model is a series with values at its own positions only
    width = len(rows) + 1
    xs = list(range(len(keys) * width))
    series = []
    for mi, r in enumerate(rows):
        values: list[float | None] = [None] * len(xs)
        for ki, c in enumerate(r["cells"]):
            if isinstance(c["value"], int | float):
                values[ki * width + mi] = float(c["value"])
        series.append({"label": r["model"], "values": values})
    chart = {"x": xs, "series": series, "bars": True, "xlabel": "metrics, in the table's order", "height": 240, "ymin": 0}
    return {"metric_keys": keys, "rows": rows, "chart": chart}
