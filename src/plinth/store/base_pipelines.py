"""The pipelines area of the metadata store (automation, issue 15): pipeline versions, runs and
their steps, triggers and trigger events.

Every row belongs to a project; reads see the call's project only (ADR 0083). In the system
scope (the server's runner threads) the listings of unfinished runs and enabled triggers see
every project's, and each row names its project.
"""

from __future__ import annotations

import abc
from datetime import datetime
from typing import Any

from plinth.domain.pipelines import Pipeline, PipelineRun, PipelineStep, RunState, Trigger, TriggerEvent


class PipelinesStore(abc.ABC):
    """Methods of this area; see :mod:`plinth.store.sql.pipelines`."""

    # -- pipelines -------------------------------------------------------------------------
    @abc.abstractmethod
    def add_pipeline_version(self, pipeline: Pipeline) -> Pipeline:
        """Store ``pipeline`` as the next version of its name (``version`` is assigned)."""

    @abc.abstractmethod
    def get_pipeline(self, name: str, version: int | None = None) -> Pipeline:
        """The given version, or the newest; PlinthError(NOT_FOUND) if absent."""

    @abc.abstractmethod
    def list_pipelines(self) -> list[Pipeline]:
        """The newest version of every pipeline, by name."""

    @abc.abstractmethod
    def delete_pipeline(self, name: str) -> Pipeline:
        """Remove every version of a pipeline (its runs stay, as history); the newest version;
        PlinthError(NOT_FOUND) if absent."""

    # -- runs --------------------------------------------------------------------------------
    @abc.abstractmethod
    def add_pipeline_run(self, run: PipelineRun, steps: list[PipelineStep]) -> PipelineRun:
        """Store a new run and its steps in one transaction."""

    @abc.abstractmethod
    def get_pipeline_run(self, run_id: str) -> PipelineRun:
        """PlinthError(NOT_FOUND) if absent."""

    @abc.abstractmethod
    def list_pipeline_runs(
        self, *, pipeline: str | None = None, states: tuple[RunState, ...] = (), limit: int = 100, every_project: bool = False
    ) -> list[PipelineRun]:
        """Runs matching the filters, newest first (``every_project``: in the system scope, every
        project's; in a project scope it changes nothing)."""

    @abc.abstractmethod
    def update_pipeline_run(self, run_id: str, **fields: Any) -> PipelineRun:
        """Change the given columns (state, message, started_at, finished_at, owner, lease_until)."""

    @abc.abstractmethod
    def claim_pipeline_run(self, run_id: str, owner: str, *, now: datetime, until: datetime) -> bool:
        """Take or renew the run's lease for ``owner`` when it is free, expired or already its own."""

    @abc.abstractmethod
    def pipeline_steps(self, run_id: str) -> list[PipelineStep]:
        """The run's steps in the order of its spec."""

    @abc.abstractmethod
    def update_pipeline_step(self, run_id: str, name: str, **fields: Any) -> PipelineStep:
        """Change the given columns of one step."""

    @abc.abstractmethod
    def find_cached_step(self, pipeline: str, step: str, inputs_digest: str) -> PipelineStep | None:
        """The newest succeeded (not cached) step of that pipeline and name with that inputs digest."""

    # -- triggers ------------------------------------------------------------------------------
    @abc.abstractmethod
    def put_trigger(self, trigger: Trigger) -> Trigger:
        """Create or replace the definition of a trigger (its ``state`` is kept when it exists)."""

    @abc.abstractmethod
    def get_trigger(self, name: str) -> Trigger:
        """PlinthError(NOT_FOUND) if absent."""

    @abc.abstractmethod
    def list_triggers(
        self, *, pipeline: str | None = None, kind: str | None = None, enabled: bool | None = None, every_project: bool = False
    ) -> list[Trigger]:
        """Triggers matching the filters, by project and name (``every_project`` as for runs)."""

    @abc.abstractmethod
    def delete_trigger(self, name: str) -> Trigger:
        """Remove a trigger and its events; PlinthError(NOT_FOUND) if absent."""

    @abc.abstractmethod
    def set_trigger_state(self, name: str, state: dict[str, Any]) -> Trigger:
        """Replace the trigger's state."""

    @abc.abstractmethod
    def add_trigger_event(self, event: TriggerEvent) -> TriggerEvent:
        """Record why a trigger fired or did not."""

    @abc.abstractmethod
    def list_trigger_events(self, *, trigger: str | None = None, limit: int = 100) -> list[TriggerEvent]:
        """Events, newest first."""
