"""Management API of API keys under ``/api/v1/keys`` (``admin`` scope; ``/self`` for any key):
create (the key is in the answer, once), list, show with its current windows, change, revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from plinth.api.auth import actor_of, principal_of
from plinth.api.deps import services_of
from plinth.api.params import JSON_TIME
from plinth.auth.service import AuthService, make_limits
from plinth.errors import ErrorCode, PlinthError

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


class LimitsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests_per_minute: int | None = Field(None, ge=1, le=10**15)
    tokens_per_minute: int | None = Field(None, ge=1, le=10**15)
    budget_tokens: int | None = Field(None, ge=1, le=10**15, description="tokens per budget period")
    budget_period: str = Field("month", description="hour, day, week or month (UTC calendar periods)")


class CreateKey(LimitsBody):
    name: str = Field(min_length=1, max_length=128)
    user: str | None = Field(None, max_length=128, description="the user the key acts for (server admins; default: the caller's)")
    project: str | None = Field(None, max_length=63, description="its project (server admins; default: the caller's)")
    scopes: list[str] = Field(default_factory=lambda: ["inference"], description="inference, read, manage, admin")
    models: list[str] = Field(default_factory=list, description="model ids / deployment names (* and ? wildcards); empty: all")
    expires_at: Annotated[datetime, JSON_TIME] | None = Field(None, description="ISO 8601 time")


class UpdateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scopes: list[str] | None = None
    models: list[str] | None = None
    limits: LimitsBody | None = Field(None, description="replaces every limit (a missing one becomes unlimited)")
    expires_at: Annotated[datetime, JSON_TIME] | None = Field(None, description="ISO 8601 time")


def _svc(request: Request) -> AuthService:
    a = services_of(request).auth
    if a is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "API keys are not enabled on this server")
    return a


def _limits(b: LimitsBody) -> Any:
    return make_limits(b.requests_per_minute, b.tokens_per_minute, b.budget_tokens, b.budget_period)


def _with_windows(svc: AuthService, ref: str) -> dict[str, Any]:
    key, windows = svc.windows(ref)
    return {**key.public_dict(), "usage": windows.public_dict(key.limits)}


@router.get("")
def list_keys(request: Request, include_revoked: bool = Query(False)) -> dict[str, Any]:
    return {"keys": [k.public_dict() for k in _svc(request).list_keys(include_revoked=include_revoked)]}


@router.post("", status_code=201)
def create_key(body: CreateKey, request: Request) -> dict[str, Any]:
    key, token = _svc(request).create_key(
        body.name,
        scopes=body.scopes,
        models=body.models,
        limits=_limits(body),
        expires_at=body.expires_at,
        actor=actor_of(request),
        principal=principal_of(request),
        user=body.user,
        project=body.project,
    )
    return {**key.public_dict(), "key": token}


@router.get("/self")
def my_key(request: Request) -> dict[str, Any]:
    """The calling key with its limits and what it used this minute and budget period."""
    p = principal_of(request)
    if p.key is None:
        return {"auth": False, "actor": p.actor}
    return {"auth": True, **_with_windows(_svc(request), p.key.id)}


@router.get("/{ref}")
def get_key(ref: str, request: Request) -> dict[str, Any]:
    return _with_windows(_svc(request), ref)


@router.patch("/{ref}")
def update_key(ref: str, body: UpdateKey, request: Request) -> dict[str, Any]:
    svc = _svc(request)
    svc.update_key(
        ref,
        actor=actor_of(request),
        principal=principal_of(request),
        scopes=body.scopes,
        models=body.models,
        limits=_limits(body.limits) if body.limits is not None else None,
        expires_at=body.expires_at,
    )
    return _with_windows(svc, ref)


@router.delete("/{ref}")
def revoke_key(ref: str, request: Request) -> dict[str, Any]:
    return _svc(request).revoke_key(ref, actor=actor_of(request), principal=principal_of(request)).public_dict()
