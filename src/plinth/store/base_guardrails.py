"""The guardrails area of the metadata store: versioned policies and guardrail events."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from plinth.domain.guardrails import GuardrailEvent, PolicySummary, PolicyVersion


class GuardrailsStore(abc.ABC):
    @abc.abstractmethod
    def list_guardrail_policies(self) -> list[PolicySummary]:
        """Every policy, by name."""

    @abc.abstractmethod
    def get_guardrail_policy(self, name: str, version: int | None = None) -> PolicyVersion | None:
        """One version of a policy (the latest when ``version`` is None), or None."""

    @abc.abstractmethod
    def list_guardrail_policy_versions(self, name: str) -> list[PolicyVersion]:
        """Every version of a policy, oldest first ([] for an unknown policy)."""

    @abc.abstractmethod
    def put_guardrail_policy(
        self, name: str, spec: dict[str, Any], digest: str, description: str = "", *, builtin: bool = False
    ) -> tuple[PolicyVersion, bool]:
        """Store ``spec`` as the next version of ``name`` (creating the policy), unless the
        latest version has the same digest. Returns (the latest version, created)."""

    @abc.abstractmethod
    def delete_guardrail_policy(self, name: str) -> bool:
        """Delete a policy and its versions (events stay); False if it did not exist."""

    @abc.abstractmethod
    def add_guardrail_events(self, events: Sequence[GuardrailEvent]) -> None:
        """Record findings (never text)."""

    @abc.abstractmethod
    def list_guardrail_events(
        self,
        *,
        model_id: str | None = None,
        policy: str | None = None,
        request_id: str | None = None,
        detector: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[GuardrailEvent]:
        """Events, newest first, filtered; ``before_id`` pages backwards."""
