"""Tables of the guardrails area: policies, their immutable versions, and guardrail events.

Events never hold text: detector, action, label, offsets, score and the request they
belong to, so what a redact rule removed cannot be read back from the store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKeyConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plinth.store.schema.base import Base, Scoped, project_column

#: BIGINT on Postgres, INTEGER (the rowid alias, autoincrementing) on SQLite
_BigId = BigInteger().with_variant(Integer(), "sqlite")


class GuardrailPolicyRow(Scoped, Base):
    """A named policy (:class:`plinth.domain.guardrails.PolicySummary`)."""

    __tablename__ = "guardrail_policies"
    __shareable__ = True

    project: Mapped[str] = project_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    latest_version: Mapped[int] = mapped_column(Integer)
    builtin: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class GuardrailPolicyVersionRow(Scoped, Base):
    """One immutable version of a policy (:class:`plinth.domain.guardrails.PolicyVersion`)."""

    __tablename__ = "guardrail_policy_versions"
    __table_args__ = (
        ForeignKeyConstraint(["project", "policy"], ["guardrail_policies.project", "guardrail_policies.name"], ondelete="CASCADE"),
    )
    __shareable__ = True

    project: Mapped[str] = project_column(primary_key=True)
    policy: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class GuardrailEventRow(Scoped, Base):
    """One finding of one request (:class:`plinth.domain.guardrails.GuardrailEvent`)."""

    __tablename__ = "guardrail_events"
    __table_args__ = (Index("ix_guardrail_events_model_id_id", "model_id", "id"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    project: Mapped[str] = project_column()
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    model_id: Mapped[str] = mapped_column(String(300))
    policy: Mapped[str] = mapped_column(String(100))
    policy_version: Mapped[int] = mapped_column(Integer)
    direction: Mapped[str] = mapped_column(String(16))
    detector: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    span_start: Mapped[int | None] = mapped_column(Integer)
    span_end: Mapped[int | None] = mapped_column(Integer)
    choice: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(index=True)
