"""``POST /v1/embeddings``, OpenAI-compatible (OpenAI error shape, as every ``/v1`` path).

``input`` is a string or a list of strings (up to 2048, each non-empty and within the
model's input limit); token arrays are refused with 400. ``encoding_format`` is ``float``
or ``base64`` (little-endian float32, what the official client asks for by default).
``dimensions`` is accepted only when it equals the model's dimension. The model is the
configured embedder, named by its backend name or by its model name.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from plinth.api.deps import services_of
from plinth.domain.numbers import API_INT_MAX
from plinth.domain.projects import in_context
from plinth.errors import ErrorCode, PlinthError

router = APIRouter(prefix="/v1", tags=["openai"])

MAX_INPUTS = 2048


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(..., min_length=1, max_length=300)
    input: Any = Field(..., description="a string or a list of strings")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, le=API_INT_MAX)
    user: str | None = None


def _inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        texts = value
    elif (
        isinstance(value, list)
        and value
        and all(isinstance(v, int) or (isinstance(v, list) and all(isinstance(t, int) for t in v)) for v in value)
    ):
        raise PlinthError(ErrorCode.INVALID_REQUEST, "token arrays are not accepted here; send the text as strings", param="input")
    elif isinstance(value, list) and not value:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "input must not be an empty list", param="input")
    else:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "input must be a string or a list of strings", param="input")
    if len(texts) > MAX_INPUTS:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"input has {len(texts)} items; at most {MAX_INPUTS} are allowed", param="input")
    for i, t in enumerate(texts):
        if not t.strip():
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"input[{i}] is empty", param="input")
    return texts


def _embedder_for(request: Request, model: str) -> Any:
    knowledge = services_of(request).knowledge
    assert knowledge is not None  # build_services always builds it
    emb = knowledge.default_embedder()
    names = {emb.name.lower(), emb.model_id.lower(), emb.model_id.split("@")[0].lower(), emb.model_id.split("@")[0].split("/")[-1].lower()}
    if model.lower() not in names:
        raise PlinthError(
            ErrorCode.MODEL_NOT_FOUND,
            f"embedding model {model!r} does not exist here; use {emb.name!r} ({emb.model_id.split('@')[0]})",
            param="model",
        )
    return emb


@router.post("/embeddings")
async def create_embeddings(body: EmbeddingRequest, request: Request) -> dict[str, Any]:
    texts = _inputs(body.input)
    loop = asyncio.get_running_loop()
    emb = await loop.run_in_executor(None, in_context(lambda: _embedder_for(request, body.model)))
    if body.dimensions is not None and body.dimensions != emb.dim:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST, f"dimensions={body.dimensions} is not supported: {body.model} has {emb.dim}", param="dimensions"
        )
    counts = await loop.run_in_executor(None, in_context(lambda: emb.count_tokens_many(texts)))
    for i, n in enumerate(counts):
        if n > emb.max_tokens:
            raise PlinthError(
                ErrorCode.CONTEXT_LENGTH_EXCEEDED,
                f"input[{i}] has {n} tokens; {body.model} embeds at most {emb.max_tokens}",
                param="input",
            )
    vectors = await loop.run_in_executor(None, in_context(lambda: emb.embed(texts)))
    services_of(request).metrics.embedding_inputs.labels(emb.name).inc(len(texts))
    data = []
    for i, v in enumerate(vectors):
        value: Any = base64.b64encode(v.astype("<f4").tobytes()).decode() if body.encoding_format == "base64" else v.tolist()
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = sum(counts)
    return {"object": "list", "data": data, "model": body.model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
