"""The deployments area in SQL: deployments with compare-and-set changes, revisions, history,
usage records (with window statistics and grouped summaries) and feedback."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, and_, case, cast, delete, func, literal_column, select
from sqlalchemy.exc import IntegrityError

from plinth.domain.deployments import (
    USAGE_GROUPS,
    Deployment,
    DeploymentEvent,
    EventKind,
    Feedback,
    GateRule,
    Outcome,
    Revision,
    Role,
    RolloutRule,
    Target,
    UsageRecord,
    WindowStats,
    p95,
)
from plinth.errors import ErrorCode, PlinthError, not_found
from plinth.store.schema.deployments import (
    DeploymentEventRow,
    DeploymentRevisionRow,
    DeploymentRow,
    FeedbackRow,
    UsageRow,
)
from plinth.store.sql.common import RefusedValue, SqlBase, db_reason, is_unique_violation, json_or_invalid
from plinth.store.sql.engine import rowcount

#: most recent successful requests per revision whose latencies feed the p95 of a window
_LATENCY_SAMPLE = 5000

_GROUP_COLUMNS = {
    "key": UsageRow.key_id,
    "deployment": UsageRow.deployment,
    "revision": UsageRow.revision,
    "model": UsageRow.model,
    "model_version": UsageRow.model_version,
    "outcome": UsageRow.outcome,
}
_FILTER_COLUMNS = {**_GROUP_COLUMNS, "key_id": UsageRow.key_id}


class DeploymentsSql(SqlBase):
    """:class:`plinth.store.base_deployments.DeploymentsStore` on SQL."""

    # -- deployments -----------------------------------------------------------------------------
    def create_deployment(self, deployment: Deployment, targets: tuple[Target, ...], *, actor: str, note: str = "") -> Deployment:
        now = datetime.now(UTC)
        project = self._project()
        row = DeploymentRow(
            project=project,
            name=deployment.name,
            description=deployment.description,
            stable_revision=1,
            canary_revision=None,
            canary_percent=0.0,
            canary_started_at=None,
            rules=[r.to_dict() for r in deployment.rules],
            gate=[g.to_dict() for g in deployment.gate],
            window_s=deployment.window_s,
            auto_rollback=deployment.auto_rollback,
            generation=1,
            created_at=now,
            updated_at=now,
        )
        revision = DeploymentRevisionRow(
            project=project,
            deployment=deployment.name,
            number=1,
            targets=[t.to_dict() for t in targets],
            note=note,
            created_by=actor,
            created_at=now,
        )
        json_or_invalid(revision.targets, "targets", "targets")
        try:
            with self._session(write=True) as s:
                s.add(row)
                s.flush()
                s.add(revision)
                s.add(_event_row(DeploymentEvent(deployment.name, EventKind.CREATED, actor, revision=1, reason=note), now, project))
                s.flush()
                return _deployment(row)
        except IntegrityError as e:
            if is_unique_violation(e):
                raise PlinthError(ErrorCode.ALREADY_EXISTS, f"deployment {deployment.name!r} already exists", param="name") from None
            raise
        except RefusedValue as e:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"deployment {deployment.name!r} cannot be stored: {db_reason(e)}") from None

    def get_deployment(self, name: str) -> Deployment:
        found = self.find_deployment(name)
        if found is None:
            raise not_found("deployment", name)
        return found

    def find_deployment(self, name: str) -> Deployment | None:
        with self._session() as s:
            row = s.get(DeploymentRow, (self._project(), name))
            return None if row is None else _deployment(row)

    def list_deployments(self) -> list[Deployment]:
        with self._session() as s:
            query = select(DeploymentRow).where(self._visible(DeploymentRow)).order_by(DeploymentRow.name)
            return [_deployment(r) for r in s.scalars(query)]

    def delete_deployment(self, name: str) -> Deployment:
        project = self._project()
        with self._session(write=True) as s:
            row = s.get(DeploymentRow, (project, name), with_for_update=True)
            if row is None:
                raise not_found("deployment", name)
            gone = _deployment(row)
            s.execute(delete(DeploymentEventRow).where(DeploymentEventRow.project == project, DeploymentEventRow.deployment == name))
            s.execute(
                delete(DeploymentRevisionRow).where(DeploymentRevisionRow.project == project, DeploymentRevisionRow.deployment == name)
            )
            s.delete(row)
            return gone

    def add_revision(self, name: str, targets: tuple[Target, ...], *, actor: str, note: str = "") -> Revision:
        now = datetime.now(UTC)
        data = [t.to_dict() for t in targets]
        json_or_invalid(data, "targets", "targets")
        project = self._project()
        with self._session(write=True) as s:
            if s.get(DeploymentRow, (project, name), with_for_update=True) is None:
                raise not_found("deployment", name)
            numbers = select(func.max(DeploymentRevisionRow.number)).where(
                DeploymentRevisionRow.project == project, DeploymentRevisionRow.deployment == name
            )
            last = s.scalar(numbers) or 0
            row = DeploymentRevisionRow(
                project=project, deployment=name, number=last + 1, targets=data, note=note, created_by=actor, created_at=now
            )
            s.add(row)
            s.flush()
            return _revision(row)

    def get_revision(self, name: str, number: int) -> Revision:
        with self._session() as s:
            row = s.get(DeploymentRevisionRow, (self._project(), name, number))
            if row is None:
                raise not_found("revision", f"{name}@{number}")
            return _revision(row)

    def list_revisions(self, name: str) -> list[Revision]:
        with self._session() as s:
            rows = s.scalars(
                select(DeploymentRevisionRow)
                .where(DeploymentRevisionRow.project == self._project(), DeploymentRevisionRow.deployment == name)
                .order_by(DeploymentRevisionRow.number)
            )
            return [_revision(r) for r in rows]

    def update_deployment(
        self, name: str, changes: dict[str, Any], *, expected_generation: int | None, event: DeploymentEvent | None = None
    ) -> Deployment:
        now = datetime.now(UTC)
        with self._session(write=True) as s:
            row = s.get(DeploymentRow, (self._project(), name), with_for_update=True)
            if row is None:
                raise not_found("deployment", name)
            if expected_generation is not None and row.generation != expected_generation:
                raise PlinthError(
                    ErrorCode.CONFLICT,
                    f"deployment {name!r} changed meanwhile (generation {row.generation}, expected {expected_generation}); "
                    "look at its status and try again",
                    details={"generation": row.generation},
                )
            for key, value in changes.items():
                if key == "rules":
                    value = [r.to_dict() for r in value]
                elif key == "gate":
                    value = [g.to_dict() for g in value]
                elif key not in _UPDATABLE:
                    raise ValueError(f"deployment field {key!r} cannot be changed")
                setattr(row, key, value)
            row.generation += 1
            row.updated_at = now
            if event is not None:
                s.add(_event_row(event, now, row.project))
            s.flush()
            return _deployment(row)

    def add_deployment_event(self, event: DeploymentEvent) -> DeploymentEvent:
        with self._session(write=True) as s:
            row = _event_row(event, datetime.now(UTC), self._project())
            s.add(row)
            s.flush()
            return _event(row)

    def list_deployment_events(self, name: str, *, limit: int = 100) -> list[DeploymentEvent]:
        q = (
            select(DeploymentEventRow)
            .where(DeploymentEventRow.project == self._project(), DeploymentEventRow.deployment == name)
            .order_by(DeploymentEventRow.id.desc())
            .limit(max(1, min(limit, 10_000)))
        )
        with self._session() as s:
            return [_event(r) for r in s.scalars(q)]

    # -- usage -------------------------------------------------------------------------------------
    def add_usage(self, records: list[UsageRecord]) -> None:
        if not records:
            return
        now = datetime.now(UTC)
        default = self._project()
        with self._session(write=True) as s:
            s.add_all([_usage_row(r, now, r.project if r.project is not None else default) for r in records])

    def find_usage(self, response_id: str) -> UsageRecord | None:
        with self._session() as s:
            query = select(UsageRow).where(UsageRow.response_id == response_id, self._visible(UsageRow))
            row = s.scalar(query.order_by(UsageRow.id.desc()).limit(1))
            return None if row is None else _usage(row)

    def usage_summary(
        self,
        *,
        group_by: tuple[str, ...],
        since: datetime | None = None,
        until: datetime | None = None,
        bucket_s: int | None = None,
        filters: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        for g in group_by:
            if g not in USAGE_GROUPS:
                raise PlinthError(
                    ErrorCode.INVALID_REQUEST, f"cannot group usage by {g!r}; use {', '.join(USAGE_GROUPS)}", param="group_by"
                )
        cols = [_GROUP_COLUMNS[g].label(g) for g in group_by]
        if bucket_s:
            cols.insert(0, self._bucket(bucket_s).label("bucket"))
        errors = func.sum(case((UsageRow.outcome == Outcome.ERROR.value, 1), else_=0))
        blocked = func.sum(case((UsageRow.blocked.is_(True), 1), else_=0))
        q = select(
            *cols,
            func.count().label("requests"),
            errors.label("errors"),
            blocked.label("blocked"),
            func.coalesce(func.sum(UsageRow.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(UsageRow.completion_tokens), 0).label("completion_tokens"),
        )
        conds = [self._visible(UsageRow)]
        if since is not None:
            conds.append(UsageRow.at >= since)
        if until is not None:
            conds.append(UsageRow.at < until)
        for key, value in (filters or {}).items():
            if value is None:
                continue
            column = _FILTER_COLUMNS.get(key)
            if column is None:
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"cannot filter usage by {key!r}", param=key)
            conds.append(column == value)
        q = q.where(and_(*conds))
        group_cols: list[Any] = ([literal_column("bucket")] if bucket_s else []) + [_GROUP_COLUMNS[g] for g in group_by]
        if group_cols:
            q = q.group_by(*group_cols).order_by(*group_cols)
        with self._session() as s:
            rows = s.execute(q).mappings().all()
        out = []
        for r in rows:
            item: dict[str, Any] = {}
            if bucket_s:
                item["bucket"] = datetime.fromtimestamp(int(r["bucket"]), UTC).isoformat()
            for g in group_by:
                item[g] = r[g]
            item.update(
                requests=int(r["requests"]),
                errors=int(r["errors"] or 0),
                blocked=int(r["blocked"] or 0),
                prompt_tokens=int(r["prompt_tokens"] or 0),
                completion_tokens=int(r["completion_tokens"] or 0),
            )
            item["total_tokens"] = item["prompt_tokens"] + item["completion_tokens"]
            out.append(item)
        return out

    def _bucket(self, bucket_s: int) -> Any:
        epoch: Any
        if self.dialect_name == "sqlite":
            epoch = cast(func.strftime("%s", UsageRow.at), BigInteger)
            return (epoch // bucket_s) * bucket_s
        epoch = func.floor(func.extract("epoch", UsageRow.at) / bucket_s) * bucket_s
        return cast(epoch, BigInteger)

    def window_stats(self, deployment: str, revisions: list[int], since: datetime) -> dict[int, WindowStats]:
        counted = (Outcome.OK.value, Outcome.ERROR.value)
        project = self._project()
        base = and_(
            UsageRow.project == project,
            UsageRow.deployment == deployment,
            UsageRow.revision.in_(revisions),
            UsageRow.at >= since,
            UsageRow.outcome.in_(counted),
        )
        with self._session() as s:
            counts = s.execute(
                select(
                    UsageRow.revision,
                    func.count(),
                    func.sum(case((UsageRow.outcome == Outcome.ERROR.value, 1), else_=0)),
                    func.sum(case((UsageRow.blocked.is_(True), 1), else_=0)),
                )
                .where(base)
                .group_by(UsageRow.revision)
            ).all()
            ratings = s.execute(
                select(FeedbackRow.revision, func.count(), func.sum(case((FeedbackRow.rating < 0, 1), else_=0)))
                .where(
                    FeedbackRow.project == project,
                    FeedbackRow.deployment == deployment,
                    FeedbackRow.revision.in_(revisions),
                    FeedbackRow.at >= since,
                )
                .group_by(FeedbackRow.revision)
            ).all()
            latencies: dict[int, list[float]] = {}
            for rev in revisions:
                latencies[rev] = list(
                    s.scalars(
                        select(UsageRow.latency_s)
                        .where(base, UsageRow.revision == rev, UsageRow.outcome == Outcome.OK.value)
                        .order_by(UsageRow.id.desc())
                        .limit(_LATENCY_SAMPLE)
                    )
                )
        by_rev = {int(r): (int(n), int(e or 0), int(b or 0)) for r, n, e, b in counts}
        rated = {int(r): (int(n), int(neg or 0)) for r, n, neg in ratings}
        out = {}
        for rev in revisions:
            n, e, b = by_rev.get(rev, (0, 0, 0))
            rn, neg = rated.get(rev, (0, 0))
            out[rev] = WindowStats(
                revision=rev, requests=n, errors=e, blocked=b, latency_p95_s=p95(latencies[rev]), ratings=rn, negative=neg
            )
        return out

    def prune_usage(self, before: datetime) -> int:
        with self._session(write=True) as s:
            a = rowcount(s.execute(delete(UsageRow).where(UsageRow.at < before)))
            b = rowcount(s.execute(delete(FeedbackRow).where(FeedbackRow.at < before)))
            return int(a) + int(b)

    # -- feedback ----------------------------------------------------------------------------------
    def add_feedback(self, feedback: Feedback) -> Feedback:
        row = FeedbackRow(
            project=self._project(),
            at=feedback.at or datetime.now(UTC),
            response_id=feedback.response_id,
            rating=feedback.rating,
            comment=feedback.comment,
            key_id=feedback.key_id,
            deployment=feedback.deployment,
            revision=feedback.revision,
            model_version=feedback.model_version,
            served_model=feedback.served_model,
        )
        try:
            with self._session(write=True) as s:
                s.add(row)
                s.flush()
                return _feedback(row)
        except RefusedValue as e:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"feedback cannot be stored: {db_reason(e)}") from None

    def list_feedback(
        self, *, deployment: str | None = None, revision: int | None = None, response_id: str | None = None, limit: int = 100
    ) -> list[Feedback]:
        q = select(FeedbackRow).where(self._visible(FeedbackRow))
        if deployment is not None:
            q = q.where(FeedbackRow.deployment == deployment)
        if revision is not None:
            q = q.where(FeedbackRow.revision == revision)
        if response_id is not None:
            q = q.where(FeedbackRow.response_id == response_id)
        q = q.order_by(FeedbackRow.id.desc()).limit(max(1, min(limit, 10_000)))
        with self._session() as s:
            return [_feedback(r) for r in s.scalars(q)]


_UPDATABLE = frozenset(
    {"description", "stable_revision", "canary_revision", "canary_percent", "canary_started_at", "window_s", "auto_rollback"}
)


def _deployment(row: DeploymentRow) -> Deployment:
    return Deployment(
        name=row.name,
        description=row.description,
        stable_revision=row.stable_revision,
        canary_revision=row.canary_revision,
        canary_percent=float(row.canary_percent),
        canary_started_at=row.canary_started_at,
        rules=tuple(RolloutRule.from_dict(r) for r in row.rules or []),
        gate=tuple(GateRule.from_dict(g) for g in row.gate or []),
        window_s=row.window_s,
        auto_rollback=bool(row.auto_rollback),
        generation=row.generation,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _revision(row: DeploymentRevisionRow) -> Revision:
    return Revision(
        deployment=row.deployment,
        number=row.number,
        targets=tuple(Target.from_dict(t) for t in row.targets or []),
        note=row.note,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _event_row(e: DeploymentEvent, now: datetime, project: str) -> DeploymentEventRow:
    json_or_invalid(e.details, "event details", "details")
    return DeploymentEventRow(
        project=project,
        deployment=e.deployment,
        at=e.at or now,
        kind=EventKind(e.kind).value,
        revision=e.revision,
        actor=e.actor[:200],
        reason=e.reason,
        details=dict(e.details),
    )


def _event(row: DeploymentEventRow) -> DeploymentEvent:
    return DeploymentEvent(
        id=row.id,
        deployment=row.deployment,
        kind=EventKind(row.kind),
        revision=row.revision,
        actor=row.actor,
        reason=row.reason,
        details=dict(row.details or {}),
        at=row.at,
    )


def _usage_row(r: UsageRecord, now: datetime, project: str) -> UsageRow:
    return UsageRow(
        project=project,
        at=r.at or now,
        response_id=r.response_id[:80],
        kind=r.kind,
        model=r.model[:300],
        served_model=r.served_model[:300],
        model_version=r.model_version[:300] if r.model_version else None,
        deployment=r.deployment,
        revision=r.revision,
        role=r.role.value if r.role else None,
        key_id=r.key_id,
        outcome=r.outcome.value,
        error_code=r.error_code,
        prompt_tokens=int(r.prompt_tokens),
        completion_tokens=int(r.completion_tokens),
        latency_s=float(r.latency_s),
        blocked=bool(r.blocked),
    )


def _usage(row: UsageRow) -> UsageRecord:
    return UsageRecord(
        response_id=row.response_id,
        kind=row.kind,
        model=row.model,
        served_model=row.served_model,
        outcome=Outcome(row.outcome),
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        latency_s=row.latency_s,
        key_id=row.key_id,
        deployment=row.deployment,
        revision=row.revision,
        role=Role(row.role) if row.role else None,
        model_version=row.model_version,
        error_code=row.error_code,
        blocked=bool(row.blocked),
        at=row.at,
        project=row.project,
    )


def _feedback(row: FeedbackRow) -> Feedback:
    return Feedback(
        id=row.id,
        response_id=row.response_id,
        rating=row.rating,
        comment=row.comment,
        key_id=row.key_id,
        deployment=row.deployment,
        revision=row.revision,
        model_version=row.model_version,
        served_model=row.served_model,
        at=row.at,
    )
