"""Console pages: knowledge bases, guardrails and the chat playground (see
plinth.console.render.NAV).

Pages only read (through the services); every change (create a knowledge base, upload or
remove a document, test a policy, chat) is made by the pages' scripts (``static/knowledge.js``,
``static/chat.js``) calling the JSON API, so its validation, auth and audit apply.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from plinth.console.render import page
from plinth.errors import ErrorCode, PlinthError

router = APIRouter()

#: rows a list page shows at once
PAGE_SIZE = 50
#: knowledge bases and policies listed on one page (each row costs a small lookup)
MAX_LISTED = 100
#: the guardrail events the chart aggregates (the newest; the store answers 1,000 at most per call)
EVENTS_CHARTED = 1000
ACTIONS = ("block", "redact", "flag")


def _services(request: Request) -> Any:
    return request.app.state.services


def _knowledge(request: Request) -> Any:
    k = _services(request).knowledge
    if k is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "knowledge bases are not enabled on this server")
    return k


def _guardrails(request: Request) -> Any:
    g = _services(request).guardrails
    if g is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "guardrails are not enabled on this server")
    return g


# -- knowledge bases -------------------------------------------------------------------------
@router.get("/knowledge")
def knowledge_bases(request: Request, page_no: int = Query(1, alias="page", ge=1, le=100_000)) -> HTMLResponse:
    knowledge = _knowledge(request)
    every = knowledge.list()
    start = (page_no - 1) * MAX_LISTED
    rows = []
    for kb in every[start : start + MAX_LISTED]:
        latest = next((v for v in reversed(knowledge.versions(kb.name)) if v.version == kb.current_version), None)
        rows.append(
            {
                "kb": kb,
                "documents": latest.documents if latest else 0,
                "chunks": latest.chunks if latest else 0,
                "versions": kb.current_version - kb.oldest_version + 1 if kb.current_version else 0,
            }
        )
    return page(
        request,
        "knowledge/index.html",
        title="Knowledge bases",
        section="knowledge",
        rows=rows,
        total=len(every),
        page_no=page_no,
        has_next=start + MAX_LISTED < len(every),
    )


@router.get("/knowledge/{name}")
def knowledge_base(
    request: Request,
    name: str,
    page_no: int = Query(1, alias="page", ge=1, le=1_000_000),
    version: int | None = Query(None, ge=0, le=2**31 - 1),
) -> HTMLResponse:
    knowledge = _knowledge(request)
    kb, shown, docs = knowledge.documents(name if version is None else f"{name}@{version}")  # NOT_FOUND: the 404 page
    versions = knowledge.versions(kb.name)
    start = (page_no - 1) * PAGE_SIZE
    return page(
        request,
        "knowledge/detail.html",
        title=f"Knowledge base {kb.name}",
        section="knowledge",
        kb=kb,
        shown=shown,
        pinned=version is not None,
        documents=docs[start : start + PAGE_SIZE],
        total_documents=len(docs),
        total_chunks=sum(d.chunk_count for d in docs),
        first=start + 1,
        page_no=page_no,
        has_next=start + PAGE_SIZE < len(docs),
        versions=list(reversed(versions))[:PAGE_SIZE],
        more_versions=max(0, len(versions) - PAGE_SIZE),
    )


# -- guardrails ------------------------------------------------------------------------------
def _rules(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "detector": str(r.get("id") or r.get("detector")),
            "kind": str(r.get("detector", "")),
            "on": r.get("on") or [],
            "action": r.get("action"),
        }
        for r in spec.get("rules") or []
        if isinstance(r, dict)
    ]


def events_chart(events: list[Any], now: datetime | None = None) -> dict[str, Any]:
    """Guardrail findings per hour (spans up to three days) or per day, one series per action,
    as a chart spec for console.js; ``events`` are bounded by the caller."""
    stamps = [e for e in events if e.created_at is not None]
    if not stamps:
        return {"x": [], "series": [], "time": True, "bucket": "hour"}

    def ts(e: Any) -> float:
        when = e.created_at if e.created_at.tzinfo else e.created_at.replace(tzinfo=UTC)
        return float(when.timestamp())

    first = min(ts(e) for e in stamps)
    last = max(max(ts(e) for e in stamps), (now or datetime.now(UTC)).timestamp())
    size = 3600 if last - first <= 3 * 86400 else 86400
    lo, hi = int(first // size), int(last // size)
    if hi - lo > 400:  # bounded however old the oldest charted event is
        lo = hi - 400
    counts: Counter[tuple[int, str]] = Counter()
    for e in stamps:
        b = int(ts(e) // size)
        if b >= lo:
            counts[(b, e.action.value)] += 1
    xs = list(range(lo, hi + 1))
    series = [{"label": action, "values": [counts[(b, action)] for b in xs]} for action in ACTIONS if any(counts[(b, action)] for b in xs)]
    return {
        "x": [b * size for b in xs],
        "series": series,
        "time": True,
        "bars": True,
        "ylabel": "findings per " + ("hour" if size == 3600 else "day"),
        "height": 200,
        "bucket": "hour" if size == 3600 else "day",
    }


@router.get("/guardrails")
def guardrails(request: Request) -> HTMLResponse:
    g = _guardrails(request)
    summaries = g.list()
    policies = []
    for s in summaries[:MAX_LISTED]:
        pv = g.get(f"{s.name}@{s.latest_version}")
        policies.append({"summary": s, "rules": _rules(pv.spec)})
    events = g.events(limit=EVENTS_CHARTED)
    by_label = Counter((e.label, e.action.value) for e in events)
    return page(
        request,
        "knowledge/guardrails.html",
        title="Guardrails",
        section="guardrails",
        policies=policies,
        more_policies=max(0, len(summaries) - MAX_LISTED),
        detectors=g.detectors(),
        chart=events_chart(events),
        charted=len(events),
        top_labels=by_label.most_common(10),
        recent=events[:20],
    )


@router.get("/guardrails/{name}")
def guardrail_policy(request: Request, name: str, version: int | None = Query(None, ge=1, le=2**31 - 1)) -> HTMLResponse:
    g = _guardrails(request)
    pv = g.get(name if version is None else f"{name}@{version}")  # NOT_FOUND: the 404 page
    versions = g.versions(pv.name)
    summary = next((s for s in g.list() if s.name == pv.name), None)
    return page(
        request,
        "knowledge/policy.html",
        title=f"Guardrail policy {pv.name}",
        section="guardrails",
        pv=pv,
        builtin=bool(summary and summary.builtin),
        latest=max((v.version for v in versions), default=pv.version),
        rules=_rules(pv.spec),
        as_yaml=g.as_yaml(pv),
        as_json=json.dumps(pv.spec, indent=2, ensure_ascii=False),
        versions=list(reversed(versions))[:PAGE_SIZE],
        recent=g.events(policy=pv.name, limit=20),
    )


# -- chat playground -------------------------------------------------------------------------
def chat_choices(services: Any) -> list[tuple[str, list[dict[str, str]]]]:
    """The model ids the chat can call, grouped as /v1/models and /api/v1/deployments list them."""
    groups: list[tuple[str, list[dict[str, str]]]] = []
    groups.append(("Models", [{"id": m.name, "note": ""} for m in services.catalog.list()]))
    groups.append(("Adapters", [{"id": a.model_id, "note": f"on {a.base_model}"} for a in services.catalog.list_adapters()]))
    if services.registry is not None:
        groups.append(("Registered models", [{"id": r["id"], "note": f"serves {r['parent']}"} for r in services.registry.served_ids()]))
    if services.deployments is not None:
        groups.append(("Deployments", [{"id": d.name, "note": "deployment"} for d in services.deployments.list()]))
    return [(label, items) for label, items in groups if items]


@router.get("/chat")
def chat(request: Request, model: str = "") -> HTMLResponse:
    services = _services(request)
    knowledge = services.knowledge.list()[:MAX_LISTED] if services.knowledge is not None else []
    return page(
        request,
        "knowledge/chat.html",
        title="Chat",
        section="chat",
        groups=chat_choices(services),
        selected=model,
        knowledge_bases=[kb.name for kb in knowledge],
        max_tokens_limit=int(services.settings.max_tokens_limit),
    )
