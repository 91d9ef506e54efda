"""Automation: pipelines (versions), pipeline runs and steps, triggers and trigger events.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "pipelines",
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("project", "name", "version", name=op.f("pk_pipelines")),
    )
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("pipeline", sa.String(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("trigger", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", _tz(), nullable=True),
        sa.Column("created_at", _tz(), nullable=False),
        sa.Column("started_at", _tz(), nullable=True),
        sa.Column("finished_at", _tz(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_runs")),
    )
    op.create_index(op.f("ix_pipeline_runs_project"), "pipeline_runs", ["project"], unique=False)
    op.create_index("ix_pipeline_runs_state", "pipeline_runs", ["state"], unique=False)
    op.create_index("ix_pipeline_runs_pipeline_created_at", "pipeline_runs", ["pipeline", "created_at"], unique=False)
    op.create_table(
        "pipeline_steps",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("inputs_digest", sa.String(length=80), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("cached_from", sa.String(length=32), nullable=True),
        sa.Column("started_at", _tz(), nullable=True),
        sa.Column("finished_at", _tz(), nullable=True),
        sa.Column("next_try_at", _tz(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["pipeline_runs.id"], name=op.f("fk_pipeline_steps_run_id_pipeline_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "name", name=op.f("pk_pipeline_steps")),
    )
    op.create_index(op.f("ix_pipeline_steps_project"), "pipeline_steps", ["project"], unique=False)
    op.create_index("ix_pipeline_steps_inputs_digest", "pipeline_steps", ["inputs_digest"], unique=False)
    op.create_table(
        "triggers",
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("pipeline", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("cooldown_s", sa.Float(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("project", "name", name=op.f("pk_triggers")),
    )
    op.create_table(
        "trigger_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("project", sa.String(length=63), nullable=False),
        sa.Column("trigger", sa.String(length=63), nullable=False),
        sa.Column("at", _tz(), nullable=False),
        sa.Column("fired", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project", "trigger"],
            ["triggers.project", "triggers.name"],
            name=op.f("fk_trigger_events_project_triggers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger_events")),
    )
    op.create_index(op.f("ix_trigger_events_project"), "trigger_events", ["project"], unique=False)
    op.create_index("ix_trigger_events_trigger_id", "trigger_events", ["trigger", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_trigger_events_trigger_id", table_name="trigger_events")
    op.drop_index(op.f("ix_trigger_events_project"), table_name="trigger_events")
    op.drop_table("trigger_events")
    op.drop_table("triggers")
    op.drop_index("ix_pipeline_steps_inputs_digest", table_name="pipeline_steps")
    op.drop_index(op.f("ix_pipeline_steps_project"), table_name="pipeline_steps")
    op.drop_table("pipeline_steps")
    op.drop_index("ix_pipeline_runs_pipeline_created_at", table_name="pipeline_runs")
    op.drop_index("ix_pipeline_runs_state", table_name="pipeline_runs")
    op.drop_index(op.f("ix_pipeline_runs_project"), table_name="pipeline_runs")
    op.drop_table("pipeline_runs")
    op.drop_table("pipelines")
