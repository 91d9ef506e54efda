"""Alert rules with their state, and the history of their state changes.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("expr", sa.JSON(), nullable=False),
        sa.Column("for_s", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("runbook", sa.Text(), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_since", _tz(), nullable=True),
        sa.Column("last_value", sa.Float(), nullable=True),
        sa.Column("last_evaluated_at", _tz(), nullable=True),
        sa.Column("created_at", _tz(), nullable=False),
        sa.Column("updated_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("project", "name", name=op.f("pk_alert_rules")),
    )
    op.create_table(
        "alert_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("rule", sa.String(length=128), nullable=False),
        sa.Column("at", _tz(), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("delivered", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project", "rule"],
            ["alert_rules.project", "alert_rules.name"],
            name=op.f("fk_alert_events_project_alert_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_events")),
    )
    op.create_index(op.f("ix_alert_events_project"), "alert_events", ["project"], unique=False)
    op.create_index("ix_alert_events_rule_id", "alert_events", ["rule", "id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_alert_events_project"), table_name="alert_events")
    op.drop_index("ix_alert_events_rule_id", table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_table("alert_rules")
