"""Projects (tenants), users, roles, and the project scope every store query runs in (no I/O).

Every resource belongs to a project. The store filters every query by the **scope** of the
call (:data:`current_scope`): a project scope sees its own rows and the shared ones (built-in
base models, the built-in guardrail policy: project ``""``) and writes only its own; the
system scope (background workers, migrations, the local operator's CLI without
``--project``) sees every project and writes new rows into its ``project``.

A **user** has a **role** in each project it is a member of; server **admins** may do
everything. An API key belongs to one user in one project and never carries more than that
user's role there (see :func:`role_scopes`).
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import functools
import re
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T")

#: the project everything belongs to until projects are used (and the single-user default)
DEFAULT_PROJECT = "default"
#: the project of shared rows: readable by every project, written only in the system scope
SHARED = ""
#: where server-level audit entries go (users, projects): no project may take this name
SERVER = "*"

PROJECT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
USER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


class Role(str, enum.Enum):
    """What a member may do in a project.

    ``owner``: everything in the project, its keys, members and audit log; ``editor``: create,
    change and delete resources, and use models; ``viewer``: read; ``inference``: call ``/v1``
    only (for applications).
    """

    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"
    INFERENCE = "inference"


#: the key scopes (see :class:`plinth.domain.auth.Scope`) each role carries, by value
_ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.OWNER: frozenset({"inference", "read", "manage", "admin"}),
    Role.EDITOR: frozenset({"inference", "read", "manage"}),
    Role.VIEWER: frozenset({"read"}),
    Role.INFERENCE: frozenset({"inference"}),
}


def role_scopes(role: Role) -> frozenset[str]:
    """The key scopes (by value) a member with ``role`` holds in the project."""
    return _ROLE_SCOPES[role]


@dataclass(frozen=True)
class ProjectQuotas:
    """Limits of a project; None means unlimited.

    ``budget_tokens`` per ``budget_period`` (a calendar period, like a key's budget) over all
    of the project's keys; ``storage_bytes``: bytes of models, adapters, datasets and
    documents the project may import.
    """

    budget_tokens: int | None = None
    budget_period: str = "month"
    storage_bytes: int | None = None

    def public_dict(self) -> dict[str, Any]:
        return {"budget_tokens": self.budget_tokens, "budget_period": self.budget_period, "storage_bytes": self.storage_bytes}


@dataclass(frozen=True)
class Project:
    name: str
    description: str = ""
    quotas: ProjectQuotas = field(default_factory=ProjectQuotas)
    created_at: datetime | None = None
    created_by: str = ""

    def public_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "quotas": self.quotas.public_dict(),
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class User:
    name: str
    is_admin: bool = False
    display_name: str = ""
    has_password: bool = False
    disabled: bool = False
    created_at: datetime | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "is_admin": self.is_admin,
            "display_name": self.display_name,
            "has_password": self.has_password,
            "disabled": self.disabled,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


@dataclass(frozen=True)
class Membership:
    user: str
    project: str
    role: Role
    created_at: datetime | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "project": self.project,
            "role": self.role.value,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


# -- the scope of store calls ---------------------------------------------------------------------
@dataclass(frozen=True)
class StoreScope:
    """Which rows a store call may see and where its new rows go.

    ``project``: the project new rows belong to and name lookups look in; ``everything``:
    the system scope (every project's rows are visible and writable).
    """

    project: str
    everything: bool = False

    @property
    def visible(self) -> tuple[str, ...]:
        """The projects whose rows a project scope reads (its own and the shared ones)."""
        return (self.project, SHARED)


SYSTEM = StoreScope(project=DEFAULT_PROJECT, everything=True)

#: the scope of the current call; None: not set (the store then uses the system scope unless
#: it was told to be strict, as the server is, where an unscoped call is a bug)
current_scope: ContextVar[StoreScope | None] = ContextVar("plinth_store_scope", default=None)


@contextlib.contextmanager
def scope(value: StoreScope) -> Iterator[StoreScope]:
    """Run the block in ``value`` (restored afterwards)."""
    token = current_scope.set(value)
    try:
        yield value
    finally:
        current_scope.reset(token)


def project_scope(project: str) -> contextlib.AbstractContextManager[StoreScope]:
    """Run the block as ``project`` sees the store."""
    return scope(StoreScope(project=project))


def system_scope(project: str = DEFAULT_PROJECT) -> contextlib.AbstractContextManager[StoreScope]:
    """Run the block in the system scope (every project), new rows going to ``project``."""
    return scope(StoreScope(project=project, everything=True))


def current_project() -> str:
    """The project of the current call (the default project when no scope is set)."""
    value = current_scope.get()
    return value.project if value is not None else DEFAULT_PROJECT


def in_context(fn: Callable[[], T]) -> Callable[[], T]:
    """``fn`` bound to a copy of the caller's context (its project scope, its call), for a
    thread pool: ``loop.run_in_executor`` does not carry context variables by itself."""
    return functools.partial(contextvars.copy_context().run, fn)
