"""The alerts area of the metadata store in SQL (monitoring, issue 14): rules with their state
(changed under the rule's row lock, so two server processes never both record a change),
their history, and the aggregated reads of the request log, drift runs, bias reports and
guardrail events that alert signals and the compliance report need."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, select
from sqlalchemy.exc import IntegrityError

from plinth.domain.alerts import (
    AlertEvent,
    AlertExpr,
    AlertRule,
    AlertState,
    BiasPoint,
    DriftPoint,
    RequestLogWindow,
    Severity,
    Transition,
)
from plinth.domain.deployments import p95
from plinth.errors import ErrorCode, PlinthError, not_found
from plinth.store.schema.guardrails import GuardrailEventRow
from plinth.store.schema.monitoring import AlertEventRow, AlertRuleRow, BiasReportRow, DriftRunRow, RequestLogRow
from plinth.store.sql.common import RefusedValue, SqlBase, db_reason, is_unique_violation, json_or_invalid

#: most recent requests whose time to first token feeds a window's p95 (as for latency)
_TTFT_SAMPLE = 5000


class AlertsSql(SqlBase):
    """:class:`plinth.store.base_alerts.AlertsStore` on SQL."""

    # -- rules ----------------------------------------------------------------------------------
    def create_alert_rule(self, rule: AlertRule) -> AlertRule:
        now = datetime.now(UTC)
        row = AlertRuleRow(
            project=self._project(),
            name=rule.name,
            state=AlertState.INACTIVE.value,
            state_since=None,
            last_value=None,
            last_evaluated_at=None,
            created_at=now,
            updated_at=now,
        )
        _definition(row, rule)
        try:
            with self._session(write=True) as s:
                s.add(row)
                s.flush()
                return _rule(row)
        except IntegrityError as e:
            if is_unique_violation(e):
                raise PlinthError(ErrorCode.ALREADY_EXISTS, f"alert rule {rule.name!r} already exists", param="name") from None
            raise
        except RefusedValue as e:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"alert rule {rule.name!r} cannot be stored: {db_reason(e)}") from None

    def get_alert_rule(self, name: str) -> AlertRule:
        found = self.find_alert_rule(name)
        if found is None:
            raise not_found("alert rule", name)
        return found

    def find_alert_rule(self, name: str) -> AlertRule | None:
        with self._session() as s:
            row = s.get(AlertRuleRow, (self._project(), name))
            return None if row is None else _rule(row)

    def list_alert_rules(self, *, deployment: str | None = None, enabled: bool | None = None) -> list[AlertRule]:
        q = select(AlertRuleRow).where(AlertRuleRow.project == self._project())
        if enabled is not None:
            q = q.where(AlertRuleRow.enabled.is_(enabled))
        with self._session() as s:
            rules = [_rule(r) for r in s.scalars(q.order_by(AlertRuleRow.name))]
        return [r for r in rules if deployment is None or r.expr.deployment == deployment]

    def update_alert_rule(self, rule: AlertRule) -> AlertRule:
        try:
            with self._session(write=True) as s:
                row = s.get(AlertRuleRow, (self._project(), rule.name), with_for_update=True)
                if row is None:
                    raise not_found("alert rule", rule.name)
                _definition(row, rule)
                row.updated_at = datetime.now(UTC)
                s.flush()
                return _rule(row)
        except RefusedValue as e:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"alert rule {rule.name!r} cannot be stored: {db_reason(e)}") from None

    def delete_alert_rule(self, name: str) -> AlertRule:
        project = self._project()
        with self._session(write=True) as s:
            row = s.get(AlertRuleRow, (project, name), with_for_update=True)
            if row is None:
                raise not_found("alert rule", name)
            gone = _rule(row)
            s.execute(delete(AlertEventRow).where(AlertEventRow.project == project, AlertEventRow.rule == name))
            s.delete(row)
            return gone

    def alert_rule_projects(self) -> list[str]:
        with self._session() as s:
            q = select(AlertRuleRow.project).where(AlertRuleRow.enabled.is_(True)).distinct().order_by(AlertRuleRow.project)
            return [str(p) for p in s.scalars(q)]

    # -- states and history ---------------------------------------------------------------------
    def transition_alert_rule(
        self,
        name: str,
        *,
        expected_state: AlertState,
        expected_since: datetime | None,
        event: AlertEvent,
        since: datetime,
    ) -> AlertEvent | None:
        project = self._project()
        json_or_invalid(event.details, "alert event details", "details")
        with self._session(write=True) as s:
            row = s.get(AlertRuleRow, (project, name), with_for_update=True)
            if row is None:
                raise not_found("alert rule", name)
            if row.state != expected_state.value or row.state_since != expected_since:
                return None
            at = event.at or since
            row.state = event.to.state.value
            row.state_since = None if event.to.state is AlertState.INACTIVE else since
            row.last_value = event.value
            row.last_evaluated_at = at
            stored = AlertEventRow(
                project=project,
                rule=name,
                at=at,
                from_state=event.from_state.value,
                to_state=event.to.value,
                value=event.value,
                details=event.details,
                delivered=[dict(d) for d in event.delivered],
            )
            s.add(stored)
            s.flush()
            return _event(stored)

    def note_alert_evaluation(self, name: str, *, value: float | None, at: datetime) -> None:
        with self._session(write=True) as s:
            row = s.get(AlertRuleRow, (self._project(), name), with_for_update=True)
            if row is not None:
                row.last_value = value
                row.last_evaluated_at = at

    def set_alert_event_delivered(self, event_id: int, delivered: list[dict[str, Any]]) -> None:
        json_or_invalid(delivered, "alert action outcomes", "delivered")
        with self._session(write=True) as s:
            row = s.get(AlertEventRow, event_id, with_for_update=True)
            if row is not None:
                row.delivered = [dict(d) for d in delivered]

    def list_alert_events(
        self,
        *,
        rule: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AlertEvent]:
        q = select(AlertEventRow).where(AlertEventRow.project == self._project())
        if rule is not None:
            q = q.where(AlertEventRow.rule == rule)
        if since is not None:
            q = q.where(AlertEventRow.at >= since)
        if until is not None:
            q = q.where(AlertEventRow.at < until)
        if before_id is not None:
            q = q.where(AlertEventRow.id < before_id)
        q = q.order_by(AlertEventRow.id.desc()).limit(max(1, min(limit, 10_000)))
        with self._session() as s:
            return [_event(r) for r in s.scalars(q)]

    # -- reads of other monitoring tables -----------------------------------------------------------
    def request_log_window(
        self,
        deployment: str,
        revisions: list[int] | None,
        since: datetime,
        until: datetime | None = None,
        *,
        anomaly_above: float | None = None,
    ) -> RequestLogWindow:
        conds = [RequestLogRow.project == self._project(), RequestLogRow.deployment == deployment, RequestLogRow.at >= since]
        if until is not None:
            conds.append(RequestLogRow.at < until)
        if revisions is not None:
            conds.append(RequestLogRow.revision.in_(revisions))
        where = and_(*conds)
        with self._session() as s:
            requests = int(s.scalar(select(func.count()).select_from(RequestLogRow).where(where)) or 0)
            ttfts = [
                float(v)
                for v in s.scalars(
                    select(RequestLogRow.ttft_s)
                    .where(where, RequestLogRow.ttft_s.is_not(None))
                    .order_by(RequestLogRow.id.desc())
                    .limit(_TTFT_SAMPLE)
                )
                if v is not None
            ]
            scored = int(
                s.scalar(select(func.count()).select_from(RequestLogRow).where(where, RequestLogRow.anomaly_score.is_not(None))) or 0
            )
            anomalies = 0
            if anomaly_above is not None:
                anomalies = int(
                    s.scalar(select(func.count()).select_from(RequestLogRow).where(where, RequestLogRow.anomaly_score > anomaly_above)) or 0
                )
        return RequestLogWindow(requests=requests, ttft_samples=len(ttfts), ttft_p95_s=p95(ttfts), scored=scored, anomalies=anomalies)

    def drift_points(
        self, deployment: str, *, since: datetime | None = None, until: datetime | None = None, limit: int = 1000
    ) -> list[DriftPoint]:
        q = select(DriftRunRow).where(DriftRunRow.project == self._project(), DriftRunRow.deployment == deployment)
        if since is not None:
            q = q.where(DriftRunRow.at >= since)
        if until is not None:
            q = q.where(DriftRunRow.at < until)
        q = q.order_by(DriftRunRow.at.desc(), DriftRunRow.id.desc()).limit(max(1, min(limit, 100_000)))
        with self._session() as s:
            rows = list(s.scalars(q))
        return [
            DriftPoint(
                at=r.at,
                deployment=r.deployment,
                revision=r.revision,
                adapter=r.adapter,
                score=float(r.score),
                drifted=bool(r.drifted),
                n_recent=int(r.n_recent),
                n_reference=int(r.n_reference),
                reference=dict(r.reference or {}),
                results=dict(r.results or {}),
            )
            for r in reversed(rows)
        ]

    def bias_points(
        self, targets: list[str], *, since: datetime | None = None, until: datetime | None = None, limit: int = 200
    ) -> list[BiasPoint]:
        if not targets:
            return []
        q = select(BiasReportRow).where(BiasReportRow.project == self._project(), BiasReportRow.target.in_(targets))
        if since is not None:
            q = q.where(BiasReportRow.at >= since)
        if until is not None:
            q = q.where(BiasReportRow.at < until)
        q = q.order_by(BiasReportRow.at.desc()).limit(max(1, min(limit, 10_000)))
        with self._session() as s:
            rows = list(s.scalars(q))
        return [
            BiasPoint(id=r.id, at=r.at, target=r.target, suite=r.suite, passed=bool(r.passed), results=dict(r.results or {}))
            for r in reversed(rows)
        ]

    def guardrail_event_counts(self, model_id: str, *, since: datetime, until: datetime) -> list[dict[str, Any]]:
        cols = (GuardrailEventRow.detector, GuardrailEventRow.label, GuardrailEventRow.action, GuardrailEventRow.direction)
        q = (
            select(*cols, func.count().label("n"), func.count(func.distinct(GuardrailEventRow.request_id)).label("requests"))
            .where(
                GuardrailEventRow.project == self._project(),
                GuardrailEventRow.model_id == model_id,
                GuardrailEventRow.created_at >= since,
                GuardrailEventRow.created_at < until,
            )
            .group_by(*cols)
            .order_by(func.count().desc(), *cols)
        )
        with self._session() as s:
            rows = s.execute(q).all()
        return [
            {"detector": d, "label": lab, "action": a, "direction": dr, "count": int(n), "requests": int(rq)}
            for d, lab, a, dr, n, rq in rows
        ]


def _definition(row: AlertRuleRow, rule: AlertRule) -> None:
    row.expr = rule.expr.to_dict()
    row.for_s = rule.for_s
    row.severity = rule.severity.value
    row.runbook = rule.runbook
    row.actions = [dict(a) for a in rule.actions]
    row.enabled = rule.enabled
    json_or_invalid(row.expr, "the rule's expression", "params")
    json_or_invalid(row.actions, "the rule's actions", "actions")


def _rule(r: AlertRuleRow) -> AlertRule:
    return AlertRule(
        name=r.name,
        expr=AlertExpr.from_dict(dict(r.expr)),
        for_s=int(r.for_s),
        severity=Severity(r.severity),
        runbook=r.runbook,
        actions=tuple(dict(a) for a in (r.actions or [])),
        enabled=bool(r.enabled),
        state=AlertState(r.state),
        state_since=r.state_since,
        last_value=r.last_value,
        last_evaluated_at=r.last_evaluated_at,
        created_at=r.created_at,
        updated_at=r.updated_at,
        project=r.project,
    )


def _event(r: AlertEventRow) -> AlertEvent:
    return AlertEvent(
        rule=r.rule,
        from_state=AlertState(r.from_state),
        to=Transition(r.to_state),
        value=r.value,
        details=dict(r.details or {}),
        delivered=tuple(dict(d) for d in (r.delivered or [])),
        at=r.at,
        id=r.id,
    )
