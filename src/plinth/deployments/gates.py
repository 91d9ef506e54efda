"""Gate kinds beyond evaluation reports: the extension point of the evaluation gate.

A gate rule is ``{"metric", "min"/"max", "dataset", "split"}`` (kind ``eval``: the candidate's
evaluation reports, judged by :meth:`DeploymentService.gate_failures` itself) or
``{"kind": K, ...}``, judged by the :class:`GateKind` registered under K on the deployment
service (``DeploymentService.gate_kinds``). A layer above deployments (oversight's bias
probes) registers its kind from the composition root, so this package names nothing above it.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from plinth.domain.deployments import GateRule, Target


class GateKind(abc.ABC):
    """One kind of gate rule: how its options are checked, shown and judged."""

    kind: ClassVar[str]

    @abc.abstractmethod
    def parse(self, options: dict[str, Any], param: str) -> dict[str, Any]:
        """The rule's options (every key but ``kind``), normalised; PlinthError
        (``invalid_request``, ``param`` naming the field) when they are wrong."""

    def describe(self, options: dict[str, Any]) -> str:
        return f"{self.kind} " + ", ".join(f"{k}={v}" for k, v in sorted(options.items()))

    @abc.abstractmethod
    def failures(self, rule: GateRule, target: Target) -> list[str]:
        """Why ``target`` does not pass ``rule`` (empty: it passes)."""
