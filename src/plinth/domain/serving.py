"""What serving attaches to a model id (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime


@dataclass(frozen=True)
class Attachments:
    """What is attached to a served model id (a model, ``base:adapter`` or, later, a
    deployment target): a knowledge base for retrieval (``name`` or ``name@version``), a
    guardrail policy (``name`` or ``name@version``) and a system prompt. ``None`` means
    nothing attached."""

    knowledge_base: str | None = None
    guardrail_policy: str | None = None
    system_prompt: str | None = None
    updated_at: datetime | None = None
    #: grounded answering with the knowledge base (ADR 0115): "strict" answers by quoting the
    #: passage sentences that answer, or "I don't know"; "off" (or None) lets the model answer.
    #: Set on deployment targets; model attachments do not store it yet.
    grounding: str | None = None

    def overlay(self, other: Attachments | None) -> Attachments:
        """These attachments with every field ``other`` sets taking precedence."""
        if other is None:
            return self
        changes = {f.name: getattr(other, f.name) for f in fields(other) if getattr(other, f.name) is not None}
        return replace(self, **changes)

    def is_empty(self) -> bool:
        return self.knowledge_base is None and self.guardrail_policy is None and self.system_prompt is None and self.grounding is None
