"""The request log: every /v1 request and its answer, with only redacted text.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "request_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("at", _tz(), nullable=False),
        sa.Column("response_id", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("served_model", sa.String(length=300), nullable=False),
        sa.Column("model_version", sa.String(length=300), nullable=True),
        sa.Column("adapter", sa.String(length=300), nullable=True),
        sa.Column("deployment", sa.String(length=128), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("key_id", sa.String(length=16), nullable=True),
        sa.Column("user", sa.String(length=128), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("finish_reason", sa.String(length=32), nullable=True),
        sa.Column("latency_s", sa.Float(), nullable=False),
        sa.Column("ttft_s", sa.Float(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("text_mode", sa.String(length=16), nullable=False),
        sa.Column("prompt_text", sa.Text(), nullable=True),
        sa.Column("response_text", sa.Text(), nullable=True),
        sa.Column("policy", sa.String(length=200), nullable=True),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("finding_count", sa.Integer(), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("refused", sa.Boolean(), nullable=True),
        sa.Column("grounded", sa.Boolean(), nullable=True),
        sa.Column("citations", sa.JSON(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("anomaly_score", sa.Float(), nullable=True),
        sa.Column("anomaly", sa.JSON(), nullable=True),
        sa.Column("feedback", sa.Integer(), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_log")),
    )
    op.create_index("ix_request_log_deployment_at", "request_log", ["deployment", "at"], unique=False)
    op.create_index(op.f("ix_request_log_project"), "request_log", ["project"], unique=False)
    op.create_index("ix_request_log_project_at", "request_log", ["project", "at"], unique=False)
    op.create_index("ix_request_log_response_id", "request_log", ["response_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_request_log_deployment_at", table_name="request_log")
    op.drop_index(op.f("ix_request_log_project"), table_name="request_log")
    op.drop_index("ix_request_log_project_at", table_name="request_log")
    op.drop_index("ix_request_log_response_id", table_name="request_log")
    op.drop_table("request_log")
