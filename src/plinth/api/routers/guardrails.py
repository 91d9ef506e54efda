"""Management API for guardrails under ``/api/v1/guardrails`` (canonical error shape):
policies and their versions, checking a text, evaluating on labelled records, events."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from plinth.api.deps import services_of
from plinth.domain.guardrails import Direction
from plinth.domain.numbers import API_INT_MAX, VERSION_MAX
from plinth.domain.projects import in_context
from plinth.errors import ErrorCode, PlinthError
from plinth.guardrails.evaluation import MAX_RECORDS, check_record
from plinth.guardrails.service import GuardrailService

router = APIRouter(prefix="/api/v1/guardrails", tags=["guardrails"])

#: records one synchronous evaluation request may carry (bigger sets: the CLI)
MAX_API_RECORDS = min(MAX_RECORDS, 5000)


def _svc(request: Request) -> GuardrailService:
    g = services_of(request).guardrails
    if g is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "guardrails are not enabled on this server")
    return g


async def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, in_context(lambda: fn(*args, **kwargs)))


def _attached_to(request: Request, name: str) -> list[str]:
    from plinth.guardrails.policy import split_ref

    out = []
    for model_id, a in services_of(request).store.list_attachments().items():
        if a.guardrail_policy and split_ref(a.guardrail_policy)[0] == name:
            out.append(model_id)
    return out


class PolicyBody(BaseModel):
    """A policy document as JSON, or as YAML text in ``yaml``."""

    model_config = ConfigDict(extra="allow")
    yaml: str | None = Field(None, description="the policy as YAML text (instead of JSON fields)")


def _document(body: PolicyBody) -> dict[str, Any] | str:
    extra = dict(body.model_extra or {})
    if body.yaml is not None:
        if extra:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "give the policy either as JSON fields or as 'yaml', not both")
        return body.yaml
    return extra


@router.get("/policies")
def list_policies(request: Request) -> dict[str, Any]:
    return {"policies": [p.public_dict() for p in _svc(request).list()]}


@router.post("/policies", status_code=201)
async def create_policy(body: PolicyBody, request: Request) -> Any:
    """Store a policy document as a new version (201), or 200 with the latest version when
    it is unchanged."""
    pv, created = await _run(_svc(request).apply, _document(body))
    return JSONResponse({**pv.public_dict(), "created": created}, status_code=201 if created else 200)


@router.put("/policies/{name}")
async def put_policy(name: str, body: PolicyBody, request: Request) -> Any:
    """Like POST, with the name taken from the path."""
    pv, created = await _run(_svc(request).apply, _document(body), name=name)
    return JSONResponse({**pv.public_dict(), "created": created}, status_code=201 if created else 200)


@router.get("/policies/{name}")
def get_policy(name: str, request: Request, version: int | None = Query(None, ge=1, le=VERSION_MAX)) -> dict[str, Any]:
    ref = name if version is None else f"{name}@{version}"
    return _svc(request).get(ref).public_dict()


@router.get("/policies/{name}/versions")
def list_versions(name: str, request: Request) -> dict[str, Any]:
    return {"versions": [{k: v for k, v in pv.public_dict().items() if k != "spec"} for pv in _svc(request).versions(name)]}


@router.delete("/policies/{name}", status_code=204)
def delete_policy(name: str, request: Request) -> Response:
    _svc(request).delete(name, attached_to=_attached_to(request, name))
    return Response(status_code=204)


class CheckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, description="the text to check")
    direction: Direction = Field(Direction.INPUT, description="input, output or retrieved")
    version: int | None = Field(None, ge=1, le=VERSION_MAX, description="a version of the policy (default: the newest)")
    passages: list[dict[str, Any]] = Field(default_factory=list, max_length=50, description="passages for groundedness: [{'text': ...}]")


@router.post("/policies/{name}/test")
async def test_policy(name: str, body: CheckBody, request: Request) -> dict[str, Any]:
    """Check one text against the policy; nothing is recorded."""
    svc = _svc(request)
    ref = name if body.version is None else f"{name}@{body.version}"
    pv = svc.get(ref)
    result = await _run(svc.check, pv.ref, body.text, body.direction, body.passages)
    return {
        "policy": pv.ref,
        "direction": body.direction.value,
        "blocked": result.blocked,
        "safe_answer": result.safe_answer,
        "text": result.text,
        "findings": [f.public_dict() for f in result.findings],
    }


class EvalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: list[dict[str, Any]] = Field(min_length=1, description="labelled records, as in the JSONL files")
    detector: str | None = Field(None, description="the rule to evaluate when the policy has several of the kind")
    version: int | None = Field(None, ge=1, le=VERSION_MAX)
    listed: int = Field(50, ge=0, le=5000, description="false positives and negatives listed at most")


@router.post("/policies/{name}/eval")
async def eval_policy(name: str, body: EvalBody, request: Request) -> dict[str, Any]:
    """Precision, recall and F1 of the policy's rule on labelled records (the task is read
    from the records)."""
    if len(body.records) > MAX_API_RECORDS:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"{len(body.records)} records is over {MAX_API_RECORDS}; use `plinth guardrails eval` for larger files",
            param="records",
        )
    for i, rec in enumerate(body.records):
        check_record(rec, f"records[{i}]")
    svc = _svc(request)
    ref = name if body.version is None else f"{name}@{body.version}"
    report = await _run(svc.evaluate, svc.get(ref).ref, body.records, detector=body.detector)
    out: dict[str, Any] = report.as_dict()
    out["false_positives"] = out["false_positives"][: body.listed]
    out["false_negatives"] = out["false_negatives"][: body.listed]
    return out


@router.get("/events")
def list_events(
    request: Request,
    model: str | None = None,
    policy: str | None = None,
    request_id: str | None = None,
    detector: str | None = None,
    before_id: int | None = Query(None, ge=1, le=API_INT_MAX),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """Guardrail findings of served requests, newest first (labels and offsets, never text)."""
    events = _svc(request).events(model_id=model, policy=policy, request_id=request_id, detector=detector, before_id=before_id, limit=limit)
    return {"events": [e.public_dict() for e in events], "next_before_id": events[-1].id if len(events) == limit else None}


@router.get("/detectors")
def list_detectors(request: Request) -> dict[str, Any]:
    return {"detectors": _svc(request).detectors()}
