"""Counterfactual bias probe reports.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "bias_reports",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("at", _tz(), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("suite", sa.String(length=200), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bias_reports")),
    )
    op.create_index(op.f("ix_bias_reports_project"), "bias_reports", ["project"], unique=False)
    op.create_index("ix_bias_reports_target_at", "bias_reports", ["target", "at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_bias_reports_project"), table_name="bias_reports")
    op.drop_index("ix_bias_reports_target_at", table_name="bias_reports")
    op.drop_table("bias_reports")
