"""The drift area of the metadata store in SQL (monitoring, issue 14)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, func, select, true

from plinth.domain.drift import DriftRun
from plinth.errors import not_found
from plinth.store.schema.monitoring import DriftRunRow
from plinth.store.sql.common import SqlBase, json_or_invalid

_ID_MAX = 2**63 - 1


class DriftSql(SqlBase):
    """:class:`plinth.store.base_drift.DriftStore` on SQL."""

    def add_drift_run(self, run: DriftRun) -> DriftRun:
        json_or_invalid(run.results, "drift results", "results")
        json_or_invalid(run.reference, "drift reference", "reference")
        with self._session(write=True) as s:
            row = DriftRunRow(
                project=self._project(),
                at=run.at or datetime.now(UTC),
                deployment=run.deployment,
                revision=run.revision,
                adapter=run.adapter,
                window_start=run.window_start,
                window_end=run.window_end,
                n_recent=run.n_recent,
                n_reference=run.n_reference,
                reference=dict(run.reference),
                results=dict(run.results),
                drifted=run.drifted,
                score=float(run.score),
            )
            s.add(row)
            s.flush()
            return _run(row)

    def get_drift_run(self, run_id: int) -> DriftRun:
        if not 1 <= run_id <= _ID_MAX:
            raise not_found("drift run", str(run_id))
        with self._session() as s:
            row = s.scalars(select(DriftRunRow).where(self._visible(DriftRunRow), DriftRunRow.id == run_id)).first()
            if row is None:
                raise not_found("drift run", str(run_id))
            return _run(row)

    def list_drift_runs(
        self,
        deployment: str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        revision: int | None = None,
        limit: int = 100,
    ) -> list[DriftRun]:
        q = select(DriftRunRow).where(self._visible(DriftRunRow))
        if deployment is not None:
            q = q.where(DriftRunRow.deployment == deployment)
        if since is not None:
            q = q.where(DriftRunRow.at >= since)
        if until is not None:
            q = q.where(DriftRunRow.at < until)
        if revision is not None:
            q = q.where(DriftRunRow.revision == revision)
        q = q.order_by(DriftRunRow.at.desc(), DriftRunRow.id.desc()).limit(max(1, min(limit, 100_000)))
        with self._session() as s:
            return [_run(r) for r in s.scalars(q)]

    def latest_drift_runs(self) -> list[DriftRun]:
        where = true() if self._scope().everything else self._visible(DriftRunRow)
        whole = (DriftRunRow.revision.is_(None), DriftRunRow.adapter.is_(None))
        newest = select(func.max(DriftRunRow.id)).where(where, *whole).group_by(DriftRunRow.project, DriftRunRow.deployment)
        q = select(DriftRunRow).where(DriftRunRow.id.in_(newest.scalar_subquery())).order_by(DriftRunRow.project, DriftRunRow.deployment)
        with self._session() as s:
            return [_run(r) for r in s.scalars(q)]

    def delete_drift_runs(self, deployment: str) -> int:
        stmt = delete(DriftRunRow).where(DriftRunRow.project == self._project(), DriftRunRow.deployment == deployment)
        with self._session(write=True) as s:
            return int(getattr(s.execute(stmt.execution_options(synchronize_session=False)), "rowcount", 0) or 0)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _run(r: DriftRunRow) -> DriftRun:
    return DriftRun(
        id=int(r.id),
        project=r.project,
        at=_aware(r.at),
        deployment=r.deployment,
        revision=r.revision,
        adapter=r.adapter,
        window_start=_aware(r.window_start),
        window_end=_aware(r.window_end),
        n_recent=int(r.n_recent),
        n_reference=int(r.n_reference),
        reference=dict(r.reference or {}),
        results=dict(r.results or {}),
        drifted=bool(r.drifted),
        score=float(r.score),
    )
