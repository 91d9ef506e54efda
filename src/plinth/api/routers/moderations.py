"""``POST /v1/moderations``, OpenAI-compatible, over plinth's guardrail detectors (ADR 0113).

``model`` is one of OpenAI's moderation model names (plinth's toxicity detector) or a
guardrail policy (``NAME`` or ``NAME@VERSION``: its input rules). Each result has OpenAI's
``flagged``, ``categories``, ``category_scores`` and ``category_applied_input_types``, and
plinth's ``findings`` (what the policy's rules found, without text). Nothing is recorded.
The rules live in :mod:`plinth.guardrails.moderation`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from plinth.api.deps import services_of
from plinth.api.openapi import errors
from plinth.domain.projects import in_context
from plinth.errors import ErrorCode, PlinthError
from plinth.guardrails.moderation import ALIASES, CATEGORIES, DEFAULT_MODEL, MAX_CHARS, MAX_INPUTS, moderate

router = APIRouter(prefix="/v1", tags=["openai"])

_TEXT = {"type": "string", "maxLength": MAX_CHARS}
_TEXT_PART = {
    "type": "object",
    "properties": {"type": {"type": "string", "enum": ["text"]}, "text": _TEXT},
    "required": ["type", "text"],
}
INPUT_SCHEMA = {
    "description": "a string, a list of strings, or a list of text parts {'type': 'text', 'text': ...} (images are not judged)",
    "anyOf": [
        _TEXT,
        {"type": "array", "items": _TEXT, "minItems": 1, "maxItems": MAX_INPUTS},
        {"type": "array", "items": _TEXT_PART, "minItems": 1, "maxItems": MAX_INPUTS},
    ],
}


class ModerationRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input: Annotated[Any, WithJsonSchema(INPUT_SCHEMA)] = Field(...)
    model: str | None = Field(
        None,
        min_length=1,
        max_length=300,
        description=f"one of {', '.join(ALIASES)} (plinth's toxicity detector; default {DEFAULT_MODEL}), "
        "or a guardrail policy NAME or NAME@VERSION (its input rules)",
    )


class Finding(BaseModel):
    detector: str = Field(description="the rule's id in the policy")
    kind: str = Field(description="the detector kind (toxicity, pii, injection, ...)")
    label: str
    action: str = Field(description="what the policy does with it: block, redact or flag")
    score: float
    reason: str
    start: int | None = Field(None, ge=0, description="offset of a span finding in the input text")
    end: int | None = Field(None, ge=0)


def _per_category(value_schema: dict[str, Any], description: str) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "type": "object",
            "description": description,
            "properties": dict.fromkeys(CATEGORIES, value_schema),
            "required": list(CATEGORIES),
            "additionalProperties": False,
        }
    )


CategoryFlags = Annotated[dict[str, bool], _per_category({"type": "boolean"}, "OpenAI's categories: true where flagged")]
CategoryScores = Annotated[
    dict[str, float],
    _per_category({"type": "number", "minimum": 0, "maximum": 1}, "scores in [0, 1]; 0 for the categories plinth does not judge"),
]
CategoryInputTypes = Annotated[
    dict[str, list[str]],
    _per_category(
        {"type": "array", "items": {"type": "string", "enum": ["text"]}},
        "['text'] for the categories judged, [] for those plinth does not judge",
    ),
]


class ModerationResult(BaseModel):
    flagged: bool
    categories: CategoryFlags
    category_scores: CategoryScores
    category_applied_input_types: CategoryInputTypes
    findings: list[Finding] = Field(description="plinth's extension: what the rules found (no text)")


class ModerationResponse(BaseModel):
    id: str
    model: str = Field(description="the model asked for, or the policy version that judged")
    results: list[ModerationResult]


@router.post("/moderations", response_model=ModerationResponse, responses=errors(404))
async def create_moderation(body: ModerationRequest, request: Request) -> dict[str, Any]:
    guardrails = services_of(request).guardrails
    if guardrails is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "guardrails are not enabled on this server")
    loop = asyncio.get_running_loop()
    answer: dict[str, Any] = await loop.run_in_executor(None, in_context(lambda: moderate(guardrails, body.model, body.input)))
    return answer
