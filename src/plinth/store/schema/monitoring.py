"""Tables of monitoring (revisions 0010-0013): the request log, drift results, alert rules with
their states and history, and bias reports. Every table is project-scoped (ADR 0083).

The request log never holds text a guardrail policy removed: ``prompt_text`` and
``response_text`` are what the attached policy's redaction produced, or null when the
deployment logs no text (``text_mode``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKeyConstraint, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plinth.store.schema.base import Base, Scoped, project_column

#: BIGINT on Postgres, INTEGER (the rowid alias, autoincrementing) on SQLite
_ID = BigInteger().with_variant(Integer(), "sqlite")


class RequestLogRow(Scoped, Base):
    """One ``/v1`` request and its answer (revision 0010)."""

    __tablename__ = "request_log"
    __table_args__ = (
        Index("ix_request_log_project_at", "project", "at"),
        Index("ix_request_log_deployment_at", "deployment", "at"),
        Index("ix_request_log_response_id", "response_id"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    project: Mapped[str] = project_column()
    at: Mapped[datetime]
    response_id: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(16))  # chat | text | embeddings
    model: Mapped[str] = mapped_column(String(300))  # as requested
    served_model: Mapped[str] = mapped_column(String(300))
    model_version: Mapped[str | None] = mapped_column(String(300))
    adapter: Mapped[str | None] = mapped_column(String(300))
    deployment: Mapped[str | None] = mapped_column(String(128))
    revision: Mapped[int | None] = mapped_column(Integer)
    key_id: Mapped[str | None] = mapped_column(String(16))
    user: Mapped[str | None] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    latency_s: Mapped[float] = mapped_column(Float)
    ttft_s: Mapped[float | None] = mapped_column(Float)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    #: "redacted": the texts below are what the policy's redaction produced; "none": no text
    text_mode: Mapped[str] = mapped_column(String(16))
    prompt_text: Mapped[str | None] = mapped_column(Text)
    response_text: Mapped[str | None] = mapped_column(Text)
    #: the guardrail policy version that checked the request (name@N); None: no policy
    policy: Mapped[str | None] = mapped_column(String(200))
    #: guardrail findings as counts: [{"detector", "kind", "action", "label", "direction", "count"}]
    findings: Mapped[list[Any]] = mapped_column(JSON)
    finding_count: Mapped[int] = mapped_column(Integer)
    #: a guardrail blocked the request or halted the answer
    blocked: Mapped[bool] = mapped_column(Boolean)
    #: the answer refuses or says it does not know (plinth.oversight.quality); None: no answer
    refused: Mapped[bool | None] = mapped_column(Boolean)
    #: passages were cited and no groundedness finding fired; None: nothing was retrieved
    grounded: Mapped[bool | None] = mapped_column(Boolean)
    #: retrieved citations: [{"document", "chunk_id", "score", "knowledge_base", "version"}]
    citations: Mapped[list[Any]] = mapped_column(JSON)
    #: the prompt's embedding (float32, the embedded MiniLM) for drift and anomaly scores
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    anomaly_score: Mapped[float | None] = mapped_column(Float)
    anomaly: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    feedback: Mapped[int | None] = mapped_column(Integer)  # the last rating of the response
    size_bytes: Mapped[int] = mapped_column(Integer)  # what retention by size counts


class DriftRunRow(Scoped, Base):
    """One drift measurement of a deployment's recent prompts against a reference (revision 0011)."""

    __tablename__ = "drift_runs"
    __table_args__ = (Index("ix_drift_runs_deployment_at", "deployment", "at"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    project: Mapped[str] = project_column()
    at: Mapped[datetime]
    deployment: Mapped[str] = mapped_column(String(128))
    revision: Mapped[int | None] = mapped_column(Integer)
    adapter: Mapped[str | None] = mapped_column(String(300))
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    n_recent: Mapped[int] = mapped_column(Integer)
    n_reference: Mapped[int] = mapped_column(Integer)
    #: what was compared against: {"kind": "dataset"|"knowledge_base"|"window", ...}
    reference: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: per method: statistic, p-value or threshold, drifted; what changed (terms, examples)
    results: Mapped[dict[str, Any]] = mapped_column(JSON)
    drifted: Mapped[bool] = mapped_column(Boolean)
    score: Mapped[float] = mapped_column(Float)  # the headline statistic (0 = same), for charts and alerts


class AlertRuleRow(Scoped, Base):
    """An alert rule (revision 0012)."""

    __tablename__ = "alert_rules"

    project: Mapped[str] = project_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    #: {"signal", "deployment", "comparison", "threshold", "window_s", ...}
    expr: Mapped[dict[str, Any]] = mapped_column(JSON)
    for_s: Mapped[int] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(16))
    runbook: Mapped[str] = mapped_column(Text)
    #: [{"kind": "webhook"|"rollback"|..., ...}]
    actions: Mapped[list[Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean)
    #: inactive | pending | firing, with when it entered that state
    state: Mapped[str] = mapped_column(String(16))
    state_since: Mapped[datetime | None]
    last_value: Mapped[float | None] = mapped_column(Float)
    last_evaluated_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AlertEventRow(Scoped, Base):
    """A state change of an alert rule and what its actions did (revision 0012)."""

    __tablename__ = "alert_events"
    __table_args__ = (
        Index("ix_alert_events_rule_id", "rule", "id"),
        ForeignKeyConstraint(["project", "rule"], ["alert_rules.project", "alert_rules.name"], ondelete="CASCADE"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    project: Mapped[str] = project_column()
    rule: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime]
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: per action: {"kind", "ok", "message"}
    delivered: Mapped[list[Any]] = mapped_column(JSON)


class BiasReportRow(Scoped, Base):
    """A counterfactual bias probe run against a model version or deployment (revision 0013)."""

    __tablename__ = "bias_reports"
    __table_args__ = (Index("ix_bias_reports_target_at", "target", "at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = project_column()
    at: Mapped[datetime]
    target: Mapped[str] = mapped_column(String(300))  # a model id or deployment name
    suite: Mapped[str] = mapped_column(String(200))
    #: per attribute: gaps (similarity, refusal, length, sentiment, facts) and thresholds
    results: Mapped[dict[str, Any]] = mapped_column(JSON)
    passed: Mapped[bool] = mapped_column(Boolean)
