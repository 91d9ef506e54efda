"""OpenAI-compatible inference API under ``/v1``. Handlers stay short: the service does the work."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from plinth.api.deps import services_of
from plinth.api.openapi import errors, stream
from plinth.api.streaming import ClientDisconnected, SSEResponse, run_until_disconnect
from plinth.serving.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    ModelList,
)
from plinth.serving.service import GenerationJob

router = APIRouter(prefix="/v1", tags=["openai"])

#: what generation can answer besides the errors every /v1 route gets (plinth.api.openapi)
GENERATION = {
    **errors(429, 502, 503),
    **stream("text/event-stream", "with stream=true: server-sent events, chunks then data: [DONE]"),
}


@router.get("/models", response_model=ModelList)
def list_models(request: Request) -> dict[str, Any]:
    s = services_of(request)
    data = [
        {
            "id": m.name,
            "object": "model",
            "created": int(m.created_at.timestamp()) if m.created_at else 0,
            "owned_by": "plinth",
        }
        for m in s.catalog.list()
    ]
    data += [
        {
            "id": a.model_id,
            "object": "model",
            "created": int(a.created_at.timestamp()) if a.created_at else 0,
            "owned_by": "plinth",
            "parent": a.base_model,
        }
        for a in s.catalog.list_adapters()
    ]
    if s.registry is not None:  # registered models: NAME and NAME@ALIAS, each with the id serving it
        data += [
            {
                "id": r["id"],
                "object": "model",
                "created": int(r["created"].timestamp()) if r["created"] else 0,
                "owned_by": "plinth",
                "parent": r["parent"],
            }
            for r in s.registry.served_ids()
        ]
    if s.deployments is not None:  # deployments: stable names; which version answers is not shown
        data += [
            {"id": d.name, "object": "model", "created": int(d.created_at.timestamp()) if d.created_at else 0, "owned_by": "plinth"}
            for d in s.deployments.list()
        ]
    return {"object": "list", "data": data}


@router.get("/models/{model_id}")
def get_model(model_id: str, request: Request) -> dict[str, Any]:
    services = services_of(request)
    catalog = services.catalog
    dep = services.deployments.store.find_deployment(model_id) if services.deployments is not None and ":" not in model_id else None
    if dep is not None:
        created = int(dep.created_at.timestamp()) if dep.created_at else 0
        return {"id": dep.name, "object": "model", "created": created, "owned_by": "plinth"}
    if services.registry is not None and ":" not in model_id and catalog.store.find_model(model_id) is None:
        mv = services.registry.resolve_version(model_id)
        if mv is not None:
            created = int(mv.created_at.timestamp()) if mv.created_at else 0
            return {"id": model_id, "object": "model", "created": created, "owned_by": "plinth", "parent": mv.served_as}
    base, sep, adapter = model_id.partition(":")
    if sep:
        catalog.check_model_id(model_id)  # MODEL_NOT_FOUND for an unknown base:adapter
        a = catalog.get_adapter(base, adapter)
        created = int(a.created_at.timestamp()) if a.created_at else 0
        return {"id": a.model_id, "object": "model", "created": created, "owned_by": "plinth", "parent": base}
    m = catalog.get(model_id)
    return {"id": m.name, "object": "model", "created": int(m.created_at.timestamp()) if m.created_at else 0, "owned_by": "plinth"}


async def _respond(request: Request, job: GenerationJob, stream: bool) -> Response:
    if stream:
        return SSEResponse(job.sse(), headers=job.headers, on_close=job.close)
    try:
        body = await run_until_disconnect(request, job.collect())
    except ClientDisconnected:
        return Response(status_code=499)
    finally:
        job.close()
    return JSONResponse(body, headers=job.headers)


@router.post("/chat/completions", response_model=ChatCompletionResponse, responses={**GENERATION, **errors(404)})
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    try:
        # A client that leaves while its request waits in the queue gives up its place.
        job = await run_until_disconnect(request, services_of(request).completions.start_chat(body))
    except ClientDisconnected:
        return Response(status_code=499)
    return await _respond(request, job, body.stream)


@router.post("/completions", response_model=CompletionResponse, responses={**GENERATION, **errors(404)})
async def completions(body: CompletionRequest, request: Request) -> Response:
    try:
        job = await run_until_disconnect(request, services_of(request).completions.start_completion(body))
    except ClientDisconnected:
        return Response(status_code=499)
    return await _respond(request, job, body.stream)
