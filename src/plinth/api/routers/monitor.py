"""Drift of what members ask (ADR 0091): ``POST /api/v1/deployments/{name}/drift`` (measure
now), ``GET /api/v1/deployments/{name}/drift`` (the stored runs as a time series) and
``GET /api/v1/drift-runs/{id}`` — canonical error shape; reads need ``read``, a run ``manage``
(like the deployments' routes). Every answer is the caller's project's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from plinth.api.auth import check_deployment_access, principal_of
from plinth.api.deps import services_of
from plinth.domain.drift import MAX_WINDOW
from plinth.domain.numbers import API_INT_MAX, VERSION_MAX
from plinth.errors import ErrorCode, PlinthError
from plinth.oversight.drift import DriftService

router = APIRouter(prefix="/api/v1", tags=["monitoring"])

_DURATION = r"^\d+(\.\d+)?[smhdw]$"
_TIME = "ISO time or a duration back from now (15m, 24h, 7d)"


class DriftBody(BaseModel):
    """What to compare: the window of recent prompts and the reference."""

    model_config = ConfigDict(extra="forbid")
    window: str = Field("24h", pattern=_DURATION, max_length=16, description="recent prompts of this long back from now (e.g. 24h, 7d)")
    reference: str = Field(
        "lineage",
        min_length=1,
        max_length=400,
        description="lineage (the training dataset the serving model's lineage names), dataset:NAME@VERSION, "
        "or window:START/END (an earlier window of this deployment, e.g. window:14d/7d)",
    )
    revision: int | None = Field(None, ge=1, le=VERSION_MAX, description="only this revision's prompts (and its lineage)")
    adapter: str | None = Field(None, min_length=1, max_length=300, description="only prompts this adapter answered")
    limit: int = Field(MAX_WINDOW, ge=1, le=MAX_WINDOW, description="at most this many of the newest prompts")
    score_anomalies: bool = Field(True, description="also store each prompt's anomaly score in the request log (ADR 0092)")


class DriftRunOut(BaseModel):
    """One drift measurement; ``results`` (per method: statistic, p-value, effect, floor, verdict;
    the rule; what changed) in full answers, ``p_values`` in series."""

    model_config = ConfigDict(extra="forbid")
    id: int | None
    at: str | None
    project: str | None
    deployment: str
    revision: int | None
    adapter: str | None
    window_start: str
    window_end: str
    n_recent: int
    n_reference: int
    reference: dict[str, Any]
    drifted: bool
    score: float
    results: dict[str, Any] | None = None
    p_values: dict[str, float | None] | None = None


class DriftSeries(BaseModel):
    deployment: str
    runs: list[DriftRunOut]


def _svc(request: Request, name: str | None = None) -> DriftService:
    d = services_of(request).drift
    if d is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "drift is not enabled on this server")
    if name is not None:
        check_deployment_access(request, name)
    return d


@router.post("/deployments/{name}/drift", status_code=201, response_model=DriftRunOut)
def run_drift(request: Request, body: DriftBody | None = None, name: str = Path(min_length=1, max_length=128)) -> dict[str, Any]:
    body = body or DriftBody()
    run = _svc(request, name).run(
        name,
        window=body.window,
        reference=body.reference,
        revision=body.revision,
        adapter=body.adapter,
        limit=body.limit,
        score_anomalies=body.score_anomalies,
    )
    return run.public_dict()


@router.get("/deployments/{name}/drift", response_model=DriftSeries)
def drift_series(
    request: Request,
    name: str = Path(min_length=1, max_length=128),
    since: str | None = Query("30d", max_length=64, description=_TIME),
    until: str | None = Query(None, max_length=64, description=_TIME),
    revision: int | None = Query(None, ge=1, le=VERSION_MAX),
    limit: int = Query(1000, ge=1, le=10_000),
    full: bool = Query(False, description="true: each run's full results; false: its p-values only"),
) -> dict[str, Any]:
    runs = _svc(request, name).series(name, since=since, until=until, revision=revision, limit=limit)
    return {"deployment": name, "runs": [r.public_dict(full=full) for r in runs]}


@router.get("/drift-runs/{run_id}", response_model=DriftRunOut)
def get_drift_run(request: Request, run_id: int = Path(ge=1, le=API_INT_MAX)) -> dict[str, Any]:
    run = _svc(request).get(run_id)
    if not principal_of(request).allows_model(run.deployment):  # a key limited to other deployments: not found
        raise PlinthError(ErrorCode.NOT_FOUND, f"drift run {run_id} does not exist", param="run_id")
    return run.public_dict()
