"""The drift area of the metadata store (monitoring, issue 14): stored drift measurements of
deployments, a time series per deployment. Reads see the call's project only (ADR 0083)."""

from __future__ import annotations

import abc
from datetime import datetime

from plinth.domain.drift import DriftRun


class DriftStore(abc.ABC):
    """Methods of this area; see :mod:`plinth.store.sql.drift`."""

    @abc.abstractmethod
    def add_drift_run(self, run: DriftRun) -> DriftRun:
        """Store a measurement in the current project (``at`` now when None); it with its id."""

    @abc.abstractmethod
    def get_drift_run(self, run_id: int) -> DriftRun:
        """One measurement by id; ``not_found`` when the project has none of that id."""

    @abc.abstractmethod
    def list_drift_runs(
        self,
        deployment: str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        revision: int | None = None,
        limit: int = 100,
    ) -> list[DriftRun]:
        """Measurements (of one deployment, or all), newest first, at most ``limit``."""

    @abc.abstractmethod
    def latest_drift_runs(self) -> list[DriftRun]:
        """The newest run of each deployment made over all its revisions and adapters (the one
        the per-deployment gauges show); in the system scope, of every project."""

    @abc.abstractmethod
    def delete_drift_runs(self, deployment: str) -> int:
        """Delete a deployment's measurements; how many went."""
