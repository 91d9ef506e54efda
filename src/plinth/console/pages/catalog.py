"""Console pages of the catalog side: models and adapters, datasets, usage and feedback, API
keys and the audit log (see plinth.console.render.NAV).

Every page reads through the services and shows a bounded amount: lists page through the
store (audit log, feedback) or are small by nature (catalog models, datasets, keys); changes
are made by the pages' buttons and forms calling the JSON API (``/api/v1``).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from plinth.console.render import fragment, page, principal_of
from plinth.domain.auth import Scope
from plinth.domain.numbers import API_INT_MAX
from plinth.errors import ErrorCode, PlinthError
from plinth.services import Services, runtime_status
from plinth.usage.service import UsageService, parse_time

router = APIRouter()

ROWS_PAGE = 20
AUDIT_PAGE = 50
KEYS_PAGE = 100
FEEDBACK_PAGE = 50
FEEDBACK_MAX = 1000
USAGE_ROWS_MAX = 200
#: the windows the usage page offers (duration back from now -> the bucket of its chart)
USAGE_WINDOWS = {"24h": "1h", "7d": "1d", "30d": "1d"}
_WINDOW = "^(24h|7d|30d)$"
USAGE_TABLES = {"model": "By model", "key": "By API key", "day": "By day (UTC)"}


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _require_admin(request: Request, what: str) -> None:
    """The keys and the audit log are the ``admin`` scope's, as in the API."""
    if not principal_of(request).allows(Scope.ADMIN):
        raise PlinthError(ErrorCode.PERMISSION_DENIED, f"{what} needs the admin scope")


# -- models ------------------------------------------------------------------------------------
@router.get("/models")
def models(request: Request) -> HTMLResponse:
    s = _services(request)
    loaded = {lm.record.name for lm in s.models.loaded()}
    adapters = Counter(a.base_model for a in s.catalog.list_adapters())
    rows = [{"record": m, "loaded": m.name in loaded, "adapters": adapters.get(m.name, 0)} for m in s.catalog.list()]
    return page(
        request,
        "catalog/models.html",
        title="Models",
        section="models",
        models=rows,
        runtimes=[r.public_dict() for r in runtime_status()],
        default_model=s.settings.default_model,
    )


@router.get("/models/{name}")
def model(name: str, request: Request) -> HTMLResponse:
    s = _services(request)
    record = s.catalog.get(name)  # 404 page for a model that does not exist
    lm = next((m for m in s.models.loaded() if m.record.name == record.name), None)
    loaded_adapters = set(lm.runtime.loaded_adapters()) if lm is not None else set()
    adapters = [
        {"record": a, "loaded": bool({a.digest, a.gguf_digest} & loaded_adapters), "attachments": s.attachments.get(a.model_id)}
        for a in s.catalog.list_adapters(record.name)
    ]
    engine: dict[str, Any] = {}
    if lm is not None:
        try:
            engine = dict(lm.runtime.stats())
        except Exception:  # a runtime that cannot say leaves the engine box empty, never a failed page
            engine = {}
    metadata = {k: v for k, v in record.public_dict().items() if k not in ("parameters",)}
    return page(
        request,
        "catalog/model.html",
        title=f"Model {record.name}",
        section="models",
        model=record,
        metadata=metadata,
        loaded=lm is not None,
        load_seconds=lm.load_seconds if lm is not None else None,
        engine=engine,
        adapters=adapters,
        attachments=s.attachments.get(record.name),
    )


# -- datasets ----------------------------------------------------------------------------------
@router.get("/datasets")
def datasets(request: Request) -> HTMLResponse:
    s = _services(request)
    return page(request, "catalog/datasets.html", title="Datasets", section="datasets", datasets=s.datasets.list())


@router.get("/datasets/{name}")
def dataset(
    request: Request,
    name: str,
    version: str = Query("latest", max_length=20, description="the version the stats and rows show"),
    split: str = Query("all", pattern="^(all|train|validation)$"),
    offset: int = Query(0, ge=0, le=API_INT_MAX),
    diff: str | None = Query(None, max_length=50, description="A..B: the diff of two versions"),
    diff_from: str | None = Query(None, alias="from", max_length=20),
    diff_to: str | None = Query(None, alias="to", max_length=20),
) -> HTMLResponse:
    s = _services(request)
    ds = s.datasets.dataset(name)  # 404 page for a dataset that does not exist
    versions = s.datasets.versions(name)
    current = s.datasets.get(f"{name}@{version}")
    rows, total = s.datasets.rows(current.ref, split=split, offset=offset, limit=ROWS_PAGE)  # type: ignore[arg-type]
    if diff and ".." in diff:
        diff_from, _, diff_to = diff.partition("..")
    compared = None
    if diff_from and diff_to:
        compared = s.datasets.diff(f"{name}@{diff_from}", f"{name}@{diff_to}", samples=5).public_dict()
    default_from = versions[-2].version if len(versions) >= 2 else versions[0].version
    return page(
        request,
        "catalog/dataset.html",
        title=f"Dataset {ds.name}",
        section="datasets",
        dataset=ds,
        versions=list(reversed(versions)),
        current=current,
        rows=rows,
        total=total,
        split=split,
        offset=offset,
        page_size=ROWS_PAGE,
        diff=compared,
        diff_from=diff_from or str(default_from),
        diff_to=diff_to or str(versions[-1].version),
    )


# -- usage and feedback ------------------------------------------------------------------------
# The page answers at once with the window's totals and the feedback; its chart and its three
# tables each come in their own request (one grouped query each, run in parallel by the
# browser), so a week of 100,000 usage records never makes one slow answer.
@router.get("/usage")
def usage(
    request: Request,
    since: str = Query("24h", pattern=_WINDOW, description="the window: 24h, 7d or 30d"),
    feedback_limit: int = Query(FEEDBACK_PAGE, ge=1, le=FEEDBACK_MAX),
) -> HTMLResponse:
    u = _usage(request)
    totals = u.summary(group_by=(), since=since)["totals"]
    feedback = u.list_feedback(limit=feedback_limit + 1)
    return page(
        request,
        "catalog/usage.html",
        title="Usage",
        section="usage",
        since=since,
        windows=list(USAGE_WINDOWS),
        bucket=USAGE_WINDOWS[since],
        totals=totals,
        tables=USAGE_TABLES,
        feedback=feedback[:feedback_limit],
        feedback_more=len(feedback) > feedback_limit and feedback_limit < FEEDBACK_MAX,
        feedback_next=min(FEEDBACK_MAX, feedback_limit + FEEDBACK_PAGE),
    )


@router.get("/usage/series.json")
def usage_series(request: Request, since: str = Query("24h", pattern=_WINDOW)) -> dict[str, Any]:
    """The usage chart's spec: requests and errors per bucket of the window."""
    bucket = USAGE_WINDOWS[since]
    rows = _usage(request).summary(group_by=(), since=since, bucket=bucket)["rows"]
    return {
        "x": [int(datetime.fromisoformat(r["bucket"]).timestamp()) for r in rows],
        "series": [
            {"label": "requests", "values": [r["requests"] for r in rows], "points": True},
            {"label": "errors", "values": [r["errors"] for r in rows], "points": True},
        ],
        "time": True,
        "ylabel": f"requests per {bucket}",
        "height": 220,
        "ymin": 0,
    }


@router.get("/usage/table")
def usage_table(
    request: Request, by: str = Query("model", pattern="^(model|key|day)$"), since: str = Query("24h", pattern=_WINDOW)
) -> HTMLResponse:
    """One of the usage page's tables (an htmx fragment): by model, by key or by day."""
    u = _usage(request)
    if by == "day":
        rows = [{**r, "day": r["bucket"][:10]} for r in u.summary(group_by=(), since=since, bucket="1d")["rows"]]
        rows.reverse()  # newest day first
    else:
        rows = sorted(u.summary(group_by=(by,), since=since)["rows"], key=lambda r: r["requests"], reverse=True)
    return fragment("catalog/usage_table.html", by=by, label=USAGE_TABLES[by], rows=rows[:USAGE_ROWS_MAX], more=len(rows) > USAGE_ROWS_MAX)


def _usage(request: Request) -> UsageService:
    u = _services(request).usage
    if u is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "usage accounting is not enabled on this server")
    return u


# -- API keys ----------------------------------------------------------------------------------
@router.get("/keys")
def keys(request: Request, revoked: bool = Query(False), offset: int = Query(0, ge=0, le=API_INT_MAX)) -> HTMLResponse:
    _require_admin(request, "the API keys page")
    s = _services(request)
    if s.auth is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "API keys are not enabled on this server")
    every = s.auth.list_keys(include_revoked=revoked)
    return page(
        request,
        "catalog/keys.html",
        title="API keys",
        section="keys",
        keys=every[offset : offset + KEYS_PAGE],
        total=len(every),
        offset=offset,
        page_size=KEYS_PAGE,
        revoked=revoked,
        scopes=[sc.value for sc in Scope],
        auth_on=s.auth.enabled,
        now=datetime.now(UTC),
    )


def _pretty(value: Any) -> str:
    """JSON for people (autoescaped where shown): indented, non-ASCII text as written."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True) if value else ""


# -- audit log ---------------------------------------------------------------------------------
@router.get("/audit")
def audit(
    request: Request,
    actor: str | None = Query(None, max_length=256),
    action: str | None = Query(None, max_length=256),
    target: str | None = Query(None, max_length=1024),
    since: str | None = Query(None, max_length=40),
    before_id: int | None = Query(None, ge=1, le=API_INT_MAX),
) -> HTMLResponse:
    _require_admin(request, "the audit log")
    s = _services(request)
    if s.audit is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "the audit log is not enabled on this server")
    filters = {"actor": actor or None, "action": action or None, "target": target or None}
    entries = s.audit.list(
        actor=filters["actor"],
        action=filters["action"],
        target=filters["target"],
        since=parse_time(since or None, "since"),
        before_id=before_id,
        limit=AUDIT_PAGE + 1,
    )
    more = len(entries) > AUDIT_PAGE
    entries = entries[:AUDIT_PAGE]
    return page(
        request,
        "catalog/audit.html",
        title="Audit log",
        section="audit",
        entries=[{"entry": e, **{part: _pretty(getattr(e, part)) for part in ("details", "before", "after")}} for e in entries],
        filters={**{k: v or "" for k, v in filters.items()}, "since": since or ""},
        next_before_id=entries[-1].id if more and entries else None,
        paged=before_id is not None,
    )
