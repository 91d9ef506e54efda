"""Pipelines and triggers (ADR 0102, 0103; canonical error shape): ``/api/v1/pipelines`` (apply,
list, show, start a run), ``/api/v1/pipeline-runs`` (list, show with per-step state, lineage,
step logs, cancel, resume) and ``/api/v1/triggers`` (apply, list, show, delete, fire, events)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from plinth.api.deps import services_of
from plinth.api.openapi import errors
from plinth.automation.pipelines import PipelineService
from plinth.automation.triggers import TriggerService
from plinth.domain.numbers import API_INT_MAX
from plinth.domain.pipelines import RunState
from plinth.errors import ErrorCode, PlinthError

router = APIRouter(tags=["pipelines"])

_NAME = Path(min_length=1, max_length=63, description="a pipeline or trigger name")
_RUN = Path(min_length=1, max_length=32, description="a run id (run-...)")


class PipelineBody(BaseModel):
    """A pipeline: a DAG of steps, each a job kind (``job``) or a built-in action (``action``)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=63)
    description: str = Field("", max_length=4000)
    params: dict[str, Any] = Field(default_factory=dict, description="parameter names and their defaults (null: required)")
    steps: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=100,
        description="steps: name, job or action, spec (with ${params.x} and ${steps.S.outputs.k}), needs, when, retries, "
        "backoff_s, timeout_s, cache, queue",
    )


class PipelineOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    version: int
    digest: str
    spec: dict[str, Any]


class ApplyOut(BaseModel):
    pipeline: PipelineOut
    created: bool = Field(description="whether a new version was stored (false: the newest version is the same)")


class PipelineList(BaseModel):
    pipelines: list[PipelineOut]


class StartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(default_factory=dict)
    reason: str = Field("manual", max_length=2000)
    version: int | None = Field(None, ge=1, le=API_INT_MAX, description="the pipeline version (default: the newest)")


class RunOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    pipeline: str
    version: int
    state: str
    params: dict[str, Any]


class RunList(BaseModel):
    runs: list[RunOut]


class StepOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    state: str
    attempt: int
    job_id: str | None
    outputs: dict[str, Any]


class RunDetail(BaseModel):
    run: RunOut
    steps: list[StepOut]


class LogsOut(BaseModel):
    run: str
    step: str
    lines: list[str]


class TriggerBody(BaseModel):
    """A trigger: ``kind`` schedule (spec.cron), dataset / knowledge_base (spec.name), alert
    (spec.rule, optional) or manual; ``when`` a condition over ${trigger.*}."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=63)
    pipeline: str = Field(min_length=1, max_length=63)
    kind: Literal["schedule", "dataset", "knowledge_base", "alert", "manual"] = "manual"
    spec: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    cooldown_s: float = Field(0, ge=0, le=365 * 86400)
    enabled: bool = True
    when: str | None = Field(None, max_length=2000)


class TriggerOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    pipeline: str
    kind: str
    enabled: bool


class TriggerList(BaseModel):
    triggers: list[TriggerOut]


class TriggerEventOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    trigger: str
    fired: bool
    reason: str
    run_id: str | None


class TriggerEventList(BaseModel):
    events: list[TriggerEventOut]


def _pipelines(request: Request) -> PipelineService:
    p = services_of(request).pipelines
    if p is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "pipelines are not enabled on this server")
    return p


def _triggers(request: Request) -> TriggerService:
    t = services_of(request).triggers
    if t is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "triggers are not enabled on this server")
    return t


def _detail(svc: PipelineService, run_id: str) -> dict[str, Any]:
    run = svc.run(run_id)
    return {"run": run.public_dict(), "steps": [s.public_dict() for s in svc.steps(run.id)]}


# -- pipelines -------------------------------------------------------------------------------------
@router.get("/api/v1/pipelines", response_model=PipelineList)
def list_pipelines(request: Request) -> dict[str, Any]:
    return {"pipelines": [p.public_dict() for p in _pipelines(request).list()]}


@router.post(
    "/api/v1/pipelines", response_model=ApplyOut, responses=errors(ok_200="the newest version is the same: nothing stored"), status_code=201
)
def apply_pipeline(body: PipelineBody, request: Request) -> Any:
    """Store the pipeline as its next version (201), or nothing when the newest is the same (200)."""
    pipeline, created = _pipelines(request).apply(body.model_dump())
    out = {"pipeline": pipeline.public_dict(), "created": created}
    return out if created else JSONResponse(out, status_code=200)


@router.get("/api/v1/pipelines/{name}", response_model=PipelineOut)
def get_pipeline(
    request: Request, name: str = _NAME, version: int | None = Query(None, ge=1, le=API_INT_MAX, description="default: the newest")
) -> dict[str, Any]:
    return _pipelines(request).get(name, version).public_dict()


@router.post("/api/v1/pipelines/{name}/runs", status_code=201, response_model=RunOut)
def start_run(request: Request, name: str = _NAME, body: StartBody | None = None) -> dict[str, Any]:
    b = body or StartBody()
    return _pipelines(request).start(name, b.params, reason=b.reason, version=b.version).public_dict()


# -- runs ----------------------------------------------------------------------------------------------
@router.get("/api/v1/pipeline-runs", response_model=RunList, responses=errors(404))
def list_runs(
    request: Request,
    pipeline: str | None = Query(None, min_length=1, max_length=63),
    state: Literal["pending", "running", "succeeded", "failed", "cancelled"] | None = Query(None),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    states = (RunState(state),) if state else ()
    return {"runs": [r.public_dict() for r in _pipelines(request).runs(pipeline, states=states, limit=limit)]}


@router.get("/api/v1/pipeline-runs/{run_id}", response_model=RunDetail)
def get_run(request: Request, run_id: str = _RUN) -> dict[str, Any]:
    return _detail(_pipelines(request), run_id)


@router.get("/api/v1/pipeline-runs/{run_id}/lineage", response_model=dict[str, Any])
def run_lineage(request: Request, run_id: str = _RUN) -> dict[str, Any]:
    """The run's trigger and parameters and, per step, its job, inputs digest, cache origin and outputs."""
    return _pipelines(request).lineage(run_id)


@router.get("/api/v1/pipeline-runs/{run_id}/steps/{step}/logs", response_model=LogsOut)
def step_logs(
    request: Request, run_id: str = _RUN, step: str = Path(min_length=1, max_length=63), tail: int = Query(200, ge=1, le=10_000)
) -> dict[str, Any]:
    return {"run": run_id, "step": step, "lines": _pipelines(request).step_logs(run_id, step, tail=tail)}


@router.post("/api/v1/pipeline-runs/{run_id}/cancel", response_model=RunDetail, responses=errors(409))
def cancel_run(request: Request, run_id: str = _RUN) -> dict[str, Any]:
    svc = _pipelines(request)
    svc.cancel(run_id)
    return _detail(svc, run_id)


@router.post("/api/v1/pipeline-runs/{run_id}/resume", response_model=RunDetail, responses=errors(409))
def resume_run(request: Request, run_id: str = _RUN) -> dict[str, Any]:
    svc = _pipelines(request)
    svc.resume(run_id)
    return _detail(svc, run_id)


# -- triggers -----------------------------------------------------------------------------------------
@router.get("/api/v1/triggers", response_model=TriggerList)
def list_triggers(request: Request, pipeline: str | None = Query(None, min_length=1, max_length=63)) -> dict[str, Any]:
    return {"triggers": [t.public_dict() for t in _triggers(request).list(pipeline=pipeline)]}


@router.post("/api/v1/triggers", status_code=201, response_model=TriggerOut)
def apply_trigger(body: TriggerBody, request: Request) -> dict[str, Any]:
    """Create or replace a trigger (what it last saw is kept)."""
    doc = body.model_dump(exclude_none=True)
    return _triggers(request).apply(doc).public_dict()


@router.get("/api/v1/triggers/events", response_model=TriggerEventList, responses=errors(404))
def trigger_events(
    request: Request, trigger: str | None = Query(None, min_length=1, max_length=63), limit: int = Query(100, ge=1, le=1000)
) -> dict[str, Any]:
    """Why each trigger fired or did not (newest first)."""
    return {"events": [e.public_dict() for e in _triggers(request).events(trigger, limit=limit)]}


@router.get("/api/v1/triggers/{name}", response_model=TriggerOut)
def get_trigger(request: Request, name: str = _NAME) -> dict[str, Any]:
    return _triggers(request).get(name).public_dict()


@router.delete("/api/v1/triggers/{name}", response_model=TriggerOut)
def delete_trigger(request: Request, name: str = _NAME) -> dict[str, Any]:
    return _triggers(request).delete(name).public_dict()


@router.post("/api/v1/triggers/{name}/fire", response_model=TriggerEventOut)
def fire_trigger(request: Request, name: str = _NAME) -> dict[str, Any]:
    """Fire a trigger by hand (cooldown, de-duplication and its condition still apply)."""
    return _triggers(request).fire_manual(name).public_dict()
