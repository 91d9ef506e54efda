"""The bias area of the metadata store (monitoring, issue 14): counterfactual bias reports,
and the request-log read that per-answer explanations need.

Every report belongs to a project; reads see the call's project only (ADR 0083).
"""

from __future__ import annotations

import abc

from plinth.domain.bias import BiasReport, LoggedAnswer


class BiasStore(abc.ABC):
    """Methods of this area; see :mod:`plinth.store.sql.bias`."""

    @abc.abstractmethod
    def add_bias_report(self, report: BiasReport) -> BiasReport:
        """Store a report (a new id when ``report.id`` is empty; ``at`` now when None)."""

    @abc.abstractmethod
    def get_bias_report(self, report_id: str) -> BiasReport:
        """PlinthError(NOT_FOUND) if absent."""

    @abc.abstractmethod
    def list_bias_reports(
        self, *, target: str | None = None, suite: str | None = None, passed: bool | None = None, limit: int = 100
    ) -> list[BiasReport]:
        """Reports matching every filter given, newest first."""

    @abc.abstractmethod
    def logged_answer(self, response_id: str) -> LoggedAnswer | None:
        """What the request log holds of a response id (None when it is not logged)."""
