"""The request log (no I/O): one entry per ``/v1`` request and its answer.

An entry records who asked (key, user, project), what answered (deployment, revision, model
version, adapter), how it went (outcome, finish reason, latency, time to first token,
tokens), what the guardrail policy found and the passages retrieval cited, and the rating
feedback gave it. Its text is only what the policy's redaction produced: the member's last
message after input redaction and the answer as it was sent (redacted while it streamed), or
no text at all (``text_mode`` ``none``). Citations are stored without the passages' text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: the most an export or a listing reads from the store in one query
PAGE_MAX = 1000


class TextMode(str, enum.Enum):
    """What text an entry holds. ``redacted``: the prompt and the answer as the attached
    guardrail policy left them; ``none``: no text (the setting, or no policy checked it)."""

    REDACTED = "redacted"
    NONE = "none"


@dataclass(frozen=True)
class RequestLogEntry:
    """One logged request. ``id`` is the store's (None before it is written); ``project`` is
    the request's (None: the scope of the store call that writes it)."""

    response_id: str
    kind: str  # chat | text | embeddings
    model: str  # as requested (a deployment name, a model id, ...)
    served_model: str  # the model id that answered (base or base:adapter)
    outcome: str  # ok | error | refused | cancelled (as usage records)
    at: datetime | None = None
    model_version: str | None = None
    adapter: str | None = None
    deployment: str | None = None
    revision: int | None = None
    key_id: str | None = None
    user: str | None = None
    error_code: str | None = None
    finish_reason: str | None = None
    latency_s: float = 0.0
    ttft_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    text_mode: TextMode = TextMode.NONE
    prompt_text: str | None = None
    response_text: str | None = None
    policy: str | None = None  # the guardrail policy version that checked it (name@N)
    findings: list[dict[str, Any]] = field(default_factory=list)  # counts by detector, action, label, direction
    finding_count: int = 0
    blocked: bool = False  # a guardrail blocked the request or halted the answer
    refused: bool | None = None  # the answer refuses or says it does not know (None: no answer)
    grounded: bool | None = None  # cited passages and no groundedness finding (None: nothing retrieved)
    citations: list[dict[str, Any]] = field(default_factory=list)  # without the passages' text
    embedding: bytes | None = None  # float32 of the redacted prompt (the embedded MiniLM)
    anomaly_score: float | None = None
    anomaly: dict[str, Any] | None = None
    feedback: int | None = None  # the last rating: -1, 0, 1
    size_bytes: int = 0
    project: str | None = None
    id: int | None = None
    #: whether an embedding is stored, when it was not loaded (lists); None: ``embedding`` says
    stored_embedding: bool | None = None

    def public_dict(self, *, with_embedding: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "response_id": self.response_id,
            "at": self.at.isoformat() if self.at else None,
            "project": self.project,
            "kind": self.kind,
            "model": self.model,
            "served_model": self.served_model,
            "model_version": self.model_version,
            "adapter": self.adapter,
            "deployment": self.deployment,
            "revision": self.revision,
            "key_id": self.key_id,
            "user": self.user,
            "outcome": self.outcome,
            "error_code": self.error_code,
            "finish_reason": self.finish_reason,
            "latency_s": self.latency_s,
            "ttft_s": self.ttft_s,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "text_mode": self.text_mode.value,
            "prompt": self.prompt_text,
            "response": self.response_text,
            "policy": self.policy,
            "findings": list(self.findings),
            "finding_count": self.finding_count,
            "blocked": self.blocked,
            "refused": self.refused,
            "grounded": self.grounded,
            "citations": list(self.citations),
            "anomaly_score": self.anomaly_score,
            "anomaly": self.anomaly,
            "feedback": self.feedback,
            "size_bytes": self.size_bytes,
            "has_embedding": self.embedding is not None if self.stored_embedding is None else self.stored_embedding,
        }
        if with_embedding:
            out["embedding"] = self.embedding
        return out


@dataclass(frozen=True)
class RequestQuery:
    """Which entries a listing or an export reads; every field None means "any".

    ``flagged_above``: entries whose anomaly score is above it. ``before_id``: keyset paging,
    entries older than that id (newest first)."""

    deployment: str | None = None
    revision: int | None = None
    model: str | None = None  # the model id as requested, the id that served it or the model version
    adapter: str | None = None
    key_id: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    has_findings: bool | None = None
    flagged_above: float | None = None
    feedback: int | None = None  # the last rating equals this
    before_id: int | None = None


@dataclass(frozen=True)
class PromptSample:
    """A logged prompt for drift and anomaly scores: its id, when, what answered it, the
    redacted text (None without text) and the float32 embedding bytes (None without)."""

    id: int
    response_id: str
    at: datetime
    deployment: str | None
    revision: int | None
    adapter: str | None
    model_version: str | None
    prompt_text: str | None
    embedding: bytes | None
    anomaly_score: float | None = None


@dataclass(frozen=True)
class SignalRow:
    """The columns quality signals are computed from (no text)."""

    at: datetime
    revision: int | None
    outcome: str
    latency_s: float
    ttft_s: float | None
    blocked: bool
    refused: bool | None
    grounded: bool | None
    feedback: int | None
