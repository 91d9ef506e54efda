"""``POST /v1/embeddings``, OpenAI-compatible (OpenAI error shape, as every ``/v1`` path).

``input`` is a string, a list of strings, an array of token ids or a list of token-id arrays
(OpenAI's ``cl100k_base`` ids, as LangChain's ``OpenAIEmbeddings`` sends them; decoded to
text, ADR 0113). ``encoding_format`` is ``float`` or ``base64`` (little-endian float32, what
the official client asks for by default). ``dimensions`` keeps the first N components,
rescaled to unit length. The model is the configured embedder, named by its backend name or
by its model name. The rules and limits live in :mod:`plinth.rag.embedding_requests`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from plinth.api.deps import services_of
from plinth.domain.numbers import API_INT_MAX
from plinth.domain.projects import in_context
from plinth.rag.embedding_requests import MAX_IDS_PER_INPUT, MAX_INPUTS, MAX_RANK_ID, MAX_TOKEN_ID, SPECIAL_TOKEN_IDS, create_embeddings

router = APIRouter(prefix="/v1", tags=["openai"])

#: the ids of cl100k_base exactly: the ranks 0..100255 and the five special tokens
_TOKEN_ID = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": MAX_RANK_ID},
        {"type": "integer", "enum": sorted(SPECIAL_TOKEN_IDS)},
    ]
}
_TOKEN_ARRAY = {"type": "array", "items": _TOKEN_ID, "minItems": 1, "maxItems": MAX_IDS_PER_INPUT}
#: what ``input`` may be, described exactly (checked by the service, which names the bad item)
INPUT_SCHEMA = {
    "description": (
        "a string, a list of strings, an array of token ids, or a list of token-id arrays; token ids are OpenAI's "
        f"cl100k_base ids (0..{MAX_RANK_ID} and the special tokens up to {MAX_TOKEN_ID}), decoded to text before embedding"
    ),
    "anyOf": [
        {"type": "string", "pattern": "\\S"},
        {"type": "array", "items": {"type": "string", "pattern": "\\S"}, "minItems": 1, "maxItems": MAX_INPUTS},
        _TOKEN_ARRAY,
        {"type": "array", "items": _TOKEN_ARRAY, "minItems": 1, "maxItems": MAX_INPUTS},
    ],
}


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(..., min_length=1, max_length=300)
    input: Annotated[Any, WithJsonSchema(INPUT_SCHEMA)] = Field(...)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, le=API_INT_MAX, description="keep the first N components (at most the model's)")
    user: str | None = None


@router.post("/embeddings")
async def create_embeddings_route(body: EmbeddingRequest, request: Request) -> dict[str, Any]:
    knowledge = services_of(request).knowledge
    assert knowledge is not None  # build_services always builds it
    loop = asyncio.get_running_loop()
    answer, emb, n = await loop.run_in_executor(
        None,
        in_context(
            lambda: create_embeddings(
                knowledge, model=body.model, input=body.input, encoding_format=body.encoding_format, dimensions=body.dimensions
            )
        ),
    )
    services_of(request).metrics.embedding_inputs.labels(emb.name).inc(n)
    return answer
