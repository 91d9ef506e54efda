"""Tracking (runs, metrics, artifacts) and the model registry in SQL."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import Float, cast, delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from plinth.domain.tracking import (
    ArtifactKind,
    EvalReport,
    MetricPoint,
    ModelVersion,
    RegisteredModel,
    Run,
    RunArtifact,
    RunStatus,
)
from plinth.errors import ErrorCode, PlinthError, not_found
from plinth.store.schema.tracking import (
    EvalReportRow,
    ModelAliasRow,
    ModelVersionRow,
    RegisteredModelRow,
    RunArtifactRow,
    RunMetricRow,
    RunRow,
)
from plinth.store.sql.common import RefusedValue, SqlBase, db_reason, is_unique_violation, json_or_invalid


class TrackingSql(SqlBase):
    """:class:`plinth.store.base_tracking.TrackingStore` and ``RegistryStore`` on SQL."""

    # -- runs ----------------------------------------------------------------------------------
    def create_run(self, run: Run) -> Run:
        json_or_invalid(run.params, "run params", "params")
        json_or_invalid(run.tags, "run tags", "tags")
        row = RunRow(
            id=run.id or uuid4().hex,
            name=run.name,
            kind=run.kind,
            status=RunStatus(run.status).value,
            params=dict(run.params),
            tags=dict(run.tags),
            job_id=run.job_id,
            base_model=run.base_model,
            dataset=run.dataset,
            summary=dict(run.summary),
            error=run.error,
            started_at=run.started_at or datetime.now(UTC),
            ended_at=run.ended_at,
        )
        try:
            with self._session(write=True) as s:
                s.add(row)
                s.flush()
                return _run(row)
        except RefusedValue as e:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"run {run.name!r} cannot be stored: {db_reason(e)}") from None
        except IntegrityError as e:
            if is_unique_violation(e):
                raise PlinthError(ErrorCode.ALREADY_EXISTS, f"run {row.id!r} already exists") from None
            raise

    def get_run(self, run_id: str) -> Run:
        with self._session() as s:
            row = s.get(RunRow, run_id)
            if row is None:
                raise not_found("run", run_id)
            return _run(row)

    def find_run_by_job(self, job_id: str) -> Run | None:
        with self._session() as s:
            row = s.scalar(select(RunRow).where(RunRow.job_id == job_id, self._visible(RunRow)).order_by(RunRow.started_at.desc()).limit(1))
            return None if row is None else _run(row)

    def list_runs(
        self,
        *,
        kind: str | None = None,
        status: RunStatus | None = None,
        base_model: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Run]:
        q = select(RunRow).where(*self._run_filters(kind, status, base_model))
        q = q.order_by(RunRow.started_at.desc(), RunRow.id).limit(max(1, min(limit, 10_000))).offset(max(0, offset))
        with self._session() as s:
            return [_run(r) for r in s.scalars(q)]

    def count_runs(self, *, kind: str | None = None, status: RunStatus | None = None) -> int:
        with self._session() as s:
            return int(s.scalar(select(func.count(RunRow.id)).where(*self._run_filters(kind, status, None))) or 0)

    def _run_filters(self, kind: str | None, status: RunStatus | None, base_model: str | None) -> list[Any]:
        out = [self._visible(RunRow)]
        if kind is not None:
            out.append(RunRow.kind == kind)
        if status is not None:
            out.append(RunRow.status == RunStatus(status).value)
        if base_model is not None:
            out.append(RunRow.base_model == base_model)
        return out

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
        with self._session(write=True) as s:
            row = s.get(RunRow, run_id, with_for_update=True)
            if row is None:
                raise not_found("run", run_id)
            if status is not None:
                row.status = RunStatus(status).value
            if summary:
                merged = {**(row.summary or {}), **summary}
                json_or_invalid(merged, "run summary", "summary")
                row.summary = merged
            if params:
                merged = {**(row.params or {}), **params}
                json_or_invalid(merged, "run params", "params")
                row.params = merged
            if error is not None:
                row.error = error[:10_000]
            if ended:
                row.ended_at = datetime.now(UTC)
            elif status == RunStatus.RUNNING:
                row.ended_at = None
            s.flush()
            return _run(row)

    def delete_run(self, run_id: str) -> None:
        with self._session(write=True) as s:
            row = s.get(RunRow, run_id, with_for_update=True)
            if row is None:
                raise not_found("run", run_id)
            s.delete(row)

    def log_metrics(self, run_id: str, points: list[MetricPoint]) -> None:
        if not points:
            return
        now = datetime.now(UTC)
        latest: dict[tuple[str, int], MetricPoint] = {}
        for p in points:
            if not math.isfinite(p.value):
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"metric {p.key!r} at step {p.step} is not a finite number")
            latest[(p.key, int(p.step))] = p
        with self._session(write=True) as s:
            run = s.get(RunRow, run_id)
            if run is None:
                raise not_found("run", run_id)
            # replace what an earlier attempt logged for the same steps
            pairs = list(latest)
            for i in range(0, len(pairs), 500):
                s.execute(
                    delete(RunMetricRow).where(
                        RunMetricRow.run_id == run_id, tuple_(RunMetricRow.key, RunMetricRow.step).in_(pairs[i : i + 500])
                    )
                )
            s.add_all(
                RunMetricRow(project=run.project, run_id=run_id, key=k, step=st, value=float(p.value), at=p.at or now)
                for (k, st), p in latest.items()
            )

    def get_metrics(self, run_id: str, keys: list[str] | None = None) -> dict[str, list[MetricPoint]]:
        q = select(RunMetricRow).where(RunMetricRow.run_id == run_id)
        if keys:
            q = q.where(RunMetricRow.key.in_(keys))
        q = q.order_by(RunMetricRow.key, RunMetricRow.step)
        out: dict[str, list[MetricPoint]] = {}
        with self._session() as s:
            for r in s.scalars(q):
                out.setdefault(r.key, []).append(MetricPoint(r.key, r.step, r.value, r.at))
        return out

    def metric_keys(self, run_id: str) -> dict[str, int]:
        q = (
            select(RunMetricRow.key, func.count())
            .where(RunMetricRow.run_id == run_id)
            .group_by(RunMetricRow.key)
            .order_by(RunMetricRow.key)
        )
        with self._session() as s:
            return {key: int(n) for key, n in s.execute(q)}

    def downsample_metrics(self, run_id: str, keys: list[str] | None = None, max_points: int = 1000) -> dict[str, list[MetricPoint]]:
        max_points = max(8, max_points)
        of_run = [RunMetricRow.run_id == run_id]
        if keys:
            of_run.append(RunMetricRow.key.in_(keys))
        out: dict[str, list[MetricPoint]] = {}
        with self._session() as s:
            ranges = s.execute(
                select(RunMetricRow.key, func.min(RunMetricRow.step), func.max(RunMetricRow.step), func.count())
                .where(*of_run)
                .group_by(RunMetricRow.key)
                .order_by(RunMetricRow.key)
            ).all()
            for key, lo, hi, count in ranges:
                if count <= max_points:
                    q = select(RunMetricRow.step, RunMetricRow.value).where(RunMetricRow.run_id == run_id, RunMetricRow.key == key)
                    rows = [(int(st), float(v)) for st, v in s.execute(q.order_by(RunMetricRow.step))]
                else:
                    rows = _extremes_per_bucket(s, self.dialect_name, run_id, key, int(lo), int(hi), (max_points - 2) // 2)
                out[key] = [MetricPoint(key, step, value) for step, value in rows]
        return out

    def add_run_artifact(self, artifact: RunArtifact) -> RunArtifact:
        json_or_invalid(artifact.meta, "artifact meta", "meta")
        now = datetime.now(UTC)
        with self._session(write=True) as s:
            run = s.get(RunRow, artifact.run_id)
            if run is None:
                raise not_found("run", artifact.run_id)
            row = s.scalar(select(RunArtifactRow).where(RunArtifactRow.run_id == artifact.run_id, RunArtifactRow.name == artifact.name))
            if row is None:
                row = RunArtifactRow(project=run.project, run_id=artifact.run_id, name=artifact.name, created_at=now)
                s.add(row)
            row.kind = ArtifactKind(artifact.kind).value
            row.digest = artifact.digest
            row.size_bytes = artifact.size_bytes
            row.meta = dict(artifact.meta)
            s.flush()
            return _artifact(row)

    def list_run_artifacts(self, run_id: str) -> list[RunArtifact]:
        with self._session() as s:
            rows = s.scalars(select(RunArtifactRow).where(RunArtifactRow.run_id == run_id).order_by(RunArtifactRow.id))
            return [_artifact(r) for r in rows]

    # -- registry --------------------------------------------------------------------------
    def create_registered_model(self, name: str, description: str = "") -> RegisteredModel:
        try:
            with self._session(write=True) as s:
                row = RegisteredModelRow(project=self._project(), name=name, description=description, created_at=datetime.now(UTC))
                s.add(row)
                s.flush()
                return RegisteredModel(name=row.name, description=row.description, created_at=row.created_at)
        except IntegrityError as e:
            if is_unique_violation(e):
                raise PlinthError(
                    ErrorCode.ALREADY_EXISTS,
                    f"registered model {name!r} already exists",
                    details={"kind": "registered_model", "name": name},
                ) from None
            raise
        except RefusedValue as e:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"registered model {name!r} cannot be stored: {db_reason(e)}") from None

    def get_registered_model(self, name: str) -> RegisteredModel:
        m = self.find_registered_model(name)
        if m is None:
            raise not_found("registered model", name)
        return m

    def find_registered_model(self, name: str) -> RegisteredModel | None:
        with self._session() as s:
            row = s.get(RegisteredModelRow, (self._project(), name))
            return None if row is None else self._registered(s, row)

    def list_registered_models(self) -> list[RegisteredModel]:
        with self._session() as s:
            out = [self._registered(s, r) for r in s.scalars(select(RegisteredModelRow).where(self._visible(RegisteredModelRow)))]
        return sorted(out, key=lambda m: m.name)

    @staticmethod
    def _registered(s: Any, row: RegisteredModelRow) -> RegisteredModel:
        latest = (
            s.scalar(
                select(func.max(ModelVersionRow.version)).where(ModelVersionRow.project == row.project, ModelVersionRow.name == row.name)
            )
            or 0
        )
        alias_rows = s.scalars(select(ModelAliasRow).where(ModelAliasRow.project == row.project, ModelAliasRow.name == row.name))
        aliases = {a.alias: a.version for a in alias_rows}
        return RegisteredModel(
            name=row.name, description=row.description, latest_version=int(latest), aliases=aliases, created_at=row.created_at
        )

    def delete_registered_model(self, name: str) -> list[ModelVersion]:
        project = self._project()
        with self._session(write=True) as s:
            row = s.get(RegisteredModelRow, (project, name), with_for_update=True)
            if row is None:
                raise not_found("registered model", name)
            of_it = (ModelVersionRow.project == project, ModelVersionRow.name == name)
            versions = [_version(v) for v in s.scalars(select(ModelVersionRow).where(*of_it))]
            s.execute(delete(ModelAliasRow).where(ModelAliasRow.project == project, ModelAliasRow.name == name))
            s.execute(delete(ModelVersionRow).where(*of_it))
            s.delete(row)
            return versions

    def add_model_version(self, version: ModelVersion) -> ModelVersion:
        json_or_invalid(version.recipe, "recipe", "recipe")
        json_or_invalid(version.metrics, "metrics", "metrics")
        for attempt in range(5):
            try:
                with self._session(write=True) as s:
                    project = self._project()
                    parent = s.get(RegisteredModelRow, (project, version.name), with_for_update=True)
                    if parent is None:
                        raise not_found("registered model", version.name)
                    latest = select(func.max(ModelVersionRow.version)).where(
                        ModelVersionRow.project == project, ModelVersionRow.name == version.name
                    )
                    number = (s.scalar(latest) or 0) + 1
                    row = ModelVersionRow(
                        id=uuid4().hex,
                        project=project,
                        name=version.name,
                        version=number,
                        kind=version.kind,
                        base_model=version.base_model,
                        base_digest=version.base_digest,
                        served_as=version.served_as.replace("{version}", str(number)),
                        artifact_digest=version.artifact_digest,
                        run_id=version.run_id,
                        dataset=version.dataset,
                        recipe=dict(version.recipe),
                        metrics=dict(version.metrics),
                        description=version.description,
                        model_card=version.model_card,
                        created_at=datetime.now(UTC),
                    )
                    s.add(row)
                    s.flush()
                    return _version(row)
            except IntegrityError as e:
                if not is_unique_violation(e) or attempt == 4:  # two writers took the same number: again
                    raise
            except RefusedValue as e:
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"version of {version.name!r} cannot be stored: {db_reason(e)}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        with self._session() as s:
            row = s.scalar(select(ModelVersionRow).where(*self._version_of(name, version)))
            if row is None:
                raise not_found("model version", f"{name}@{version}")
            return _version(row)

    def _version_of(self, name: str, version: int) -> tuple[Any, ...]:
        return (ModelVersionRow.project == self._project(), ModelVersionRow.name == name, ModelVersionRow.version == version)

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        with self._session() as s:
            rows = s.scalars(
                select(ModelVersionRow)
                .where(ModelVersionRow.project == self._project(), ModelVersionRow.name == name)
                .order_by(ModelVersionRow.version)
            )
            return [_version(r) for r in rows]

    def find_versions_by_served_id(self, served_as: str) -> list[ModelVersion]:
        with self._session() as s:
            query = select(ModelVersionRow).where(ModelVersionRow.served_as == served_as, self._visible(ModelVersionRow))
            rows = s.scalars(query.order_by(ModelVersionRow.version))
            return [_version(r) for r in rows]

    def update_model_version_card(self, name: str, version: int, model_card: str) -> None:
        self._update_version(name, version, model_card=model_card)

    def set_model_version_digest(self, name: str, version: int, digest: str) -> None:
        self._update_version(name, version, artifact_digest=digest)

    def _update_version(self, name: str, version: int, **fields: str) -> None:
        with self._session(write=True) as s:
            row = s.scalar(select(ModelVersionRow).where(*self._version_of(name, version)).with_for_update())
            if row is None:
                raise not_found("model version", f"{name}@{version}")
            for k, v in fields.items():
                setattr(row, k, v)

    def delete_model_version(self, name: str, version: int) -> ModelVersion:
        with self._session(write=True) as s:
            row = s.scalar(select(ModelVersionRow).where(*self._version_of(name, version)).with_for_update())
            if row is None:
                raise not_found("model version", f"{name}@{version}")
            out = _version(row)
            s.execute(
                delete(ModelAliasRow).where(
                    ModelAliasRow.project == row.project, ModelAliasRow.name == name, ModelAliasRow.version == version
                )
            )
            s.delete(row)
            return out

    def set_alias(self, name: str, alias: str, version: int) -> None:
        project = self._project()
        with self._session(write=True) as s:
            if s.get(RegisteredModelRow, (project, name), with_for_update=True) is None:
                raise not_found("registered model", name)
            if s.scalar(select(ModelVersionRow.id).where(*self._version_of(name, version))) is None:
                raise not_found("model version", f"{name}@{version}")
            row = s.get(ModelAliasRow, (project, name, alias))
            if row is None:
                s.add(ModelAliasRow(project=project, name=name, alias=alias, version=version, updated_at=datetime.now(UTC)))
            else:
                row.version = version
                row.updated_at = datetime.now(UTC)

    def delete_alias(self, name: str, alias: str) -> None:
        with self._session(write=True) as s:
            row = s.get(ModelAliasRow, (self._project(), name, alias))
            if row is None:
                raise not_found("alias", f"{name}@{alias}")
            s.delete(row)

    def add_eval_report(self, report: EvalReport) -> EvalReport:
        json_or_invalid(report.metrics, "evaluation metrics", "metrics")
        json_or_invalid(report.samples, "evaluation samples", "samples")
        with self._session(write=True) as s:
            row = EvalReportRow(
                id=report.id or uuid4().hex,
                model=report.model,
                dataset=report.dataset,
                split=report.split,
                metrics=dict(report.metrics),
                registry_name=report.registry_name,
                registry_version=report.registry_version,
                run_id=report.run_id,
                samples=list(report.samples),
                created_at=datetime.now(UTC),
            )
            s.add(row)
            s.flush()
            return _report(row)

    def get_eval_report(self, report_id: str) -> EvalReport:
        with self._session() as s:
            row = s.get(EvalReportRow, report_id)
            if row is None:
                raise not_found("evaluation report", report_id)
            return _report(row)

    def list_eval_reports(
        self, *, registry_name: str | None = None, registry_version: int | None = None, model: str | None = None
    ) -> list[EvalReport]:
        q = select(EvalReportRow).where(self._visible(EvalReportRow))
        if registry_name is not None:
            q = q.where(EvalReportRow.registry_name == registry_name)
        if registry_version is not None:
            q = q.where(EvalReportRow.registry_version == registry_version)
        if model is not None:
            q = q.where(EvalReportRow.model == model)
        with self._session() as s:
            return [_report(r) for r in s.scalars(q.order_by(EvalReportRow.created_at.desc(), EvalReportRow.id))]


def _extremes_per_bucket(s: Session, dialect: str, run_id: str, key: str, lo: int, hi: int, buckets: int) -> list[tuple[int, float]]:
    """The points of one metric that keep its shape, by step: its steps cut into ``buckets``
    equal ranges, the lowest and the highest point of each range, and the series' first and
    last point (min/max downsampling: a spike of one step survives). The bucket number is
    integer division on both databases, without overflow (no product of a step with anything).

    SQLite returns the row of the ``min()``/``max()`` of a group with its bare columns (one
    pass over the index each, about 25 ms per 100k points); Postgres has no bare columns but
    compares arrays, so ``min([value, step])`` is the lowest point with its first step (one
    pass for both, about 35 ms)."""
    width = max(1, -(-(hi - lo + 1) // buckets))
    bucket = (RunMetricRow.step - lo) // width
    of_key = (RunMetricRow.run_id == run_id, RunMetricRow.key == key)
    cols = (RunMetricRow.step, RunMetricRow.value)
    ends = s.execute(select(*cols).where(*of_key, RunMetricRow.step.in_((lo, hi))))
    kept: set[tuple[int, float]] = {(int(st), float(v)) for st, v in ends}
    if dialect == "sqlite":
        for extreme in (func.min, func.max):
            rows = s.execute(select(*cols).add_columns(extreme(RunMetricRow.value)).where(*of_key).group_by(bucket))
            kept.update((int(st), float(v)) for st, v, _ in rows)
    else:
        pair = array([RunMetricRow.value, cast(RunMetricRow.step, Float)])
        negated = array([RunMetricRow.value, -cast(RunMetricRow.step, Float)])  # max(): the highest value, its first step
        q = select(func.min(pair, type_=ARRAY(Float)), func.max(negated, type_=ARRAY(Float))).where(*of_key).group_by(bucket)
        for low, high in s.execute(q):
            kept.add((int(low[1]), float(low[0])))
            kept.add((-int(high[1]), float(high[0])))
    return sorted(kept)


def _run(row: RunRow) -> Run:
    return Run(
        id=row.id,
        name=row.name,
        kind=row.kind,
        status=RunStatus(row.status),
        params=dict(row.params or {}),
        tags=dict(row.tags or {}),
        job_id=row.job_id,
        base_model=row.base_model,
        dataset=row.dataset,
        summary=dict(row.summary or {}),
        error=row.error,
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


def _artifact(row: RunArtifactRow) -> RunArtifact:
    return RunArtifact(
        run_id=row.run_id,
        name=row.name,
        kind=ArtifactKind(row.kind),
        digest=row.digest,
        size_bytes=row.size_bytes,
        meta=dict(row.meta or {}),
        created_at=row.created_at,
    )


def _version(row: ModelVersionRow) -> ModelVersion:
    return ModelVersion(
        name=row.name,
        version=row.version,
        kind=row.kind,
        base_model=row.base_model,
        base_digest=row.base_digest,
        served_as=row.served_as,
        artifact_digest=row.artifact_digest,
        run_id=row.run_id,
        dataset=row.dataset,
        recipe=dict(row.recipe or {}),
        metrics=dict(row.metrics or {}),
        description=row.description,
        model_card=row.model_card,
        created_at=row.created_at,
    )


def _report(row: EvalReportRow) -> EvalReport:
    return EvalReport(
        id=row.id,
        model=row.model,
        dataset=row.dataset,
        split=row.split,
        metrics=dict(row.metrics or {}),
        registry_name=row.registry_name,
        registry_version=row.registry_version,
        run_id=row.run_id,
        samples=list(row.samples or []),
        created_at=row.created_at,
    )
