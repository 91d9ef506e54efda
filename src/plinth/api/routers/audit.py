"""``/api/v1/audit``: the audit log of management actions, newest first (``admin`` scope)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from plinth.api.auth import principal_of
from plinth.api.deps import services_of
from plinth.domain.numbers import API_INT_MAX
from plinth.errors import ErrorCode, PlinthError
from plinth.usage.service import parse_time

router = APIRouter(prefix="/api/v1", tags=["audit"])


@router.get("/audit")
def audit_log(
    request: Request,
    actor: str | None = None,
    target_type: str | None = Query(None, description="deployment, api_key, http"),
    target: str | None = None,
    action: str | None = Query(None, description="a prefix, e.g. deployment. or key.revoke"),
    since: str | None = Query(None, description="ISO time or a duration back from now (24h)"),
    before_id: int | None = Query(None, ge=1, le=API_INT_MAX, description="page back: entries older than this id"),
    limit: int = Query(100, ge=1, le=10_000),
    server: bool = Query(False, description="the server's own log (users and projects; server admins) instead of the project's"),
) -> dict[str, Any]:
    audit = services_of(request).audit
    if audit is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "the audit log is not enabled on this server")
    if server and not principal_of(request).server_admin:
        raise PlinthError(ErrorCode.PERMISSION_DENIED, "only a server admin may read the server's audit log")
    entries = audit.list(
        server=server,
        actor=actor,
        target_type=target_type,
        target=target,
        action=action,
        since=parse_time(since, "since"),
        before_id=before_id,
        limit=limit,
    )
    return {"entries": [e.public_dict() for e in entries], "next_before_id": entries[-1].id if len(entries) == limit else None}
