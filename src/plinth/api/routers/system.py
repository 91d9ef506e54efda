"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from plinth import __version__
from plinth.api.auth import principal_of
from plinth.api.deps import services_of
from plinth.errors import ErrorCode, PlinthError

router = APIRouter(tags=["system"])


@router.get("/", response_model=dict[str, Any], responses={303: {"description": "a browser (Accept: text/html) goes to the console"}})
def root(request: Request) -> Any:
    """Where things are; a browser is sent to the web console at ``/console/``."""
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/console/", status_code=303)
    return {
        "name": "plinth",
        "version": __version__,
        "openai_base_url": "/v1",
        "management_api": "/api/v1",
        "console": "/console/",
        "docs": "/docs",
        "openapi": "/openapi.json",
        "metrics": "/metrics",
    }


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> Response:
    """Readiness: the store answers and the default model is loaded (when preloading)."""
    s = services_of(request)
    checks: dict[str, Any] = {}
    ok = True
    try:
        s.store.ping()
        checks["store"] = "ok"
    except PlinthError as e:
        ok, checks["store"] = False, e.message
    if s.settings.preload_default_model:
        state = request.app.state.preload
        checks["default_model"] = state
        ok = ok and state == "loaded"
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """The server's metrics. Their labels name deployments, models, knowledge bases and keys of
    every project, so a project's member (their keys and sessions) may not read them; server
    admins and the operator's keys (``read``) may."""
    p = principal_of(request)
    if p.user is not None and not p.server_admin:
        raise PlinthError(
            ErrorCode.PERMISSION_DENIED, "the server's metrics span every project: only server admins and the operator's keys may read them"
        )
    m = services_of(request).metrics
    return Response(m.render(), media_type=m.content_type)
