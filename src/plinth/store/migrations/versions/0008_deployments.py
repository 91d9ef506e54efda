"""Deployments (revisions, history), usage records, feedback, API keys with their limit windows,
and the audit log.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("stable_revision", sa.Integer(), nullable=False),
        sa.Column("canary_revision", sa.Integer(), nullable=True),
        sa.Column("canary_percent", sa.Float(), nullable=False),
        sa.Column("canary_started_at", _tz(), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("gate", sa.JSON(), nullable=False),
        sa.Column("window_s", sa.Integer(), nullable=False),
        sa.Column("auto_rollback", sa.Boolean(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
        sa.Column("updated_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_deployments")),
    )
    op.create_table(
        "deployment_revisions",
        sa.Column("deployment", sa.String(length=128), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment"], ["deployments.name"], name=op.f("fk_deployment_revisions_deployment_deployments"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("deployment", "number", name=op.f("pk_deployment_revisions")),
    )
    op.create_table(
        "deployment_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("deployment", sa.String(length=128), nullable=False),
        sa.Column("at", _tz(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment"], ["deployments.name"], name=op.f("fk_deployment_events_deployment_deployments"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_events")),
    )
    op.create_index("ix_deployment_events_deployment_id", "deployment_events", ["deployment", "id"], unique=False)
    op.create_table(
        "usage_records",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("at", _tz(), nullable=False),
        sa.Column("response_id", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("served_model", sa.String(length=300), nullable=False),
        sa.Column("model_version", sa.String(length=300), nullable=True),
        sa.Column("deployment", sa.String(length=128), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=8), nullable=True),
        sa.Column("key_id", sa.String(length=16), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("latency_s", sa.Float(), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
    )
    op.create_index("ix_usage_records_at", "usage_records", ["at"], unique=False)
    op.create_index("ix_usage_records_response_id", "usage_records", ["response_id"], unique=False)
    op.create_index("ix_usage_records_deployment_at", "usage_records", ["deployment", "at"], unique=False)
    op.create_index("ix_usage_records_key_id_at", "usage_records", ["key_id", "at"], unique=False)
    op.create_table(
        "feedback",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("at", _tz(), nullable=False),
        sa.Column("response_id", sa.String(length=80), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=True),
        sa.Column("deployment", sa.String(length=128), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("model_version", sa.String(length=300), nullable=True),
        sa.Column("served_model", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    op.create_index("ix_feedback_response_id", "feedback", ["response_id"], unique=False)
    op.create_index("ix_feedback_deployment_at", "feedback", ["deployment", "at"], unique=False)
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("tokens_per_minute", sa.BigInteger(), nullable=True),
        sa.Column("budget_tokens", sa.BigInteger(), nullable=True),
        sa.Column("budget_period", sa.String(length=8), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
        sa.Column("expires_at", _tz(), nullable=True),
        sa.Column("revoked_at", _tz(), nullable=True),
        sa.Column("last_used_at", _tz(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("name", name=op.f("uq_api_keys_name")),
    )
    op.create_table(
        "api_key_windows",
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("window_start", _tz(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_api_key_windows_key_id_api_keys"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("key_id", "kind", "window_start", name=op.f("pk_api_key_windows")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("at", _tz(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target_type", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"], unique=False)
    op.create_index("ix_audit_log_actor", "audit_log", ["actor"], unique=False)
    op.create_index("ix_audit_log_target", "audit_log", ["target_type", "target"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_log_target", table_name="audit_log")
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("api_key_windows")
    op.drop_table("api_keys")
    op.drop_index("ix_feedback_deployment_at", table_name="feedback")
    op.drop_index("ix_feedback_response_id", table_name="feedback")
    op.drop_table("feedback")
    op.drop_index("ix_usage_records_key_id_at", table_name="usage_records")
    op.drop_index("ix_usage_records_deployment_at", table_name="usage_records")
    op.drop_index("ix_usage_records_response_id", table_name="usage_records")
    op.drop_index("ix_usage_records_at", table_name="usage_records")
    op.drop_table("usage_records")
    op.drop_index("ix_deployment_events_deployment_id", table_name="deployment_events")
    op.drop_table("deployment_events")
    op.drop_table("deployment_revisions")
    op.drop_table("deployments")
