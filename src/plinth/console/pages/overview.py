"""Console overview: is the server healthy, what is loaded, how much traffic, what fires, what
ran and what is deployed — each part one bounded query, so the page stays fast however long
the request log and the job history grow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from plinth.console.render import NAV, page, principal_of
from plinth.domain.alerts import AlertState
from plinth.errors import PlinthError
from plinth.services import Services

router = APIRouter()

#: the traffic chart: the last hour in one-minute buckets
TRAFFIC_MINUTES = 60
LATEST_JOBS = 5
LATEST_ALERT_EVENTS = 5
MAX_DEPLOYMENTS = 10


@router.get("/")
def overview(request: Request) -> HTMLResponse:
    s: Services = request.app.state.services
    traffic, traffic_total = _traffic(s)
    return page(
        request,
        "overview.html",
        title="Overview",
        section="overview",
        health=_health(request, s),
        loaded=_loaded(s),
        catalog_size=len(s.catalog.list()),
        traffic=traffic,
        traffic_total=traffic_total,
        firing=_firing(request, s),
        alert_events=_alert_events(request, s),
        jobs=s.jobs.list(limit=LATEST_JOBS),
        deployments=_deployments(request, s),
        sections=[(key, label, href) for key, label, href in NAV if key != "overview"],
    )


def _health(request: Request, s: Services) -> dict[str, Any]:
    """What ``/readyz`` checks: the store answers; the default model's preload state."""
    try:
        s.store.ping()
        store = "ok"
    except PlinthError as e:
        store = e.message
    preload = str(getattr(request.app.state, "preload", "disabled"))
    ok = store == "ok" and preload in ("loaded", "disabled")
    return {"ok": ok, "store": store, "default_model": s.settings.default_model, "preload": preload}


def _loaded(s: Services) -> list[dict[str, Any]]:
    out = []
    for lm in s.models.loaded():
        try:
            healthy = lm.runtime.health().ok
        except Exception:  # a runtime that cannot say is shown as not healthy, never a failed page
            healthy = False
        out.append(
            {
                "name": lm.record.name,
                "runtime": lm.record.runtime,
                "format": lm.record.format.value,
                "size_bytes": lm.record.size_bytes or None,
                "healthy": healthy,
                "running": lm.admission.running,
                "queued": lm.admission.queued,
                "load_seconds": lm.load_seconds,
                "loaded_at": datetime.fromtimestamp(lm.loaded_at, UTC),
            }
        )
    return out


def _traffic(s: Services) -> tuple[dict[str, Any], int]:
    """Requests per minute over the last hour: one grouped query over the usage records of the
    hour (at most 60 rows back), the minutes without requests filled with zeros."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=TRAFFIC_MINUTES - 1)
    counts: dict[int, tuple[int, int]] = {}
    if s.usage is not None:
        summary = s.usage.summary(group_by=(), since=start, bucket="1m")
        for row in summary["rows"]:
            at = int(datetime.fromisoformat(row["bucket"]).timestamp())
            counts[at] = (int(row["requests"]), int(row["errors"]))
    xs = [int((start + timedelta(minutes=i)).timestamp()) for i in range(TRAFFIC_MINUTES)]
    spec = {
        "x": xs,
        "series": [
            {"label": "requests", "values": [counts.get(x, (0, 0))[0] for x in xs]},
            {"label": "errors", "values": [counts.get(x, (0, 0))[1] for x in xs]},
        ],
        "time": True,
        "ylabel": "requests / min",
        "height": 180,
        "bars": False,
        "ymin": 0,
    }
    return spec, sum(c[0] for c in counts.values())


def _firing(request: Request, s: Services) -> list[Any]:
    """Rules firing or about to (pending), of the deployments the caller may see (as the API shows them)."""
    if s.alerts is None:
        return []
    p = principal_of(request)
    rules = [r for r in s.alerts.list() if r.enabled and r.state in (AlertState.FIRING, AlertState.PENDING)]
    return [r for r in rules if p.allows_model(r.expr.deployment)]


def _alert_events(request: Request, s: Services) -> list[Any]:
    """The latest changes of alert rules' states (one bounded query), of rules the caller may see."""
    if s.alerts is None:
        return []
    p = principal_of(request)
    visible = {r.name for r in s.alerts.list() if p.allows_model(r.expr.deployment)}
    return [e for e in s.alerts.events(limit=LATEST_ALERT_EVENTS) if e.rule in visible]


def _deployments(request: Request, s: Services) -> list[dict[str, Any]]:
    if s.deployments is None:
        return []
    p = principal_of(request)
    oldest = datetime.min.replace(tzinfo=UTC)
    visible = [d for d in s.deployments.list() if p.allows_model(d.name)]
    deps = sorted(visible, key=lambda d: d.updated_at or d.created_at or oldest, reverse=True)
    out = []
    for d in deps[:MAX_DEPLOYMENTS]:
        split = [
            {"revision": rev, "percent": pct, "role": "canary" if rev == d.canary_revision else "stable"}
            for rev, pct in d.traffic().items()
            if pct > 0
        ]
        out.append({"name": d.name, "description": d.description, "split": split, "updated_at": d.updated_at})
    return out
