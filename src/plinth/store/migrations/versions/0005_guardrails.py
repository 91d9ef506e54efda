"""Guardrail policies, their versions, and guardrail events.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "guardrail_policies",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_guardrail_policies")),
    )
    op.create_table(
        "guardrail_policy_versions",
        sa.Column("policy", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["policy"],
            ["guardrail_policies.name"],
            name=op.f("fk_guardrail_policy_versions_policy_guardrail_policies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("policy", "version", name=op.f("pk_guardrail_policy_versions")),
    )
    op.create_table(
        "guardrail_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("model_id", sa.String(length=300), nullable=False),
        sa.Column("policy", sa.String(length=100), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("detector", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("span_start", sa.Integer(), nullable=True),
        sa.Column("span_end", sa.Integer(), nullable=True),
        sa.Column("choice", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guardrail_events")),
    )
    op.create_index(op.f("ix_guardrail_events_request_id"), "guardrail_events", ["request_id"], unique=False)
    op.create_index(op.f("ix_guardrail_events_created_at"), "guardrail_events", ["created_at"], unique=False)
    op.create_index("ix_guardrail_events_model_id_id", "guardrail_events", ["model_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_guardrail_events_model_id_id", table_name="guardrail_events")
    op.drop_index(op.f("ix_guardrail_events_created_at"), table_name="guardrail_events")
    op.drop_index(op.f("ix_guardrail_events_request_id"), table_name="guardrail_events")
    op.drop_table("guardrail_events")
    op.drop_table("guardrail_policy_versions")
    op.drop_table("guardrail_policies")
