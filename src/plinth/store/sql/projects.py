"""Projects, users, memberships and login sessions in SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from plinth.domain.projects import Membership, Project, ProjectQuotas, Role, User
from plinth.errors import ErrorCode, PlinthError, not_found
from plinth.store.schema import Base, Scoped
from plinth.store.schema.catalog import AdapterRow, ModelRow
from plinth.store.schema.datasets import DatasetVersionRow
from plinth.store.schema.knowledge import KbDocumentRow
from plinth.store.schema.projects import MembershipRow, ProjectRow, SessionRow, UserRow
from plinth.store.sql.common import RefusedValue, SqlBase, db_reason, is_foreign_key_violation, is_unique_violation
from plinth.store.sql.engine import rowcount


class ProjectsSql(SqlBase):
    """:class:`plinth.store.base_projects.ProjectsStore` on SQL."""

    # -- projects ---------------------------------------------------------------------------------
    def create_project(self, project: Project) -> Project:
        q = project.quotas
        row = ProjectRow(
            name=project.name,
            description=project.description,
            budget_tokens=q.budget_tokens,
            budget_period=q.budget_period,
            storage_bytes=q.storage_bytes,
            created_by=project.created_by[:200],
            created_at=project.created_at or datetime.now(UTC),
        )
        try:
            with self._session(write=True) as s:
                s.add(row)
                s.flush()
                return _project(row)
        except IntegrityError as e:
            if is_unique_violation(e):
                raise PlinthError(ErrorCode.ALREADY_EXISTS, f"project {project.name!r} already exists", param="name") from None
            raise
        except RefusedValue as e:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"project {project.name!r} cannot be stored: {db_reason(e)}") from None

    def find_project(self, name: str) -> Project | None:
        with self._session() as s:
            row = s.get(ProjectRow, name)
            return None if row is None else _project(row)

    def list_projects(self, names: list[str] | None = None) -> list[Project]:
        q = select(ProjectRow).order_by(ProjectRow.name)
        if names is not None:
            q = q.where(ProjectRow.name.in_(names))
        with self._session() as s:
            return [_project(r) for r in s.scalars(q)]

    def update_project(self, name: str, *, description: str | None = None, quotas: ProjectQuotas | None = None) -> Project:
        with self._session(write=True) as s:
            row = s.get(ProjectRow, name, with_for_update=True)
            if row is None:
                raise not_found("project", name)
            if description is not None:
                row.description = description
            if quotas is not None:
                row.budget_tokens, row.budget_period, row.storage_bytes = quotas.budget_tokens, quotas.budget_period, quotas.storage_bytes
            s.flush()
            return _project(row)

    def delete_project(self, name: str) -> Project:
        counts = self.project_resource_counts(name)
        if counts:
            listed = ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
            raise PlinthError(
                ErrorCode.CONFLICT,
                f"project {name!r} still holds resources ({listed}); delete them first",
                details={"resources": counts},
            )
        with self._session(write=True) as s:
            row = s.get(ProjectRow, name, with_for_update=True)
            if row is None:
                raise not_found("project", name)
            out = _project(row)
            s.delete(row)
            return out

    def project_resource_counts(self, name: str) -> dict[str, int]:
        out: dict[str, int] = {}
        with self._session() as s:
            for mapper in Base.registry.mappers:
                cls = mapper.class_
                if not (isinstance(cls, type) and issubclass(cls, Scoped)):
                    continue
                column: Any = cls.project
                n = s.scalar(select(func.count()).select_from(cls).where(column == name)) or 0
                if n:
                    out[cls.__tablename__] = int(n)  # type: ignore[attr-defined]
        return out

    def project_storage_bytes(self, name: str) -> int:
        total = 0
        with self._session() as s:
            for column, project in (
                (ModelRow.size_bytes, ModelRow.project),
                (AdapterRow.size_bytes, AdapterRow.project),
                (KbDocumentRow.size_bytes, KbDocumentRow.project),
            ):
                total += int(s.scalar(select(func.coalesce(func.sum(column), 0)).where(project == name)) or 0)
            # a dataset version's rows are a canonical blob whose size the version does not keep;
            # its statistics do
            for stats in s.scalars(select(DatasetVersionRow.stats).where(DatasetVersionRow.project == name)):
                total += int((stats or {}).get("bytes") or 0)
        return total

    def check_storage_quota(self, incoming_bytes: int) -> None:
        project = self._project()
        found = self.find_project(project)
        if found is None or found.quotas.storage_bytes is None:
            return
        used = self.project_storage_bytes(project)
        if used + incoming_bytes > found.quotas.storage_bytes:
            raise PlinthError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"project {project!r} holds {used} bytes of its {found.quotas.storage_bytes}-byte storage quota; "
                f"{incoming_bytes} more do not fit (delete something, or ask a server admin for a larger quota)",
                details={"used": used, "quota": found.quotas.storage_bytes, "incoming": incoming_bytes},
            )

    # -- users ------------------------------------------------------------------------------------
    def create_user(self, user: User, password_hash: str | None) -> User:
        row = UserRow(
            name=user.name,
            display_name=user.display_name,
            password_hash=password_hash,
            is_admin=user.is_admin,
            disabled=user.disabled,
            created_at=user.created_at or datetime.now(UTC),
        )
        try:
            with self._session(write=True) as s:
                s.add(row)
                s.flush()
                return _user(row)
        except IntegrityError as e:
            if is_unique_violation(e):
                raise PlinthError(ErrorCode.ALREADY_EXISTS, f"user {user.name!r} already exists", param="name") from None
            raise
        except RefusedValue as e:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"user {user.name!r} cannot be stored: {db_reason(e)}") from None

    def find_user(self, name: str) -> tuple[User, str | None] | None:
        with self._session() as s:
            row = s.get(UserRow, name)
            return None if row is None else (_user(row), row.password_hash)

    def list_users(self) -> list[User]:
        with self._session() as s:
            return [_user(r) for r in s.scalars(select(UserRow).order_by(UserRow.name))]

    def update_user(
        self,
        name: str,
        *,
        password_hash: str | None = None,
        clear_password: bool = False,
        is_admin: bool | None = None,
        disabled: bool | None = None,
        display_name: str | None = None,
    ) -> User:
        with self._session(write=True) as s:
            row = s.get(UserRow, name, with_for_update=True)
            if row is None:
                raise not_found("user", name)
            if password_hash is not None:
                row.password_hash = password_hash
            elif clear_password:
                row.password_hash = None
            if is_admin is not None:
                row.is_admin = is_admin
            if disabled is not None:
                row.disabled = disabled
            if display_name is not None:
                row.display_name = display_name
            s.flush()
            return _user(row)

    def delete_user(self, name: str) -> User:
        with self._session(write=True) as s:
            row = s.get(UserRow, name, with_for_update=True)
            if row is None:
                raise not_found("user", name)
            out = _user(row)
            s.execute(delete(MembershipRow).where(MembershipRow.user == name))
            s.execute(delete(SessionRow).where(SessionRow.user == name))
            s.delete(row)
            return out

    def count_admins(self) -> int:
        with self._session() as s:
            q = select(func.count()).select_from(UserRow).where(UserRow.is_admin.is_(True), UserRow.disabled.is_(False))
            return int(s.scalar(q) or 0)

    # -- memberships ------------------------------------------------------------------------------
    def set_membership(self, user: str, project: str, role: Role) -> Membership:
        try:
            with self._session(write=True) as s:
                if s.get(UserRow, user) is None:
                    raise not_found("user", user)
                if s.get(ProjectRow, project) is None:
                    raise not_found("project", project)
                row = s.get(MembershipRow, (user, project), with_for_update=True)
                if row is None:
                    row = MembershipRow(user=user, project=project, role=role.value, created_at=datetime.now(UTC))
                    s.add(row)
                else:
                    row.role = role.value
                s.flush()
                return _membership(row)
        except IntegrityError as e:
            if is_foreign_key_violation(e):
                raise not_found("user or project", f"{user} in {project}") from None
            raise

    def remove_membership(self, user: str, project: str) -> Membership:
        with self._session(write=True) as s:
            row = s.get(MembershipRow, (user, project), with_for_update=True)
            if row is None:
                raise not_found("membership", f"{user} in {project}")
            out = _membership(row)
            s.delete(row)
            return out

    def find_membership(self, user: str, project: str) -> Membership | None:
        with self._session() as s:
            row = s.get(MembershipRow, (user, project))
            return None if row is None else _membership(row)

    def list_memberships(self, *, user: str | None = None, project: str | None = None) -> list[Membership]:
        q = select(MembershipRow).order_by(MembershipRow.project, MembershipRow.user)
        if user is not None:
            q = q.where(MembershipRow.user == user)
        if project is not None:
            q = q.where(MembershipRow.project == project)
        with self._session() as s:
            return [_membership(r) for r in s.scalars(q)]

    # -- login sessions ---------------------------------------------------------------------------
    def create_login_session(
        self, session_id: str, secret_hash: str, csrf_hash: str, user: str, *, now: datetime, expires_at: datetime
    ) -> None:
        with self._session(write=True) as s:
            s.add(
                SessionRow(
                    id=session_id,
                    secret_hash=secret_hash,
                    csrf_hash=csrf_hash,
                    user=user,
                    created_at=now,
                    expires_at=expires_at,
                    last_seen_at=now,
                )
            )

    def find_login_session(self, session_id: str) -> tuple[str, str, str, datetime] | None:
        with self._session() as s:
            row = s.get(SessionRow, session_id)
            return None if row is None else (row.user, row.secret_hash, row.csrf_hash, row.expires_at)

    def touch_login_session(self, session_id: str, *, now: datetime, expires_at: datetime) -> None:
        with self._session(write=True) as s:
            row = s.get(SessionRow, session_id, with_for_update=True)
            if row is not None:
                row.last_seen_at = now
                row.expires_at = expires_at

    def delete_login_sessions(
        self, *, session_id: str | None = None, user: str | None = None, expired_before: datetime | None = None
    ) -> int:
        q = delete(SessionRow)
        if session_id is not None:
            q = q.where(SessionRow.id == session_id)
        if user is not None:
            q = q.where(SessionRow.user == user)
        if expired_before is not None:
            q = q.where(SessionRow.expires_at < expired_before)
        if session_id is None and user is None and expired_before is None:
            raise ValueError("delete_login_sessions needs a session, a user or a time")
        with self._session(write=True) as s:
            return rowcount(s.execute(q))


def _project(row: ProjectRow) -> Project:
    return Project(
        name=row.name,
        description=row.description,
        quotas=ProjectQuotas(budget_tokens=row.budget_tokens, budget_period=row.budget_period, storage_bytes=row.storage_bytes),
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _user(row: UserRow) -> User:
    return User(
        name=row.name,
        is_admin=bool(row.is_admin),
        display_name=row.display_name,
        has_password=row.password_hash is not None,
        disabled=bool(row.disabled),
        created_at=row.created_at,
    )


def _membership(row: MembershipRow) -> Membership:
    return Membership(user=row.user, project=row.project, role=Role(row.role), created_at=row.created_at)
