"""What is attached to a served model id: knowledge base, guardrail policy, system prompt.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_attachments",
        sa.Column("model_id", sa.String(length=300), nullable=False),
        sa.Column("knowledge_base", sa.String(length=160), nullable=True),
        sa.Column("guardrail_policy", sa.String(length=160), nullable=True),
        sa.Column("system_prompt", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_model_attachments")),
    )


def downgrade() -> None:
    op.drop_table("model_attachments")
