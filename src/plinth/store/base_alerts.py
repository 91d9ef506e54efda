"""The alerts area of the metadata store (monitoring, issue 14): alert rules with their state,
the history of their state changes, and the reads of other monitoring tables that alert
signals and the compliance report need (the request log, drift runs, bias reports, guardrail
events), aggregated in the database."""

from __future__ import annotations

import abc
from datetime import datetime
from typing import Any

from plinth.domain.alerts import AlertEvent, AlertRule, AlertState, BiasPoint, DriftPoint, RequestLogWindow


class AlertsStore(abc.ABC):
    # -- rules ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_alert_rule(self, rule: AlertRule) -> AlertRule:
        """Insert ``rule`` (inactive); ``already_exists`` for a taken name."""

    @abc.abstractmethod
    def get_alert_rule(self, name: str) -> AlertRule:
        """``not_found`` when there is none."""

    @abc.abstractmethod
    def find_alert_rule(self, name: str) -> AlertRule | None: ...

    @abc.abstractmethod
    def list_alert_rules(self, *, deployment: str | None = None, enabled: bool | None = None) -> list[AlertRule]:
        """The project's rules by name (``deployment``: those watching it)."""

    @abc.abstractmethod
    def update_alert_rule(self, rule: AlertRule) -> AlertRule:
        """Replace the definition of ``rule.name`` (expression, ``for``, severity, runbook,
        actions, enabled); the state stays. ``not_found`` when there is none."""

    @abc.abstractmethod
    def delete_alert_rule(self, name: str) -> AlertRule:
        """Delete the rule and its history."""

    @abc.abstractmethod
    def alert_rule_projects(self) -> list[str]:
        """The projects that have enabled rules (read in the system scope: the evaluator's)."""

    # -- states and history ---------------------------------------------------------------------
    @abc.abstractmethod
    def transition_alert_rule(
        self,
        name: str,
        *,
        expected_state: AlertState,
        expected_since: datetime | None,
        event: AlertEvent,
        since: datetime,
    ) -> AlertEvent | None:
        """Move the rule from ``expected_state`` (entered at ``expected_since``) to the state
        ``event`` names, as of ``since``, recording ``event`` and the value, in one transaction.
        None when the rule is no longer in that state (another process moved it first)."""

    @abc.abstractmethod
    def note_alert_evaluation(self, name: str, *, value: float | None, at: datetime) -> None:
        """Record the value of an evaluation that changed no state."""

    @abc.abstractmethod
    def set_alert_event_delivered(self, event_id: int, delivered: list[dict[str, Any]]) -> None:
        """Record what the actions of a state change did."""

    @abc.abstractmethod
    def list_alert_events(
        self,
        *,
        rule: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AlertEvent]:
        """State changes of the project's rules, newest first; ``before_id`` pages backwards."""

    # -- reads of other monitoring tables -----------------------------------------------------------
    @abc.abstractmethod
    def request_log_window(
        self,
        deployment: str,
        revisions: list[int] | None,
        since: datetime,
        until: datetime | None = None,
        *,
        anomaly_above: float | None = None,
    ) -> RequestLogWindow:
        """The deployment's logged requests in the window (``revisions`` None: all): their
        count, the p95 of their time to first token and how many scored above
        ``anomaly_above``."""

    @abc.abstractmethod
    def drift_points(
        self, deployment: str, *, since: datetime | None = None, until: datetime | None = None, limit: int = 1000
    ) -> list[DriftPoint]:
        """Stored drift measurements of the deployment, oldest first (the newest ``limit``)."""

    @abc.abstractmethod
    def bias_points(
        self, targets: list[str], *, since: datetime | None = None, until: datetime | None = None, limit: int = 200
    ) -> list[BiasPoint]:
        """Stored bias reports of these targets (model ids or deployment names), oldest first."""

    @abc.abstractmethod
    def guardrail_event_counts(self, model_id: str, *, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """Guardrail findings of requests to ``model_id`` (a deployment name) in the period,
        counted by detector, label, action and direction, most first."""
