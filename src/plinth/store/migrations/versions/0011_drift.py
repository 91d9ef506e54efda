"""Drift measurements of deployments' recent prompts against a reference.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "drift_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("at", _tz(), nullable=False),
        sa.Column("deployment", sa.String(length=128), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("adapter", sa.String(length=300), nullable=True),
        sa.Column("window_start", _tz(), nullable=False),
        sa.Column("window_end", _tz(), nullable=False),
        sa.Column("n_recent", sa.Integer(), nullable=False),
        sa.Column("n_reference", sa.Integer(), nullable=False),
        sa.Column("reference", sa.JSON(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("drifted", sa.Boolean(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_runs")),
    )
    op.create_index("ix_drift_runs_deployment_at", "drift_runs", ["deployment", "at"], unique=False)
    op.create_index(op.f("ix_drift_runs_project"), "drift_runs", ["project"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_drift_runs_deployment_at", table_name="drift_runs")
    op.drop_index(op.f("ix_drift_runs_project"), table_name="drift_runs")
    op.drop_table("drift_runs")
