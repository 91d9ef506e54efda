"""The projects area of the metadata store: projects, users, memberships, login sessions.

These rows are not project-scoped; the auth service decides who may read or change them.
"""

from __future__ import annotations

import abc
from datetime import datetime

from plinth.domain.projects import Membership, Project, ProjectQuotas, Role, User


class ProjectsStore(abc.ABC):
    # -- projects -------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_project(self, project: Project) -> Project:
        """``already_exists`` for a taken name."""

    @abc.abstractmethod
    def find_project(self, name: str) -> Project | None: ...

    @abc.abstractmethod
    def list_projects(self, names: list[str] | None = None) -> list[Project]:
        """Every project, or only those named."""

    @abc.abstractmethod
    def update_project(self, name: str, *, description: str | None = None, quotas: ProjectQuotas | None = None) -> Project: ...

    @abc.abstractmethod
    def delete_project(self, name: str) -> Project:
        """``conflict`` while any resource still belongs to it."""

    @abc.abstractmethod
    def project_resource_counts(self, name: str) -> dict[str, int]:
        """Rows per table that belong to the project (tables with none are left out)."""

    @abc.abstractmethod
    def project_storage_bytes(self, name: str) -> int:
        """Bytes of the models, adapters, dataset versions and documents the project holds."""

    @abc.abstractmethod
    def check_storage_quota(self, incoming_bytes: int) -> None:
        """``payload_too_large`` when ``incoming_bytes`` more would pass the storage quota of
        the call's project."""

    # -- users ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_user(self, user: User, password_hash: str | None) -> User: ...

    @abc.abstractmethod
    def find_user(self, name: str) -> tuple[User, str | None] | None:
        """The user and its password hash."""

    @abc.abstractmethod
    def list_users(self) -> list[User]: ...

    @abc.abstractmethod
    def update_user(
        self,
        name: str,
        *,
        password_hash: str | None = None,
        clear_password: bool = False,
        is_admin: bool | None = None,
        disabled: bool | None = None,
        display_name: str | None = None,
    ) -> User: ...

    @abc.abstractmethod
    def delete_user(self, name: str) -> User: ...

    @abc.abstractmethod
    def count_admins(self) -> int:
        """Enabled server admins."""

    # -- memberships ----------------------------------------------------------------------------
    @abc.abstractmethod
    def set_membership(self, user: str, project: str, role: Role) -> Membership:
        """Add or change; ``not_found`` for an unknown user or project."""

    @abc.abstractmethod
    def remove_membership(self, user: str, project: str) -> Membership: ...

    @abc.abstractmethod
    def find_membership(self, user: str, project: str) -> Membership | None: ...

    @abc.abstractmethod
    def list_memberships(self, *, user: str | None = None, project: str | None = None) -> list[Membership]: ...

    # -- login sessions -------------------------------------------------------------------------
    @abc.abstractmethod
    def create_login_session(
        self, session_id: str, secret_hash: str, csrf_hash: str, user: str, *, now: datetime, expires_at: datetime
    ) -> None: ...

    @abc.abstractmethod
    def find_login_session(self, session_id: str) -> tuple[str, str, str, datetime] | None:
        """(user, secret hash, CSRF hash, expiry) of a session, or None."""

    @abc.abstractmethod
    def touch_login_session(self, session_id: str, *, now: datetime, expires_at: datetime) -> None: ...

    @abc.abstractmethod
    def delete_login_sessions(
        self, *, session_id: str | None = None, user: str | None = None, expired_before: datetime | None = None
    ) -> int:
        """Log a session out, every session of a user, or the expired ones."""
