"""Guardrail policies, findings and events (no I/O).

A *policy* is a named, versioned list of detector rules; a *finding* is what one detector
found in one text (a span for PII and secrets, the whole text for classifiers); an *event*
is a finding as it is stored and counted: detector, action, label, offsets and score, never
the text itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any


class Action(str, enum.Enum):
    """What a rule does when its detector fires."""

    BLOCK = "block"  # answer with the policy's safe answer (finish_reason content_filter)
    REDACT = "redact"  # replace the span with a typed placeholder such as <MEMBER_ID>
    FLAG = "flag"  # record the event and count it, change nothing
    ALLOW = "allow"  # the match is on the policy's allow list of public values: recorded, changes nothing


class Direction(str, enum.Enum):
    """Where a rule looks."""

    INPUT = "input"  # the request's messages or prompts, before retrieval and the model
    OUTPUT = "output"  # the model's answer, as it streams and once complete
    RETRIEVED = "retrieved"  # passages a knowledge base retrieved for the request


@dataclass(frozen=True)
class Finding:
    """One thing a detector found.

    ``start``/``end`` are code-point offsets into the checked text (end exclusive), or None
    for a finding about the whole text (toxicity, injection, topic). ``label`` is the entity
    type (``US_SSN``) or the class (``toxic``, ``injection``, ``off_topic``,
    ``unsupported``). ``reason`` explains the decision without quoting the text.
    """

    detector: str  # the rule's id in the policy (usually the detector kind)
    kind: str  # the detector kind (pii, toxicity, ...)
    label: str
    score: float
    reason: str = ""
    start: int | None = None
    end: int | None = None
    action: Action = Action.FLAG

    @property
    def is_span(self) -> bool:
        return self.start is not None and self.end is not None

    def shifted(self, offset: int) -> Finding:
        if not self.is_span:
            return self
        assert self.start is not None and self.end is not None
        return replace(self, start=self.start + offset, end=self.end + offset)

    def public_dict(self) -> dict[str, Any]:
        """What the API and the response extras show: no text."""
        out: dict[str, Any] = {
            "detector": self.detector,
            "kind": self.kind,
            "label": self.label,
            "action": self.action.value,
            "score": round(self.score, 4),
            "reason": self.reason,
        }
        if self.is_span:
            out["start"], out["end"] = self.start, self.end
        return out


@dataclass(frozen=True)
class PolicyVersion:
    """One immutable version of a named policy; ``spec`` is the validated policy document
    (see :mod:`plinth.guardrails.policy`)."""

    name: str
    version: int
    spec: dict[str, Any]
    digest: str
    description: str = ""
    created_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def public_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "description": self.description,
            "digest": self.digest,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "spec": self.spec,
        }


@dataclass(frozen=True)
class PolicySummary:
    name: str
    latest_version: int
    description: str = ""
    builtin: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "latest_version": self.latest_version,
            "description": self.description,
            "builtin": self.builtin,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


@dataclass(frozen=True)
class GuardrailEvent:
    """A finding as stored: who, where, what kind, where in the text, never the text."""

    request_id: str
    model_id: str
    policy: str
    policy_version: int
    direction: Direction
    detector: str
    kind: str
    label: str
    action: Action
    score: float
    start: int | None = None
    end: int | None = None
    reason: str = ""
    choice: int | None = None
    id: int | None = None
    created_at: datetime | None = None
    #: the project of the request (None: the scope of the store call that writes it)
    project: str | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "request_id": self.request_id,
            "model": self.model_id,
            "policy": self.policy,
            "policy_version": self.policy_version,
            "direction": self.direction.value,
            "detector": self.detector,
            "kind": self.kind,
            "label": self.label,
            "action": self.action.value,
            "score": round(self.score, 4),
            "start": self.start,
            "end": self.end,
            "reason": self.reason,
            "choice": self.choice,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


@dataclass
class CheckResult:
    """The outcome of checking one text against a policy in one direction."""

    text: str  # the text after redaction (unchanged when nothing was redacted)
    findings: list[Finding] = field(default_factory=list)
    blocked: bool = False
    safe_answer: str | None = None  # the answer to give when blocked

    @property
    def redacted(self) -> bool:
        return any(f.action is Action.REDACT for f in self.findings)
