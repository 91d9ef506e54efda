"""Projects (tenants), users, memberships and login sessions; every resource row belongs to a
project.

Every existing row moves to the project ``default``, except the built-in models and the
built-in guardrail policy, which become shared (project ``""``). Names become unique per
project: tables keyed by a name get ``project`` as the first column of their primary key
(and their children a composite foreign key); unique names become unique per project.
Adapters lose their foreign key to ``models.name`` (a project's adapter may sit on a shared
base model).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

P = 63  # PROJECT_LEN

#: tables whose rows gain a plain (indexed) ``project`` column
INDEXED = [
    "models",
    "adapters",
    "knowledge_bases",
    "kb_versions",
    "kb_documents",
    "kb_chunks",
    "kb_citations",
    "guardrail_events",
    "jobs",
    "job_logs",
    "runs",
    "run_metrics",
    "run_artifacts",
    "model_versions",
    "eval_reports",
    "deployment_events",
    "usage_records",
    "feedback",
    "api_keys",
    "audit_log",
]
#: tables whose primary key becomes (project, ...)
KEYED = {
    "model_attachments": ["project", "model_id"],
    "datasets": ["project", "name"],
    "dataset_versions": ["project", "dataset", "version"],
    "guardrail_policies": ["project", "name"],
    "guardrail_policy_versions": ["project", "policy", "version"],
    "registered_models": ["project", "name"],
    "model_aliases": ["project", "name", "alias"],
    "deployments": ["project", "name"],
    "deployment_revisions": ["project", "deployment", "number"],
}
#: unique constraints that become per project: table -> (old name, old columns)
UNIQUES = {
    "models": ("uq_models_name", ["name"]),
    "adapters": ("uq_adapters_base_model_name", ["base_model", "name"]),
    "knowledge_bases": ("uq_knowledge_bases_name", ["name"]),
    "model_versions": ("uq_model_versions_name_version", ["name", "version"]),
    "jobs": ("uq_jobs_idempotency_key", ["idempotency_key"]),
    "api_keys": ("uq_api_keys_name", ["name"]),
}
#: foreign keys on a parent's name that become composite: child -> (old name, column, parent)
NAME_FKS = {
    "dataset_versions": ("fk_dataset_versions_dataset_datasets", "dataset", "datasets"),
    "guardrail_policy_versions": ("fk_guardrail_policy_versions_policy_guardrail_policies", "policy", "guardrail_policies"),
    "model_versions": ("fk_model_versions_name_registered_models", "name", "registered_models"),
    "model_aliases": ("fk_model_aliases_name_registered_models", "name", "registered_models"),
    "deployment_revisions": ("fk_deployment_revisions_deployment_deployments", "deployment", "deployments"),
    "deployment_events": ("fk_deployment_events_deployment_deployments", "deployment", "deployments"),
}


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _project_column(**kw: object) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("project", sa.String(length=P), nullable=False, server_default="default", **kw)  # type: ignore[arg-type]


def upgrade() -> None:
    with warnings.catch_warnings():
        # SQLite's batch copies of a table whose primary key changes say so; that is the point
        warnings.filterwarnings("ignore", message=".*primary_key=True, not matching locally specified columns.*")
        _upgrade()


def downgrade() -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*primary_key=True, not matching locally specified columns.*")
        _downgrade()


def _upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # 1. the column, on every scoped table (existing rows: project "default")
    for table in INDEXED + list(KEYED):
        with op.batch_alter_table(table) as b:
            b.add_column(_project_column())
    op.execute("UPDATE models SET project = '' WHERE builtin")
    op.execute("UPDATE guardrail_policies SET project = '' WHERE builtin")
    op.execute("UPDATE guardrail_policy_versions SET project = '' WHERE policy IN (SELECT name FROM guardrail_policies WHERE builtin)")
    with op.batch_alter_table("job_queues") as b:
        b.add_column(sa.Column("project", sa.String(length=P), nullable=False, server_default=""))
    with op.batch_alter_table("api_keys") as b:
        b.add_column(sa.Column("user", sa.String(length=128), nullable=True))

    # 2. children first: foreign keys that point at a parent's name alone
    for child, (fk, _column, _parent) in NAME_FKS.items():
        with op.batch_alter_table(child) as b:
            b.drop_constraint(fk, type_="foreignkey")
    with op.batch_alter_table("adapters") as b:
        b.drop_constraint("fk_adapters_base_model_models", type_="foreignkey")

    # 3. primary keys and unique names per project
    for table, columns in KEYED.items():
        with op.batch_alter_table(table, recreate="always" if sqlite else "auto") as b:
            if not sqlite:
                b.drop_constraint(f"pk_{table}", type_="primary")
            b.create_primary_key(f"pk_{table}", columns)
    for table, (name, columns) in UNIQUES.items():
        with op.batch_alter_table(table) as b:
            b.drop_constraint(name, type_="unique")
            b.create_unique_constraint(op.f(f"uq_{table}_project_{'_'.join(columns)}"), ["project", *columns])

    # 4. the composite foreign keys
    for child, (_fk, column, parent) in NAME_FKS.items():
        with op.batch_alter_table(child) as b:
            b.create_foreign_key(op.f(f"fk_{child}_project_{parent}"), parent, ["project", column], ["project", "name"], ondelete="CASCADE")

    # 5. the index a project's listing uses
    for table in INDEXED:
        op.create_index(op.f(f"ix_{table}_project"), table, ["project"], unique=False)

    # 6. the server defaults served the existing rows; new rows always name their project
    for table in INDEXED + list(KEYED):
        with op.batch_alter_table(table) as b:
            b.alter_column("project", existing_type=sa.String(length=P), existing_nullable=False, server_default=None)
    with op.batch_alter_table("job_queues") as b:
        b.alter_column("project", existing_type=sa.String(length=P), existing_nullable=False, server_default=None)

    # 7. who may see which project
    projects = op.create_table(
        "projects",
        sa.Column("name", sa.String(length=P), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("budget_tokens", sa.BigInteger(), nullable=True),
        sa.Column("budget_period", sa.String(length=8), nullable=False),
        sa.Column("storage_bytes", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_projects")),
    )
    op.create_table(
        "users",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=300), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_users")),
    )
    op.create_table(
        "memberships",
        sa.Column("user", sa.String(length=128), nullable=False),
        sa.Column("project", sa.String(length=P), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
        sa.ForeignKeyConstraint(["project"], ["projects.name"], name=op.f("fk_memberships_project_projects"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user"], ["users.name"], name=op.f("fk_memberships_user_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user", "project", name=op.f("pk_memberships")),
    )
    op.create_index(op.f("ix_memberships_project"), "memberships", ["project"], unique=False)
    op.create_table(
        "login_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf_hash", sa.String(length=64), nullable=False),
        sa.Column("user", sa.String(length=128), nullable=False),
        sa.Column("created_at", _tz(), nullable=False),
        sa.Column("expires_at", _tz(), nullable=False),
        sa.Column("last_seen_at", _tz(), nullable=False),
        sa.ForeignKeyConstraint(["user"], ["users.name"], name=op.f("fk_login_sessions_user_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_sessions")),
    )
    op.create_index(op.f("ix_login_sessions_user"), "login_sessions", ["user"], unique=False)
    op.create_index(op.f("ix_login_sessions_expires_at"), "login_sessions", ["expires_at"], unique=False)
    op.create_table(
        "project_windows",
        sa.Column("project", sa.String(length=P), nullable=False),
        sa.Column("window_start", _tz(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["project"], ["projects.name"], name=op.f("fk_project_windows_project_projects"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project", "window_start", name=op.f("pk_project_windows")),
    )
    op.bulk_insert(
        projects,
        [
            {
                "name": "default",
                "description": "Everything made before projects were used, and the single-user default.",
                "budget_tokens": None,
                "budget_period": "month",
                "storage_bytes": None,
                "created_by": "migration 0009",
                "created_at": datetime.now(UTC),
            }
        ],
    )


def _downgrade() -> None:
    """Back to one namespace. Rows of projects other than ``default`` (and shared ones whose
    names clash with them) would break the restored unique names: the downgrade deletes the
    other projects' rows first."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.drop_table("project_windows")
    op.drop_index(op.f("ix_login_sessions_expires_at"), table_name="login_sessions")
    op.drop_index(op.f("ix_login_sessions_user"), table_name="login_sessions")
    op.drop_table("login_sessions")
    op.drop_index(op.f("ix_memberships_project"), table_name="memberships")
    op.drop_table("memberships")
    op.drop_table("users")
    op.drop_table("projects")
    for table in reversed(INDEXED + list(KEYED)):
        op.execute(f"DELETE FROM {table} WHERE project NOT IN ('default', '')")  # the table names are constants
    for table in INDEXED:
        op.drop_index(op.f(f"ix_{table}_project"), table_name=table)
    for child, (_fk, _column, parent) in NAME_FKS.items():
        with op.batch_alter_table(child) as b:
            b.drop_constraint(op.f(f"fk_{child}_project_{parent}"), type_="foreignkey")
    for table, (name, columns) in UNIQUES.items():
        with op.batch_alter_table(table) as b:
            b.drop_constraint(op.f(f"uq_{table}_project_{'_'.join(columns)}"), type_="unique")
            b.create_unique_constraint(name, columns)
    old_keys = {table: [c for c in columns if c != "project"] for table, columns in KEYED.items()}
    for table, columns in old_keys.items():
        with op.batch_alter_table(table, recreate="always" if sqlite else "auto") as b:
            if not sqlite:
                b.drop_constraint(f"pk_{table}", type_="primary")
            b.create_primary_key(f"pk_{table}", columns)
    for child, (fk, column, parent) in NAME_FKS.items():
        with op.batch_alter_table(child) as b:
            b.create_foreign_key(fk, parent, [column], ["name"], ondelete="CASCADE")
    with op.batch_alter_table("adapters") as b:
        b.create_foreign_key("fk_adapters_base_model_models", "models", ["base_model"], ["name"], ondelete="CASCADE")
    with op.batch_alter_table("api_keys") as b:
        b.drop_column("user")
    with op.batch_alter_table("job_queues") as b:
        b.drop_column("project")
    for table in INDEXED + list(KEYED):
        with op.batch_alter_table(table) as b:
            b.drop_column("project")
