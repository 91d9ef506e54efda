"""Management API of fine-tuning, runs, the model registry and evaluations (canonical errors).

- ``POST /api/v1/tuning/jobs`` submits a ``tune`` job (same body as ``plinth tune``'s spec;
  ``Idempotency-Key`` honoured); ``POST /api/v1/evaluations`` an ``eval`` job. Their
  progress is the job's: ``GET /api/v1/jobs/{id}`` and ``/api/v1/jobs/{id}/logs?follow=true``.
- ``/api/v1/runs``: list, show, metrics (every point, by key), ``loss.svg``, compare, artifacts.
- ``/api/v1/registry/models``: registered models, versions with lineage, model cards,
  aliases (``PUT``/``DELETE .../aliases/{alias}``), deletion, and evaluation reports.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from plinth.api.deps import services_of
from plinth.domain.numbers import VERSION_MAX, whole_number
from plinth.domain.tracking import RunStatus
from plinth.errors import ErrorCode, PlinthError

router = APIRouter(prefix="/api/v1", tags=["tuning", "runs", "registry"])


def _services(request: Request) -> Any:  # Any: tracking and registry are set (checked here)
    s = services_of(request)
    if s.tracking is None or s.registry is None:  # pragma: no cover - always built
        raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, "tracking is not configured")
    return s


def _submit(request: Request, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    s = _services(request)
    job, created = s.jobs.submit_request(
        kind, spec, idempotency_key=request.headers.get("idempotency-key"), name=f"{kind} {spec.get('dataset', '')}".strip()
    )
    return {"job": job.public_dict(), "created": created}


# -- submitting ------------------------------------------------------------------------------
@router.post("/tuning/jobs", status_code=202)
async def submit_tuning(body: dict[str, Any], request: Request) -> dict[str, Any]:
    """Fine-tune: ``{"base_model", "dataset", "method": "lora"|"full"|"prompt_tuning", ...}``
    (see TuneSpec). Bad input is refused before any job is created."""
    return await run_in_threadpool(_submit, request, "tune", body)


@router.post("/evaluations", status_code=202)
async def submit_evaluation(body: dict[str, Any], request: Request) -> dict[str, Any]:
    """Evaluate: ``{"model", "dataset", "split", "max_samples", "max_tokens"}``; with
    ``"kind": "assistant"`` the assistant suite (an ``assistant-eval`` job: the model id or a
    deployment answers the suite's questions through the serving path)."""
    spec = dict(body)
    kind = spec.pop("kind", "generation")
    if kind not in ("generation", "assistant"):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"kind must be generation or assistant; got {kind!r}", param="kind")
    return await run_in_threadpool(_submit, request, "assistant-eval" if kind == "assistant" else "eval", spec)


@router.get("/evaluations")
def list_evaluations(request: Request, model: str | None = None, registry: str | None = None) -> dict[str, Any]:
    s = _services(request)
    name, _, version = (registry or "").partition("@")
    reports = s.store.list_eval_reports(
        registry_name=name or None, registry_version=whole_number(version, maximum=VERSION_MAX), model=model
    )
    return {"evaluations": [r.public_dict() for r in reports]}


@router.get("/evaluations/compare")
def compare_evaluations(request: Request, models: list[str] = Query(..., min_length=1)) -> dict[str, Any]:
    from plinth.tuning.evaluation import compare

    return compare(_services(request), models)


@router.get("/evaluations/{report_id}")
def get_evaluation(report_id: str, request: Request) -> dict[str, Any]:
    out: dict[str, Any] = _services(request).store.get_eval_report(report_id).public_dict()
    return out


# -- runs ------------------------------------------------------------------------------------
@router.get("/runs")
def list_runs(
    request: Request,
    kind: str | None = None,
    status: RunStatus | None = None,
    base_model: str | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> dict[str, Any]:
    runs = _services(request).tracking.list(kind=kind, status=status, base_model=base_model, limit=limit)
    return {"runs": [r.public_dict() for r in runs]}


@router.get("/runs/compare")
def compare_runs(request: Request, ids: list[str] = Query(..., min_length=2)) -> dict[str, Any]:
    out: dict[str, Any] = _services(request).tracking.compare(ids)
    return out


@router.get("/runs/{run_id}")
def get_run(run_id: str, request: Request) -> dict[str, Any]:
    s = _services(request)
    run = s.tracking.get(run_id)
    return {**run.public_dict(), "artifacts": [a.public_dict() for a in s.tracking.artifacts_of(run_id)]}


@router.get("/runs/{run_id}/metrics")
def run_metrics(run_id: str, request: Request, key: list[str] | None = Query(None)) -> dict[str, Any]:
    m = _services(request).tracking.metrics(run_id, key)
    return {
        "run_id": run_id,
        "metrics": {k: [{"step": p.step, "value": p.value, "at": p.at.isoformat() if p.at else None} for p in pts] for k, pts in m.items()},
    }


@router.get("/runs/{run_id}/loss.svg", response_class=Response)
def run_loss_svg(run_id: str, request: Request) -> Response:
    return Response(_services(request).tracking.loss_curve_svg(run_id), media_type="image/svg+xml")


# -- registry --------------------------------------------------------------------------------
#: a version number in a path, as the store holds them (a larger one is a 400, never a driver error)
VersionPath = Annotated[int, Path(ge=1, le=VERSION_MAX, description="a version number")]


class AliasBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=VERSION_MAX)


@router.get("/registry/models")
def list_registered(request: Request) -> dict[str, Any]:
    return {"models": [m.public_dict() for m in _services(request).registry.list()]}


@router.get("/registry/models/{name}")
def get_registered(name: str, request: Request) -> dict[str, Any]:
    reg = _services(request).registry
    return {**reg.get(name).public_dict(), "versions": [v.public_dict() for v in reg.versions(name)]}


@router.delete("/registry/models/{name}", status_code=204)
def delete_registered(name: str, request: Request) -> Response:
    _services(request).registry.delete_model(name)
    return Response(status_code=204)


@router.get("/registry/models/{name}/versions/{version}")
def get_version(name: str, version: VersionPath, request: Request) -> dict[str, Any]:
    reg = _services(request).registry
    mv = reg.version(name, version)
    return {**mv.public_dict(), "evaluations": [r.public_dict() for r in reg.reports(name, version)]}


@router.get("/registry/models/{name}/versions/{version}/card", response_class=PlainTextResponse)
def get_card(name: str, version: VersionPath, request: Request) -> PlainTextResponse:
    return PlainTextResponse(_services(request).registry.version(name, version).model_card, media_type="text/markdown")


@router.delete("/registry/models/{name}/versions/{version}", status_code=204)
def delete_version(name: str, version: VersionPath, request: Request) -> Response:
    _services(request).registry.delete_version(name, version)
    return Response(status_code=204)


@router.put("/registry/models/{name}/aliases/{alias}")
def set_alias(name: str, alias: str, body: AliasBody, request: Request) -> dict[str, Any]:
    s = _services(request)
    rm = s.registry.set_alias(name, alias, body.version)
    s.models.forget_ids()
    out: dict[str, Any] = rm.public_dict()
    return out


@router.delete("/registry/models/{name}/aliases/{alias}")
def delete_alias(name: str, alias: str, request: Request) -> dict[str, Any]:
    s = _services(request)
    rm = s.registry.delete_alias(name, alias)
    s.models.forget_ids()
    out: dict[str, Any] = rm.public_dict()
    return out
