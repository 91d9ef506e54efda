"""The tracking and registry areas of the metadata store."""

from __future__ import annotations

import abc
from typing import Any

from plinth.domain.tracking import EvalReport, MetricPoint, ModelVersion, RegisteredModel, Run, RunArtifact, RunStatus


class TrackingStore(abc.ABC):
    """Runs with their parameters, per-step metrics and artifacts."""

    @abc.abstractmethod
    def create_run(self, run: Run) -> Run: ...

    @abc.abstractmethod
    def get_run(self, run_id: str) -> Run:
        """PlinthError(NOT_FOUND) if absent."""

    @abc.abstractmethod
    def find_run_by_job(self, job_id: str) -> Run | None: ...

    @abc.abstractmethod
    def list_runs(
        self,
        *,
        kind: str | None = None,
        status: RunStatus | None = None,
        base_model: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Run]:
        """Newest first; ``offset`` skips that many (paging)."""

    @abc.abstractmethod
    def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        summary: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        error: str | None = None,
        ended: bool = False,
    ) -> Run:
        """Change a run; ``summary`` and ``params`` are merged into what is stored."""

    @abc.abstractmethod
    def delete_run(self, run_id: str) -> None: ...

    @abc.abstractmethod
    def log_metrics(self, run_id: str, points: list[MetricPoint]) -> None:
        """Store metric values; a (key, step) logged again replaces the earlier value."""

    @abc.abstractmethod
    def get_metrics(self, run_id: str, keys: list[str] | None = None) -> dict[str, list[MetricPoint]]:
        """Every metric of the run (or the named ones), each ordered by step."""

    @abc.abstractmethod
    def downsample_metrics(self, run_id: str, keys: list[str] | None = None, max_points: int = 1000) -> dict[str, list[MetricPoint]]:
        """Every metric of the run (or the named ones), each ordered by step, in at most about
        ``max_points`` points: a series that long or shorter whole, a longer one cut into
        ``max_points / 2`` equal step ranges of which the lowest and the highest point are kept,
        with the series' first and last point (so a spike of one step survives). Computed by the
        database, never by reading every point; the points carry no time (``at`` is None)."""

    @abc.abstractmethod
    def metric_keys(self, run_id: str) -> dict[str, int]:
        """The run's metric keys, each with how many points it has (sorted by key)."""

    @abc.abstractmethod
    def count_runs(self, *, kind: str | None = None, status: RunStatus | None = None) -> int:
        """How many runs :meth:`list_runs` would page through with these filters."""

    @abc.abstractmethod
    def add_run_artifact(self, artifact: RunArtifact) -> RunArtifact:
        """Record an artifact; the same name again replaces the record."""

    @abc.abstractmethod
    def list_run_artifacts(self, run_id: str) -> list[RunArtifact]: ...


class RegistryStore(abc.ABC):
    """Registered models, their versions (with lineage), aliases and evaluation reports."""

    @abc.abstractmethod
    def create_registered_model(self, name: str, description: str = "") -> RegisteredModel:
        """PlinthError(ALREADY_EXISTS) if taken."""

    @abc.abstractmethod
    def get_registered_model(self, name: str) -> RegisteredModel:
        """PlinthError(NOT_FOUND) if absent."""

    @abc.abstractmethod
    def find_registered_model(self, name: str) -> RegisteredModel | None: ...

    @abc.abstractmethod
    def list_registered_models(self) -> list[RegisteredModel]: ...

    @abc.abstractmethod
    def delete_registered_model(self, name: str) -> list[ModelVersion]:
        """Delete the model with its versions and aliases; return the versions deleted."""

    @abc.abstractmethod
    def add_model_version(self, version: ModelVersion) -> ModelVersion:
        """Store the next version of ``version.name`` (its ``version`` field is ignored: the
        store numbers versions, safely under concurrent writers). The registered model must
        exist."""

    @abc.abstractmethod
    def get_model_version(self, name: str, version: int) -> ModelVersion:
        """PlinthError(NOT_FOUND) if absent."""

    @abc.abstractmethod
    def list_model_versions(self, name: str) -> list[ModelVersion]:
        """Oldest first."""

    @abc.abstractmethod
    def find_versions_by_served_id(self, served_as: str) -> list[ModelVersion]: ...

    @abc.abstractmethod
    def update_model_version_card(self, name: str, version: int, model_card: str) -> None: ...

    @abc.abstractmethod
    def set_model_version_digest(self, name: str, version: int, digest: str) -> None: ...

    @abc.abstractmethod
    def delete_model_version(self, name: str, version: int) -> ModelVersion:
        """Delete a version (and aliases pointing at it)."""

    @abc.abstractmethod
    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` at ``version`` (which must exist)."""

    @abc.abstractmethod
    def delete_alias(self, name: str, alias: str) -> None: ...

    @abc.abstractmethod
    def add_eval_report(self, report: EvalReport) -> EvalReport: ...

    @abc.abstractmethod
    def get_eval_report(self, report_id: str) -> EvalReport: ...

    @abc.abstractmethod
    def list_eval_reports(
        self, *, registry_name: str | None = None, registry_version: int | None = None, model: str | None = None
    ) -> list[EvalReport]:
        """Newest first."""
