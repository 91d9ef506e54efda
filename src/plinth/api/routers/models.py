"""Management API for the model catalog under ``/api/v1/models`` (canonical error shape)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from plinth.api.deps import services_of
from plinth.api.server_paths import import_path
from plinth.domain.numbers import INT32_MAX
from plinth.domain.projects import in_context
from plinth.errors import ErrorCode, PlinthError

router = APIRouter(prefix="/api/v1", tags=["models"])


class ImportModel(BaseModel):
    """Import a model file or directory that lies on the server, or register a remote engine."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, description="Catalog name (default: from the file name)")
    path: str | None = Field(None, description="GGUF file or safetensors directory inside an allowed import directory")
    runtime: str | None = Field(None, description="llamacpp, torch or openai (default: by format)")
    license: str | None = None
    base_url: str | None = Field(None, description="Remote OpenAI-compatible engine, e.g. http://vllm:8000/v1")
    upstream_model: str | None = None
    api_key_secret: str | None = Field(
        None, max_length=64, description="Name of the secret (defined by the operator in PLINTH_SECRETS) sent as the engine's API key"
    )
    api_key_env: str | None = Field(
        None, description="Removed: refused. Engines' keys come from named secrets (api_key_secret)", json_schema_extra={"deprecated": True}
    )
    context_length: int | None = Field(None, ge=1, le=INT32_MAX)


@router.get("/models")
def list_models(request: Request) -> dict[str, Any]:
    s = services_of(request)
    return {"models": [_view(request, m) for m in s.catalog.list()]}


@router.get("/models/{name}")
def get_model(name: str, request: Request) -> dict[str, Any]:
    return _view(request, services_of(request).catalog.get(name))


@router.post("/models", status_code=201)
async def import_model(body: ImportModel, request: Request) -> dict[str, Any]:
    s = services_of(request)
    if bool(body.path) == bool(body.base_url):
        raise PlinthError(ErrorCode.INVALID_REQUEST, "give exactly one of 'path' (a local model) or 'base_url' (a remote engine)")
    if body.api_key_env is not None:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            "api_key_env is no longer accepted: the server never sends an environment variable a request names; "
            "give api_key_secret, the name of a secret the operator defined in PLINTH_SECRETS",
            param="api_key_env",
        )
    if body.base_url:
        if not body.name:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "a remote model needs a 'name'", param="name")
        loop = asyncio.get_running_loop()  # the base_url's host is resolved: not on the event loop
        record = await loop.run_in_executor(
            None,
            in_context(
                lambda: s.catalog.add_remote(
                    body.name or "",
                    base_url=body.base_url or "",
                    upstream_model=body.upstream_model,
                    api_key_secret=body.api_key_secret,
                    context_length=body.context_length,
                ),
            ),
        )
    else:
        path = import_path(request, body.path or "", "path")
        loop = asyncio.get_running_loop()
        record = await loop.run_in_executor(
            None, in_context(lambda: s.catalog.add(path, name=body.name, runtime=body.runtime, license=body.license))
        )
    return _view(request, record)


@router.delete("/models/{name}", status_code=204)
def delete_model(name: str, request: Request) -> Response:
    s = services_of(request)
    s.catalog.remove(name)
    s.models.unload(name)
    return Response(status_code=204)


@router.post("/models/{name}/load")
async def load_model(name: str, request: Request) -> dict[str, Any]:
    s = services_of(request)
    lm = await s.models.get(name)
    return {**_view(request, lm.record), "load_seconds": round(lm.load_seconds, 3)}


@router.post("/models/{name}/unload")
def unload_model(name: str, request: Request) -> dict[str, Any]:
    s = services_of(request)
    record = s.catalog.get(name)
    s.models.unload(name)
    return _view(request, record)


class ImportAdapter(BaseModel):
    """Import a LoRA adapter of a catalog model from a server path (GGUF LoRA or PEFT dir)."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="GGUF LoRA file or PEFT adapter directory inside an allowed import directory")
    name: str | None = Field(None, description="Adapter name (served as the model id BASE:NAME)")


@router.get("/models/{name}/adapters")
def list_adapters(name: str, request: Request) -> dict[str, Any]:
    s = services_of(request)
    base = s.catalog.get(name)
    loaded = _loaded_adapters(request, base.name)
    return {
        "adapters": [
            {**a.public_dict(), "loaded": bool({a.digest, a.gguf_digest} & set(loaded))} for a in s.catalog.list_adapters(base.name)
        ]
    }


@router.post("/models/{name}/adapters", status_code=201)
async def import_adapter(name: str, body: ImportAdapter, request: Request) -> dict[str, Any]:
    s = services_of(request)
    path = import_path(request, body.path, "path")
    loop = asyncio.get_running_loop()
    record = await loop.run_in_executor(None, in_context(lambda: s.catalog.add_adapter(name, path, name=body.name)))
    return record.public_dict()


@router.get("/models/{name}/adapters/{adapter}")
def get_adapter(name: str, adapter: str, request: Request) -> dict[str, Any]:
    record = services_of(request).catalog.get_adapter(name, adapter)
    loaded = set(_loaded_adapters(request, name))
    return {**record.public_dict(), "loaded": bool({record.digest, record.gguf_digest} & loaded)}


@router.delete("/models/{name}/adapters/{adapter}", status_code=204)
def delete_adapter(name: str, adapter: str, request: Request) -> Response:
    services_of(request).catalog.remove_adapter(name, adapter)
    return Response(status_code=204)


def _loaded_adapters(request: Request, base: str) -> list[str]:
    lm = next((m for m in services_of(request).models.loaded() if m.record.name == base), None)
    return lm.runtime.loaded_adapters() if lm is not None else []


@router.get("/runtimes")
def list_runtimes(request: Request) -> dict[str, Any]:
    from plinth.services import runtime_status

    return {"runtimes": [r.public_dict() for r in runtime_status()]}


def _view(request: Request, record: Any) -> dict[str, Any]:
    s = services_of(request)
    view: dict[str, Any] = record.public_dict()
    lm = next((m for m in s.models.loaded() if m.record.name == record.name), None)
    view["loaded"] = lm is not None
    if lm is not None:
        view["health"] = {"ok": lm.runtime.health().ok, "running": lm.admission.running, "queued": lm.admission.queued}
        view["engine"] = lm.runtime.stats()
    return view


# -- attachments -------------------------------------------------------------------------------
class AttachmentsBody(BaseModel):
    """What to attach to a model id. A field left out keeps its value; ``null`` or ``""``
    detaches it."""

    model_config = ConfigDict(extra="forbid")
    knowledge_base: str | None = Field(None, max_length=160, description="knowledge base: name or name@version")
    guardrail_policy: str | None = Field(None, max_length=160, description="guardrail policy: name or name@version")
    system_prompt: str | None = Field(None, description="system prompt added when a request has none")


def _attachments_view(model_id: str, a: Any) -> dict[str, Any]:
    return {
        "model": model_id,
        "knowledge_base": a.knowledge_base,
        "guardrail_policy": a.guardrail_policy,
        "system_prompt": a.system_prompt,
        "updated_at": a.updated_at.isoformat() if a.updated_at else None,
    }


@router.get("/models/{model_id}/attachments")
def get_attachments(model_id: str, request: Request) -> dict[str, Any]:
    """What is attached to a model name, ``base:adapter`` or registry id (``acme-faq@1``)."""
    return _attachments_view(model_id, services_of(request).attachments.show(model_id))


@router.patch("/models/{model_id}/attachments")
def update_attachments(model_id: str, body: AttachmentsBody, request: Request) -> dict[str, Any]:
    s = services_of(request)
    changes = {k: ("" if v is None else v) for k, v in body.model_dump(exclude_unset=True).items()}
    stored = s.attachments.update(model_id, **changes)
    return _attachments_view(model_id, stored)


@router.delete("/models/{model_id}/attachments", status_code=204)
def delete_attachments(model_id: str, request: Request) -> Response:
    from plinth.domain.serving import Attachments

    s = services_of(request)
    s.attachments.set(model_id, Attachments())
    return Response(status_code=204)
