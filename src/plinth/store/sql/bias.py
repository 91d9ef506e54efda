"""The bias area of the metadata store in SQL (monitoring, issue 14)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from sqlalchemy import select

from plinth.domain.bias import REPORT_ID_RE, BiasReport, LoggedAnswer
from plinth.errors import not_found
from plinth.store.schema.monitoring import BiasReportRow, RequestLogRow
from plinth.store.sql.common import SqlBase, json_or_invalid


class BiasSql(SqlBase):
    """:class:`plinth.store.base_bias.BiasStore` on SQL."""

    def add_bias_report(self, report: BiasReport) -> BiasReport:
        json_or_invalid(report.results, "bias report results", "results")
        with self._session(write=True) as s:
            row = BiasReportRow(
                id=report.id or uuid4().hex,
                at=report.at or datetime.now(UTC),
                target=report.target,
                suite=report.suite,
                results=dict(report.results),
                passed=report.passed,
            )
            s.add(row)
            s.flush()
            return _report(row)

    def get_bias_report(self, report_id: str) -> BiasReport:
        if not REPORT_ID_RE.match(report_id or ""):
            raise not_found("bias report", report_id)
        with self._session() as s:
            row = s.get(BiasReportRow, report_id)
            if row is None:
                raise not_found("bias report", report_id)
            return _report(row)

    def list_bias_reports(
        self, *, target: str | None = None, suite: str | None = None, passed: bool | None = None, limit: int = 100
    ) -> list[BiasReport]:
        q = select(BiasReportRow).where(self._visible(BiasReportRow))
        if target is not None:
            q = q.where(BiasReportRow.target == target)
        if suite is not None:
            q = q.where(BiasReportRow.suite == suite)
        if passed is not None:
            q = q.where(BiasReportRow.passed == passed)
        q = q.order_by(BiasReportRow.at.desc(), BiasReportRow.id).limit(max(1, limit))
        with self._session() as s:
            return [_report(r) for r in s.scalars(q)]

    def logged_answer(self, response_id: str) -> LoggedAnswer | None:
        q = (
            select(RequestLogRow)
            .where(self._visible(RequestLogRow), RequestLogRow.response_id == response_id)
            .order_by(RequestLogRow.id.desc())
            .limit(1)
        )
        with self._session() as s:
            row = s.scalars(q).first()
            if row is None:
                return None
            return LoggedAnswer(
                response_id=row.response_id,
                kind=row.kind,
                model=row.model,
                served_model=row.served_model,
                text_mode=row.text_mode,
                prompt_text=row.prompt_text,
                response_text=row.response_text,
                citations=list(row.citations or []),
                model_version=row.model_version,
                deployment=row.deployment,
                revision=row.revision,
                at=row.at,
            )


def _report(row: BiasReportRow) -> BiasReport:
    return BiasReport(
        id=row.id,
        target=row.target,
        suite=row.suite,
        results=dict(row.results or {}),
        passed=row.passed,
        at=row.at,
        project=row.project,
    )
