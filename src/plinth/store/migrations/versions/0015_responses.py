"""Stored answers of the Responses API (/v1/responses) for previous_response_id.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("previous_response_id", sa.String(length=40), nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("input_items", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_responses")),
    )
    op.create_index(op.f("ix_responses_project"), "responses", ["project"], unique=False)
    op.create_index("ix_responses_project_created_at", "responses", ["project", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_responses_project_created_at", table_name="responses")
    op.drop_index(op.f("ix_responses_project"), table_name="responses")
    op.drop_table("responses")
