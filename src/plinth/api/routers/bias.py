"""Counterfactual bias probes and per-answer explanations (monitoring, issue 14; canonical
error shape).

- ``POST /api/v1/bias/runs``: replay a suite (its YAML/JSON text, or the document as an
  object) against a model id or a deployment (``revision``: one of its revisions; default
  its stable one). Without ``wait`` a ``bias`` job is submitted (202; progress and logs are
  the job's, ``Idempotency-Key`` honoured); with ``wait: true`` the suite runs in this server
  and the stored report is the answer (200). A bad suite lists every problem at once (400).
- ``GET /api/v1/bias/reports`` (filters ``target``, ``suite``, ``passed``) and
  ``GET /api/v1/bias/reports/{id}`` (the whole report, with every answer).
- ``GET /api/v1/responses/{id}/explanation``: which retrieved passages and which prompt words
  a logged answer depends on (:mod:`plinth.oversight.explain`); 409 when the request log
  holds no text for it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from plinth.api.auth import principal_of
from plinth.api.deps import services_of
from plinth.api.openapi import errors
from plinth.domain.numbers import VERSION_MAX
from plinth.errors import ErrorCode, PlinthError

router = APIRouter(prefix="/api/v1", tags=["bias", "explanations"])


class BiasRunBody(BaseModel):
    """A suite to replay and what to replay it against."""

    model_config = ConfigDict(extra="forbid")
    suite: str | dict[str, Any] = Field(
        description="the suite (kind BiasSuite): its YAML or JSON text, or the document as an object (examples/acme-health/bias/)"
    )
    target: str = Field(
        min_length=1, max_length=300, description="a model id (catalog model, BASE:ADAPTER, NAME@N, NAME@ALIAS) or a deployment"
    )
    revision: int | None = Field(None, ge=1, le=VERSION_MAX, description="a deployment's revision (default: its stable one)")
    wait: bool = Field(False, description="run in this server and answer the report, instead of submitting a bias job")


def _bias(request: Request) -> Any:
    s = services_of(request)
    if s.bias is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "bias probes are not enabled on this server")
    return s


@router.post(
    "/bias/runs",
    status_code=202,
    responses=errors(404, 409, 503, ok_200="the stored bias report (wait: true)"),
)
async def run_bias(body: BiasRunBody, request: Request) -> Response:
    """Replay a counterfactual bias suite; a job (202) or, with ``wait``, the report (200)."""
    from plinth.oversight.bias_kind import parse_spec

    s = _bias(request)
    spec: dict[str, Any] = {"suite": body.suite, "target": body.target}
    if body.revision is not None:
        spec["revision"] = body.revision
    suite, target, revision = await run_in_threadpool(parse_spec, spec)
    if s.auth is not None:
        s.auth.check_model(principal_of(request), target)
    if not body.wait:
        job, created = await run_in_threadpool(
            lambda: s.jobs.submit_request(
                "bias", spec, idempotency_key=request.headers.get("idempotency-key"), name=f"bias {suite.name} on {target}"[:200]
            )
        )
        return JSONResponse({"job": job.public_dict(), "created": created}, status_code=202)
    report = await s.bias.run(suite, target, revision=revision)
    return JSONResponse({"report": report.public_dict()}, status_code=200)


@router.get("/bias/reports")
def list_bias_reports(
    request: Request,
    target: str | None = Query(None, max_length=300, description="a model version (NAME@N or a catalog id) or a deployment"),
    suite: str | None = Query(None, max_length=100),
    passed: bool | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """Bias reports, newest first (without their answers)."""
    reports = _bias(request).bias.list(target=target, suite=suite, passed=passed, limit=limit)
    return {"reports": [r.summary_dict() for r in reports]}


@router.get("/bias/reports/{report_id}")
def get_bias_report(request: Request, report_id: str = Path(max_length=64)) -> dict[str, Any]:
    """One report: per attribute its metrics against thresholds, examples and every answer."""
    out: dict[str, Any] = _bias(request).bias.get(report_id).public_dict()
    return out


@router.get("/responses/{response_id}/explanation", responses=errors(409, 503))
async def explain_response(
    request: Request,
    response_id: str = Path(max_length=80, description="a /v1 chat response id (chatcmpl-...)"),
    max_passages: int = Query(8, ge=1, le=16, description="cited passages ablated, in citation order"),
    max_spans: int = Query(16, ge=0, le=48, description="spans of the question occluded (words, grouped when longer)"),
) -> dict[str, Any]:
    """Which cited passages and which words of the question the logged answer depends on."""
    s = services_of(request)
    if s.explain is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "explanations are not enabled on this server")
    out: dict[str, Any] = await s.explain.explain(response_id, max_passages=max_passages, max_spans=max_spans)
    return out
