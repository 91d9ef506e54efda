"""The pipelines area of the metadata store in SQL (automation, issue 15)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update

from plinth.domain.pipelines import (
    RUN_ID_RE,
    Pipeline,
    PipelineRun,
    PipelineStep,
    RunState,
    StepState,
    Trigger,
    TriggerEvent,
    TriggerKind,
)
from plinth.errors import not_found
from plinth.store.schema.automation import PipelineRow, PipelineRunRow, PipelineStepRow, TriggerEventRow, TriggerRow
from plinth.store.sql.common import SqlBase, json_or_invalid

_RUN_FIELDS = {"state", "message", "started_at", "finished_at", "owner", "lease_until", "reason"}
_STEP_FIELDS = {
    "state",
    "attempt",
    "job_id",
    "inputs_digest",
    "inputs",
    "outputs",
    "message",
    "cached_from",
    "started_at",
    "finished_at",
    "next_try_at",
}


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, (RunState, StepState)) else value


class PipelinesSql(SqlBase):
    """:class:`plinth.store.base_pipelines.PipelinesStore` on SQL."""

    # -- pipelines -------------------------------------------------------------------------
    def add_pipeline_version(self, pipeline: Pipeline) -> Pipeline:
        json_or_invalid(pipeline.spec, "pipeline spec", "spec")
        project = self._project()
        with self._session(write=True) as s:
            newest = s.scalar(
                select(func.max(PipelineRow.version)).where(PipelineRow.project == project, PipelineRow.name == pipeline.name)
            )
            row = PipelineRow(
                project=project,
                name=pipeline.name,
                version=int(newest or 0) + 1,
                description=pipeline.description,
                digest=pipeline.digest,
                spec=dict(pipeline.spec),
                created_at=pipeline.created_at or datetime.now(UTC),
            )
            s.add(row)
            s.flush()
            return _pipeline(row)

    def get_pipeline(self, name: str, version: int | None = None) -> Pipeline:
        q = select(PipelineRow).where(PipelineRow.project == self._project(), PipelineRow.name == name)
        if version is not None:
            q = q.where(PipelineRow.version == version)
        with self._session() as s:
            row = s.scalars(q.order_by(PipelineRow.version.desc()).limit(1)).first()
            if row is None:
                raise not_found("pipeline", name if version is None else f"{name}@{version}")
            return _pipeline(row)

    def list_pipelines(self) -> list[Pipeline]:
        project = self._project()
        newest = (
            select(PipelineRow.name, func.max(PipelineRow.version).label("v"))
            .where(PipelineRow.project == project)
            .group_by(PipelineRow.name)
            .subquery()
        )
        q = (
            select(PipelineRow)
            .join(newest, (PipelineRow.name == newest.c.name) & (PipelineRow.version == newest.c.v))
            .where(PipelineRow.project == project)
            .order_by(PipelineRow.name)
        )
        with self._session() as s:
            return [_pipeline(r) for r in s.scalars(q)]

    def delete_pipeline(self, name: str) -> Pipeline:
        project = self._project()
        newest = self.get_pipeline(name)
        with self._session(write=True) as s:
            s.execute(delete(PipelineRow).where(PipelineRow.project == project, PipelineRow.name == name))
        return newest

    # -- runs --------------------------------------------------------------------------------
    def add_pipeline_run(self, run: PipelineRun, steps: list[PipelineStep]) -> PipelineRun:
        json_or_invalid(run.params, "pipeline parameters", "params")
        json_or_invalid(run.trigger, "pipeline trigger", "trigger")
        with self._session(write=True) as s:
            row = PipelineRunRow(
                id=run.id,
                pipeline=run.pipeline,
                version=run.version,
                params=dict(run.params),
                state=run.state.value,
                reason=run.reason,
                trigger=dict(run.trigger),
                message=run.message,
                owner=None,
                lease_until=None,
                created_at=run.created_at or datetime.now(UTC),
                started_at=None,
                finished_at=None,
            )
            s.add(row)
            s.flush()
            for st in steps:
                s.add(
                    PipelineStepRow(
                        run_id=run.id,
                        name=st.name,
                        position=st.position,
                        state=st.state.value,
                        attempt=0,
                        job_id=None,
                        inputs_digest=None,
                        inputs={},
                        outputs={},
                        message="",
                        cached_from=None,
                        started_at=None,
                        finished_at=None,
                        next_try_at=None,
                    )
                )
            s.flush()
            return _run(row)

    def get_pipeline_run(self, run_id: str) -> PipelineRun:
        if not RUN_ID_RE.match(run_id or ""):
            raise not_found("pipeline run", run_id)
        with self._session() as s:
            row = s.get(PipelineRunRow, run_id)
            if row is None:
                raise not_found("pipeline run", run_id)
            return _run(row)

    def list_pipeline_runs(
        self, *, pipeline: str | None = None, states: tuple[RunState, ...] = (), limit: int = 100, every_project: bool = False
    ) -> list[PipelineRun]:
        q = select(PipelineRunRow)
        if not every_project:
            q = q.where(self._visible(PipelineRunRow))
        if pipeline is not None:
            q = q.where(PipelineRunRow.pipeline == pipeline)
        if states:
            q = q.where(PipelineRunRow.state.in_([st.value for st in states]))
        q = q.order_by(PipelineRunRow.created_at.desc(), PipelineRunRow.id.desc()).limit(max(1, limit))
        with self._session() as s:
            return [_run(r) for r in s.scalars(q)]

    def update_pipeline_run(self, run_id: str, **fields: Any) -> PipelineRun:
        unknown = set(fields) - _RUN_FIELDS
        if unknown:
            raise ValueError(f"unknown pipeline run fields {sorted(unknown)}")
        with self._session(write=True) as s:
            row = s.get(PipelineRunRow, run_id, with_for_update=True)
            if row is None:
                raise not_found("pipeline run", run_id)
            for k, v in fields.items():
                setattr(row, k, _enum_value(v))
            s.flush()
            return _run(row)

    def claim_pipeline_run(self, run_id: str, owner: str, *, now: datetime, until: datetime) -> bool:
        stmt = (
            update(PipelineRunRow)
            .where(
                PipelineRunRow.id == run_id,
                or_(PipelineRunRow.owner.is_(None), PipelineRunRow.owner == owner, PipelineRunRow.lease_until < now),
            )
            .values(owner=owner, lease_until=until)
            .execution_options(synchronize_session=False)
        )
        with self._session(write=True) as s:
            return bool(s.execute(stmt).rowcount)  # type: ignore[attr-defined]

    def pipeline_steps(self, run_id: str) -> list[PipelineStep]:
        q = select(PipelineStepRow).where(PipelineStepRow.run_id == run_id).order_by(PipelineStepRow.position)
        with self._session() as s:
            return [_step(r) for r in s.scalars(q)]

    def update_pipeline_step(self, run_id: str, name: str, **fields: Any) -> PipelineStep:
        unknown = set(fields) - _STEP_FIELDS
        if unknown:
            raise ValueError(f"unknown pipeline step fields {sorted(unknown)}")
        for key in ("inputs", "outputs"):
            if key in fields:
                json_or_invalid(fields[key], f"step {key}", key)
        with self._session(write=True) as s:
            row = s.get(PipelineStepRow, (run_id, name), with_for_update=True)
            if row is None:
                raise not_found("pipeline step", f"{run_id}/{name}")
            for k, v in fields.items():
                setattr(row, k, _enum_value(v))
            s.flush()
            return _step(row)

    def find_cached_step(self, pipeline: str, step: str, inputs_digest: str) -> PipelineStep | None:
        q = (
            select(PipelineStepRow)
            .join(PipelineRunRow, PipelineRunRow.id == PipelineStepRow.run_id)
            .where(
                PipelineRunRow.project == self._project(),
                PipelineRunRow.pipeline == pipeline,
                PipelineStepRow.name == step,
                PipelineStepRow.inputs_digest == inputs_digest,
                PipelineStepRow.state == StepState.SUCCEEDED.value,
            )
            .order_by(PipelineStepRow.finished_at.desc())
            .limit(1)
        )
        with self._session() as s:
            row = s.scalars(q).first()
            return None if row is None else _step(row)

    # -- triggers ------------------------------------------------------------------------------
    def put_trigger(self, trigger: Trigger) -> Trigger:
        json_or_invalid(trigger.spec, "trigger spec", "spec")
        json_or_invalid(trigger.params, "trigger params", "params")
        project = self._project()
        with self._session(write=True) as s:
            row = s.get(TriggerRow, (project, trigger.name), with_for_update=True)
            if row is None:
                row = TriggerRow(
                    project=project, name=trigger.name, state=dict(trigger.state), created_at=trigger.created_at or datetime.now(UTC)
                )
                s.add(row)
            row.pipeline = trigger.pipeline
            row.kind = trigger.kind.value
            row.spec = dict(trigger.spec)
            row.params = dict(trigger.params)
            row.cooldown_s = float(trigger.cooldown_s)
            row.enabled = trigger.enabled
            s.flush()
            return _trigger(row)

    def get_trigger(self, name: str) -> Trigger:
        with self._session() as s:
            row = s.get(TriggerRow, (self._project(), name))
            if row is None:
                raise not_found("trigger", name)
            return _trigger(row)

    def list_triggers(
        self, *, pipeline: str | None = None, kind: str | None = None, enabled: bool | None = None, every_project: bool = False
    ) -> list[Trigger]:
        q = select(TriggerRow)
        if not every_project:
            q = q.where(TriggerRow.project == self._project())
        if pipeline is not None:
            q = q.where(TriggerRow.pipeline == pipeline)
        if kind is not None:
            q = q.where(TriggerRow.kind == kind)
        if enabled is not None:
            q = q.where(TriggerRow.enabled.is_(enabled))
        with self._session() as s:
            return [_trigger(r) for r in s.scalars(q.order_by(TriggerRow.project, TriggerRow.name))]

    def delete_trigger(self, name: str) -> Trigger:
        project = self._project()
        with self._session(write=True) as s:
            row = s.get(TriggerRow, (project, name), with_for_update=True)
            if row is None:
                raise not_found("trigger", name)
            gone = _trigger(row)
            s.execute(delete(TriggerEventRow).where(TriggerEventRow.project == project, TriggerEventRow.trigger == name))
            s.delete(row)
            return gone

    def set_trigger_state(self, name: str, state: dict[str, Any]) -> Trigger:
        json_or_invalid(state, "trigger state", "state")
        with self._session(write=True) as s:
            row = s.get(TriggerRow, (self._project(), name), with_for_update=True)
            if row is None:
                raise not_found("trigger", name)
            row.state = dict(state)
            s.flush()
            return _trigger(row)

    def add_trigger_event(self, event: TriggerEvent) -> TriggerEvent:
        json_or_invalid(event.details, "trigger event details", "details")
        with self._session(write=True) as s:
            row = TriggerEventRow(
                trigger=event.trigger,
                at=event.at,
                fired=event.fired,
                reason=event.reason,
                key=event.key[:300],
                run_id=event.run_id,
                details=dict(event.details),
            )
            s.add(row)
            s.flush()
            return _event(row)

    def list_trigger_events(self, *, trigger: str | None = None, limit: int = 100) -> list[TriggerEvent]:
        q = select(TriggerEventRow).where(TriggerEventRow.project == self._project())
        if trigger is not None:
            q = q.where(TriggerEventRow.trigger == trigger)
        q = q.order_by(TriggerEventRow.id.desc()).limit(max(1, limit))
        with self._session() as s:
            return [_event(r) for r in s.scalars(q)]


def _pipeline(r: PipelineRow) -> Pipeline:
    return Pipeline(
        name=r.name,
        version=r.version,
        spec=dict(r.spec),
        digest=r.digest,
        description=r.description,
        project=r.project,
        created_at=r.created_at,
    )


def _run(r: PipelineRunRow) -> PipelineRun:
    return PipelineRun(
        id=r.id,
        pipeline=r.pipeline,
        version=r.version,
        params=dict(r.params or {}),
        state=RunState(r.state),
        reason=r.reason,
        trigger=dict(r.trigger or {}),
        message=r.message,
        project=r.project,
        owner=r.owner,
        lease_until=r.lease_until,
        created_at=r.created_at,
        started_at=r.started_at,
        finished_at=r.finished_at,
    )


def _step(r: PipelineStepRow) -> PipelineStep:
    return PipelineStep(
        run_id=r.run_id,
        name=r.name,
        position=r.position,
        state=StepState(r.state),
        attempt=r.attempt,
        job_id=r.job_id,
        inputs_digest=r.inputs_digest,
        inputs=dict(r.inputs or {}),
        outputs=dict(r.outputs or {}),
        message=r.message,
        cached_from=r.cached_from,
        started_at=r.started_at,
        finished_at=r.finished_at,
        next_try_at=r.next_try_at,
    )


def _trigger(r: TriggerRow) -> Trigger:
    return Trigger(
        name=r.name,
        pipeline=r.pipeline,
        kind=TriggerKind(r.kind),
        spec=dict(r.spec or {}),
        params=dict(r.params or {}),
        cooldown_s=float(r.cooldown_s),
        enabled=bool(r.enabled),
        state=dict(r.state or {}),
        project=r.project,
        created_at=r.created_at,
    )


def _event(r: TriggerEventRow) -> TriggerEvent:
    return TriggerEvent(
        trigger=r.trigger,
        at=r.at,
        fired=bool(r.fired),
        reason=r.reason,
        key=r.key,
        run_id=r.run_id,
        details=dict(r.details or {}),
        id=r.id,
    )
