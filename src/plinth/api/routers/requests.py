"""``/api/v1/requests`` (the request log: list, show, export as JSONL or Parquet) and
``/api/v1/deployments/{name}/quality`` (quality signals per revision over a window) — canonical
error shape, ``read`` scope like usage (ADR 0090). Every answer is the caller's project's."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse

from plinth.api.auth import check_deployment_access
from plinth.api.deps import services_of
from plinth.api.openapi import errors
from plinth.domain.numbers import API_INT_MAX, VERSION_MAX
from plinth.domain.requests import PAGE_MAX, RequestQuery
from plinth.errors import ErrorCode, PlinthError
from plinth.oversight.requests import OUTCOMES, RequestLogService

router = APIRouter(prefix="/api/v1", tags=["requests"])

_TIME = "ISO time or a duration back from now (15m, 24h, 7d)"
_MEDIA = {"jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}


def _svc(request: Request) -> RequestLogService:
    r = services_of(request).requests
    if r is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "the request log is not enabled on this server")
    return r


def _query(
    svc: RequestLogService,
    *,
    deployment: str | None,
    revision: int | None,
    model: str | None,
    adapter: str | None,
    key: str | None,
    outcome: str | None,
    flagged: bool | None,
    has_findings: bool | None,
    since: str | None,
    until: str | None,
    before_id: int | None,
) -> RequestQuery:
    return svc.query(
        deployment=deployment,
        revision=revision,
        model=model,
        adapter=adapter,
        key=key,
        outcome=outcome,
        flagged=flagged,
        has_findings=has_findings,
        since=since,
        until=until,
        before=before_id,
    )


Outcome = Literal["ok", "error", "refused", "cancelled"]  # OUTCOMES
_OUTCOME = Query(None, description=f"one of {', '.join(OUTCOMES)}")
_FLAGGED = Query(None, description="true: only requests whose anomaly score is above the server's flag score")
_FINDINGS = Query(None, description="true: only requests a guardrail found something in; false: only clean ones")


@router.get("/requests")
def list_requests(
    request: Request,
    deployment: str | None = Query(None, max_length=128),
    revision: int | None = Query(None, ge=1, le=VERSION_MAX),
    model: str | None = Query(None, max_length=300, description="the model as requested, the model that served it or its version"),
    adapter: str | None = Query(None, max_length=300),
    key: str | None = Query(None, max_length=16, description="a key id"),
    outcome: Outcome | None = _OUTCOME,
    flagged: bool | None = _FLAGGED,
    has_findings: bool | None = _FINDINGS,
    since: str | None = Query(None, description=_TIME),
    until: str | None = Query(None, description=_TIME),
    before_id: int | None = Query(None, ge=1, le=API_INT_MAX, description="page back: entries older than this id"),
    limit: int = Query(50, ge=1, le=PAGE_MAX),
) -> dict[str, Any]:
    """Logged ``/v1`` requests, newest first; ``next_before_id`` pages on (null at the end). Texts
    are only what the attached guardrail policy's redaction left (null without a policy)."""
    svc = _svc(request)
    q = _query(
        svc,
        deployment=deployment,
        revision=revision,
        model=model,
        adapter=adapter,
        key=key,
        outcome=outcome,
        flagged=flagged,
        has_findings=has_findings,
        since=since,
        until=until,
        before_id=before_id,
    )
    page = svc.list(q, limit=limit)
    return {"requests": page["requests"], "next_before_id": page["next_before"], "enabled": svc.enabled}


@router.get(
    "/requests/export",
    response_model=None,
    responses={
        200: {
            "description": "every matching entry, newest first: JSON lines (format=jsonl) or one Parquet file (format=parquet)",
            "content": {
                _MEDIA["jsonl"]: {"schema": {"type": "string", "description": "one entry per line"}},
                _MEDIA["parquet"]: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
def export_requests(
    request: Request,
    format: Literal["jsonl", "parquet"] = Query("jsonl", description="jsonl or parquet"),
    deployment: str | None = Query(None, max_length=128),
    revision: int | None = Query(None, ge=1, le=VERSION_MAX),
    model: str | None = Query(None, max_length=300),
    adapter: str | None = Query(None, max_length=300),
    key: str | None = Query(None, max_length=16, description="a key id"),
    outcome: Outcome | None = _OUTCOME,
    flagged: bool | None = _FLAGGED,
    has_findings: bool | None = _FINDINGS,
    since: str | None = Query(None, description=_TIME),
    until: str | None = Query(None, description=_TIME),
) -> StreamingResponse:
    """The request log for an audit, streamed as it is read (the same filters as the listing)."""
    svc = _svc(request)
    q = _query(
        svc,
        deployment=deployment,
        revision=revision,
        model=model,
        adapter=adapter,
        key=key,
        outcome=outcome,
        flagged=flagged,
        has_findings=has_findings,
        since=since,
        until=until,
        before_id=None,
    )
    chunks = svc.export(q, format)  # a bad format or no pyarrow is refused here, before any byte
    filename = f"requests.{format}"
    return StreamingResponse(
        _in_scope(chunks, contextvars.copy_context()),
        media_type=_MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _in_scope(chunks: Iterator[bytes], ctx: contextvars.Context) -> Iterator[bytes]:
    """Each piece read in the caller's context (its project scope), on whatever thread
    Starlette iterates the body."""
    while True:
        piece = ctx.run(next, chunks, None)
        if piece is None:
            return
        yield piece


@router.get("/requests/{response_id}")
def show_request(
    request: Request,
    response_id: str = Path(min_length=1, max_length=80, description="the id of a /v1 response (chatcmpl-... or cmpl-...)"),
) -> dict[str, Any]:
    """One logged request (by its response id), with its findings, citations and feedback."""
    return _svc(request).get(response_id).public_dict()


@router.get("/deployments/{name}/quality", responses=errors(404))
def deployment_quality(
    request: Request,
    name: str = Path(min_length=1, max_length=128),
    window: str = Query("1h", max_length=16, description="the window ending now: 15m, 1h, 7d (1m to 90d)"),
    revision: int | None = Query(None, ge=1, le=VERSION_MAX),
    buckets: int = Query(0, ge=0, le=120, description="also cut the window into this many slices (for charts)"),
) -> dict[str, Any]:
    """Quality signals per revision over the window: groundedness, refusal, guardrail block,
    negative feedback and error rates, latency and TTFT p50/p95 (a rate with nothing to judge
    is null)."""
    check_deployment_access(request, name)
    return _svc(request).quality(name, window, revision=revision, buckets=buckets)
