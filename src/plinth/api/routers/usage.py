"""``/api/v1/usage`` (requests and tokens by key, deployment, revision, model version, over
time) and ``/api/v1/feedback`` (ratings of responses) — canonical error shape."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from plinth.api.auth import principal_of
from plinth.api.deps import services_of
from plinth.domain.numbers import VERSION_MAX
from plinth.errors import ErrorCode, PlinthError
from plinth.usage.service import UsageService

router = APIRouter(prefix="/api/v1", tags=["usage"])


def _svc(request: Request) -> UsageService:
    u = services_of(request).usage
    if u is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "usage accounting is not enabled on this server")
    return u


@router.get("/usage")
def usage(
    request: Request,
    group_by: str = Query("deployment,revision", description="comma-separated: key, deployment, revision, model, model_version, outcome"),
    since: str | None = Query("24h", description="ISO time or a duration back from now (15m, 24h, 7d)"),
    until: str | None = Query(None),
    bucket: str | None = Query(None, description="time buckets, e.g. 1h (at least 1m)"),
    key: str | None = Query(None, description="a key id"),
    deployment: str | None = None,
    revision: int | None = Query(None, ge=1, le=VERSION_MAX),
    model: str | None = None,
) -> dict[str, Any]:
    return _svc(request).summary(
        group_by=group_by.split(","),
        since=since,
        until=until,
        bucket=bucket,
        key=key,
        deployment=deployment,
        revision=revision,
        model=model,
    )


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    response_id: str = Field(min_length=1, max_length=80, description="the id of a /v1 response (chatcmpl-... or cmpl-...)")
    rating: Annotated[int, Field(ge=-1, le=1)] | str = Field(description="-1, 0, 1 or negative, neutral, positive")
    comment: str = Field("", max_length=4000)


@router.post("/feedback", status_code=201)
def post_feedback(body: FeedbackBody, request: Request) -> dict[str, Any]:
    fb = _svc(request).feedback(body.response_id, body.rating, body.comment, principal=principal_of(request))
    return fb.public_dict()


@router.get("/feedback")
def list_feedback(
    request: Request,
    deployment: str | None = None,
    revision: int | None = Query(None, ge=1, le=VERSION_MAX),
    response_id: str | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> dict[str, Any]:
    items = _svc(request).list_feedback(deployment=deployment, revision=revision, response_id=response_id, limit=limit)
    return {"feedback": [f.public_dict() for f in items]}
