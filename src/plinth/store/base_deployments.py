"""The deployments area of the metadata store: deployments, revisions, their history, usage
records and feedback."""

from __future__ import annotations

import abc
from datetime import datetime
from typing import Any

from plinth.domain.deployments import Deployment, DeploymentEvent, Feedback, Revision, Target, UsageRecord, WindowStats


class DeploymentsStore(abc.ABC):
    # -- deployments and revisions ------------------------------------------------------------
    @abc.abstractmethod
    def create_deployment(self, deployment: Deployment, targets: tuple[Target, ...], *, actor: str, note: str = "") -> Deployment:
        """Insert the deployment with revision 1 (``targets``) as its stable revision and a
        ``created`` event, in one transaction; ``already_exists`` for a taken name."""

    @abc.abstractmethod
    def get_deployment(self, name: str) -> Deployment:
        """``not_found`` when there is none."""

    @abc.abstractmethod
    def find_deployment(self, name: str) -> Deployment | None: ...

    @abc.abstractmethod
    def list_deployments(self) -> list[Deployment]: ...

    @abc.abstractmethod
    def delete_deployment(self, name: str) -> Deployment:
        """Delete the deployment, its revisions and history (usage and feedback stay)."""

    @abc.abstractmethod
    def add_revision(self, name: str, targets: tuple[Target, ...], *, actor: str, note: str = "") -> Revision:
        """The next revision of ``name`` (numbers grow by one, never reused)."""

    @abc.abstractmethod
    def get_revision(self, name: str, number: int) -> Revision: ...

    @abc.abstractmethod
    def list_revisions(self, name: str) -> list[Revision]:
        """Oldest first."""

    @abc.abstractmethod
    def update_deployment(
        self, name: str, changes: dict[str, Any], *, expected_generation: int | None, event: DeploymentEvent | None = None
    ) -> Deployment:
        """Apply ``changes`` (fields of :class:`Deployment`) and add ``event``, in one
        transaction, bumping ``generation``. With ``expected_generation`` the change applies only
        if the deployment is still at that generation, else ``conflict``."""

    @abc.abstractmethod
    def add_deployment_event(self, event: DeploymentEvent) -> DeploymentEvent: ...

    @abc.abstractmethod
    def list_deployment_events(self, name: str, *, limit: int = 100) -> list[DeploymentEvent]:
        """Newest first."""

    # -- usage ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def add_usage(self, records: list[UsageRecord]) -> None: ...

    @abc.abstractmethod
    def find_usage(self, response_id: str) -> UsageRecord | None: ...

    @abc.abstractmethod
    def usage_summary(
        self,
        *,
        group_by: tuple[str, ...],
        since: datetime | None = None,
        until: datetime | None = None,
        bucket_s: int | None = None,
        filters: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Requests, errors and tokens grouped by ``group_by`` (names in
        :data:`plinth.domain.deployments.USAGE_GROUPS`) and, with ``bucket_s``, by time bucket."""

    @abc.abstractmethod
    def window_stats(self, deployment: str, revisions: list[int], since: datetime) -> dict[int, WindowStats]:
        """Each revision's requests, errors, blocks, latency p95 and ratings since ``since``."""

    @abc.abstractmethod
    def prune_usage(self, before: datetime) -> int:
        """Delete usage records and feedback older than ``before``; returns how many went."""

    # -- feedback -------------------------------------------------------------------------------
    @abc.abstractmethod
    def add_feedback(self, feedback: Feedback) -> Feedback: ...

    @abc.abstractmethod
    def list_feedback(
        self, *, deployment: str | None = None, revision: int | None = None, response_id: str | None = None, limit: int = 100
    ) -> list[Feedback]:
        """Newest first."""
