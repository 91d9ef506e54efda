"""Management API of the job queue: ``/api/v1/jobs``, ``/queues``, ``/priority-classes``,
``/workers``, ``/job-kinds`` (canonical error shape)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from plinth.api.auth import principal_of
from plinth.api.deps import services_of
from plinth.api.openapi import stream
from plinth.api.params import JSON_NUMBER
from plinth.api.streaming import SSEResponse
from plinth.domain.jobs import JobState, PreemptionPolicy, Resources
from plinth.domain.numbers import API_INT_MAX
from plinth.errors import ErrorCode, PlinthError, not_found
from plinth.jobs.resources import SIZE_PATTERN, parse_bytes
from plinth.jobs.service import MAX_PRIORITY

router = APIRouter(prefix="/api/v1", tags=["jobs"])

#: bytes, or a size as people write it ("4GiB", "512M")
ByteSize = Annotated[int, Field(ge=0, le=API_INT_MAX), JSON_NUMBER] | Annotated[str, Field(max_length=64, pattern=SIZE_PATTERN)]


class ResourcesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpu: Annotated[int, Field(ge=0, le=API_INT_MAX), JSON_NUMBER] | None = Field(None, description="CPU threads")
    memory: ByteSize | None = Field(None, description="bytes, or a size such as '4GiB'")
    gpus: Annotated[int, Field(ge=0, le=API_INT_MAX), JSON_NUMBER] | None = None


class SubmitJob(BaseModel):
    """A job to enqueue. Send an ``Idempotency-Key`` header to make retries safe."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(description="job kind, e.g. selftest (GET /api/v1/job-kinds)")
    spec: dict[str, Any] = Field(default_factory=dict, description="what the kind's executor needs")
    queue: str | None = Field(None, description="queue name (default: default)")
    priority_class: str | None = Field(None, description="priority class name (default: normal)")
    resources: ResourcesBody | None = None
    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    max_restarts: int | None = Field(None, ge=0, le=100, description="requeues after a lost worker or killed process before failing")


@router.post("/jobs", status_code=201)
def submit_job(
    body: SubmitJob,
    request: Request,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
) -> Response:
    jobs = services_of(request).jobs
    r = body.resources or ResourcesBody()
    resources = jobs.resources_for(body.kind, cpu=r.cpu, memory=r.memory, gpus=r.gpus)
    job, created = jobs.submit_request(
        body.kind,
        body.spec,
        queue=body.queue,
        priority_class=body.priority_class,
        resources=resources,
        idempotency_key=idempotency_key,
        name=body.name,
        labels=body.labels,
        max_restarts=body.max_restarts,
    )
    headers = {"Location": f"/api/v1/jobs/{job.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(job.public_dict(), status_code=201 if created else 200, headers=headers)


def _states(values: list[str]) -> tuple[JobState, ...]:
    out = []
    for v in values:
        for part in v.split(","):
            try:
                out.append(JobState(part.strip()))
            except ValueError:
                raise PlinthError(
                    ErrorCode.INVALID_REQUEST,
                    f"unknown state {part!r}; use {', '.join(s.value for s in JobState)}",
                    param="state",
                ) from None
    return tuple(out)


def _labels(values: list[str]) -> dict[str, str]:
    labels = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"label filter must be KEY=VALUE, got {v!r}", param="label")
        labels[key] = value
    return labels


@router.get("/jobs")
def list_jobs(
    request: Request,
    state: list[str] = Query(default_factory=list, description="queued, running, succeeded, failed, cancelled"),
    kind: str | None = None,
    queue: str | None = None,
    label: list[str] = Query(default_factory=list, description="KEY=VALUE, all must match"),
    limit: int = Query(100, ge=1, le=1000),
    before: str | None = Query(None, description="a job id: older jobs only (paging)"),
) -> dict[str, Any]:
    jobs = services_of(request).jobs.list(states=_states(state), kind=kind, queue=queue, labels=_labels(label), limit=limit, before=before)
    return {"jobs": [j.public_dict() for j in jobs], "next_before": jobs[-1].id if len(jobs) == limit else None}


@router.get("/jobs/{job_id}")
def get_job(job_id: str, request: Request) -> dict[str, Any]:
    return services_of(request).jobs.get(job_id).public_dict()


@router.get(
    "/jobs/{job_id}/logs",
    response_model=None,
    responses=stream("text/event-stream", "with follow=true: events job, log and end, until the job ends", also_json=True),
)
def job_logs(
    job_id: str,
    request: Request,
    after: int = Query(0, ge=0, le=API_INT_MAX, description="only lines with seq above this"),
    limit: int = Query(1000, ge=1, le=10_000),
    tail: int | None = Query(None, ge=1, le=10_000, description="only the last N lines"),
    follow: bool = Query(False, description="stream new lines and progress as server-sent events until the job ends"),
) -> Any:
    jobs = services_of(request).jobs
    if follow:
        follower = jobs.follower(job_id, after=after, tail=tail)
        return SSEResponse(
            _follow_events(follower, jobs.settings.jobs_poll_interval_s), error_event=lambda err: _sse("error", err.to_canonical())
        )
    lines = jobs.logs(job_id, after=after, limit=limit, tail=tail)
    return {"job_id": job_id, "lines": [ln.public_dict() for ln in lines], "last_seq": lines[-1].seq if lines else after}


async def _follow_events(follower: Any, poll_s: float) -> AsyncIterator[bytes]:
    """SSE: ``event: job`` (the job), ``event: log`` (a line), finally ``event: end``."""
    while True:
        try:
            events = await run_in_threadpool(follower.poll)
        except PlinthError as e:
            yield _sse("error", e.to_canonical())
            return
        for ev in events:
            if ev.type == "log":
                yield _sse("log", ev.line.public_dict())
            else:
                yield _sse(ev.type, ev.job.public_dict())
        if follower.done:
            return
        await asyncio.sleep(max(0.2, poll_s))


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@router.post("/jobs/{job_id}/cancel")
def cancel_job(job_id: str, request: Request) -> dict[str, Any]:
    return services_of(request).jobs.cancel(job_id).public_dict()


@router.post("/jobs/{job_id}/retry")
def retry_job(job_id: str, request: Request) -> dict[str, Any]:
    return services_of(request).jobs.retry(job_id).public_dict()


@router.delete("/jobs/{job_id}", status_code=204)
def delete_job(job_id: str, request: Request) -> Response:
    services_of(request).jobs.delete(job_id)
    return Response(status_code=204)


@router.get("/job-kinds")
def job_kinds(request: Request) -> dict[str, Any]:
    return {"kinds": [k.public_dict() for k in services_of(request).jobs.kinds()]}


# -- queues ------------------------------------------------------------------------------------
class QuotaBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpu: Annotated[int, JSON_NUMBER] = Field(ge=0, le=API_INT_MAX)
    memory: ByteSize = Field(description="bytes, or a size such as '4GiB'")
    gpus: Annotated[int, JSON_NUMBER] = Field(0, ge=0, le=API_INT_MAX)


class CreateQueue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    quota: QuotaBody
    preemption: PreemptionPolicy = PreemptionPolicy.LOWER_PRIORITY
    description: str = ""
    project: str = Field(
        "", pattern=r"^([a-z0-9][a-z0-9-]{0,62})?$", description="the project whose jobs it takes (empty: every project's)"
    )


class UpdateQueue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quota: QuotaBody | None = None
    preemption: PreemptionPolicy | None = None
    description: str | None = None


def _quota(q: QuotaBody) -> Resources:
    return Resources(cpu=q.cpu, memory=parse_bytes(q.memory, param="quota.memory"), gpus=q.gpus)


def _server_admin(request: Request, what: str) -> None:
    """Queues and priority classes are the server's: shared by every project."""
    if not principal_of(request).server_admin:
        raise PlinthError(ErrorCode.PERMISSION_DENIED, f"only a server admin may {what}")


def _queue_view(queue: Any, usage: dict[str, Any]) -> dict[str, Any]:
    u = usage.get(queue.name, {"running": 0, "queued": 0, "used": Resources.zero()})
    return {**queue.public_dict(), "running": u["running"], "queued": u["queued"], "used": u["used"].as_dict()}


@router.get("/queues")
def list_queues(request: Request) -> dict[str, Any]:
    jobs = services_of(request).jobs
    usage = jobs.queue_usage()
    p = principal_of(request)
    mine = [q for q in jobs.list_queues() if p.server_admin or q.project in ("", p.project)]  # queues this project may use
    return {"queues": [_queue_view(q, usage) for q in mine]}


@router.post("/queues", status_code=201)
def create_queue(body: CreateQueue, request: Request) -> dict[str, Any]:
    _server_admin(request, "create queues")
    jobs = services_of(request).jobs
    q = jobs.create_queue(body.name, _quota(body.quota), preemption=body.preemption, description=body.description, project=body.project)
    return _queue_view(q, {})


@router.get("/queues/{name}")
def get_queue(name: str, request: Request) -> dict[str, Any]:
    jobs = services_of(request).jobs
    q = jobs.get_queue(name)
    p = principal_of(request)
    if not (p.server_admin or q.project in ("", p.project)):
        raise not_found("queue", name)
    return _queue_view(q, jobs.queue_usage())


@router.patch("/queues/{name}")
def update_queue(name: str, body: UpdateQueue, request: Request) -> dict[str, Any]:
    _server_admin(request, "change queues")
    jobs = services_of(request).jobs
    q = jobs.update_queue(
        name,
        quota=_quota(body.quota) if body.quota else None,
        preemption=body.preemption,
        description=body.description,
    )
    return _queue_view(q, jobs.queue_usage())


@router.delete("/queues/{name}", status_code=204)
def delete_queue(name: str, request: Request) -> Response:
    _server_admin(request, "delete queues")
    services_of(request).jobs.delete_queue(name)
    return Response(status_code=204)


# -- priority classes and workers --------------------------------------------------------------
class CreatePriorityClass(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    value: int = Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY)
    description: str = ""


@router.get("/priority-classes")
def list_priority_classes(request: Request) -> dict[str, Any]:
    return {"priority_classes": [p.public_dict() for p in services_of(request).jobs.list_priority_classes()]}


@router.post("/priority-classes", status_code=201)
def create_priority_class(body: CreatePriorityClass, request: Request) -> dict[str, Any]:
    _server_admin(request, "create priority classes")
    return services_of(request).jobs.create_priority_class(body.name, body.value, body.description).public_dict()


@router.delete("/priority-classes/{name}", status_code=204)
def delete_priority_class(name: str, request: Request) -> Response:
    _server_admin(request, "delete priority classes")
    services_of(request).jobs.delete_priority_class(name)
    return Response(status_code=204)


@router.get("/workers")
def list_workers(request: Request) -> dict[str, Any]:
    jobs = services_of(request).jobs
    return {"workers": [w.public_dict() for w in jobs.live_workers()]}
