"""``GET /api/v1/deployments/{name}/report``: the compliance report of a deployment over a
period, as a printable HTML page or JSON (ADR 0095)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from plinth.api.auth import check_deployment_access
from plinth.api.deps import services_of
from plinth.oversight.report import render_html, report_over

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])


@router.get(
    "/{name}/report",
    response_model=None,
    responses={
        200: {
            "description": "the report: a self-contained, printable HTML page (format=html) or its data (format=json)",
            "content": {"text/html": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "object"}}},
        }
    },
)
def deployment_report(
    name: str,
    request: Request,
    since: str | None = Query(None, description="ISO time or a duration back from now (default 30d)"),
    until: str | None = Query(None, description="ISO time or a duration back from now (default now)"),
    format: Literal["html", "json"] = Query("html"),
) -> Any:
    check_deployment_access(request, name)
    s = services_of(request)
    report = report_over(s.store, s.registry, name, since, until)
    if format == "json":
        return report
    return HTMLResponse(render_html(report))
