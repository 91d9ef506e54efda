"""API keys, scopes, limits, principals and the audit log (no I/O).

A key is ``pk-<id>-<secret>``; only the sha256 of the secret is stored, and the whole key is
shown once, when it is created. A key has **scopes** (what it may call), optional **model
patterns** (which deployments and model ids it may use), per-minute **rate limits**
(requests and tokens) and a **token budget** over a calendar period.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from plinth.domain.projects import DEFAULT_PROJECT, Role, role_scopes

KEY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
KEY_ID_RE = re.compile(r"^[0-9a-f]{12}$")
KEY_RE = re.compile(r"^pk-([0-9a-f]{12})-([A-Za-z0-9]{32,64})$")


class Scope(str, enum.Enum):
    """``inference``: ``/v1`` (and feedback); ``read``: GET on the management API, metrics and
    docs; ``manage``: every management call except keys and the audit log (implies read);
    ``admin``: everything."""

    INFERENCE = "inference"
    READ = "read"
    MANAGE = "manage"
    ADMIN = "admin"


_IMPLIES: dict[Scope, frozenset[Scope]] = {
    Scope.INFERENCE: frozenset({Scope.INFERENCE}),
    Scope.READ: frozenset({Scope.READ}),
    Scope.MANAGE: frozenset({Scope.MANAGE, Scope.READ}),
    Scope.ADMIN: frozenset(Scope),
}


def effective_scopes(scopes: frozenset[Scope] | set[Scope] | tuple[Scope, ...]) -> frozenset[Scope]:
    out: set[Scope] = set()
    for s in scopes:
        out |= _IMPLIES[s]
    return frozenset(out)


class BudgetPeriod(str, enum.Enum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


def period_bounds(period: BudgetPeriod, now: datetime) -> tuple[datetime, datetime]:
    """The calendar period (UTC) that holds ``now``: [start, end)."""
    now = now.astimezone(UTC)
    if period is BudgetPeriod.HOUR:
        start = now.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is BudgetPeriod.DAY:
        return day, day + timedelta(days=1)
    if period is BudgetPeriod.WEEK:
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def minute_bounds(now: datetime) -> tuple[datetime, datetime]:
    start = now.astimezone(UTC).replace(second=0, microsecond=0)
    return start, start + timedelta(minutes=1)


@dataclass(frozen=True)
class Limits:
    """None means unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    budget_tokens: int | None = None
    budget_period: BudgetPeriod = BudgetPeriod.MONTH

    def public_dict(self) -> dict[str, Any]:
        return {
            "requests_per_minute": self.requests_per_minute,
            "tokens_per_minute": self.tokens_per_minute,
            "budget_tokens": self.budget_tokens,
            "budget_period": self.budget_period.value,
        }


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: frozenset[Scope]
    models: tuple[str, ...] = ()  # fnmatch patterns of model ids / deployment names; empty: all
    limits: Limits = field(default_factory=Limits)
    created_by: str = ""
    created_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    #: the project the key acts in (None when created: the store's scope)
    project: str | None = None
    #: the user the key acts for (None: made by the local operator, with the scopes it names)
    user: str | None = None

    @property
    def prefix(self) -> str:
        return f"pk-{self.id}-"

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def allows(self, scope: Scope) -> bool:
        return scope in effective_scopes(self.scopes)

    def allows_model(self, model_id: str) -> bool:
        return not self.models or any(fnmatch.fnmatchcase(model_id, p) for p in self.models)

    def public_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": sorted(s.value for s in self.scopes),
            "models": list(self.models),
            "limits": self.limits.public_dict(),
            "project": self.project,
            "user": self.user,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }


@dataclass(frozen=True)
class Principal:
    """Who makes a call and in which project.

    - authentication off: nobody (``key`` and ``user`` None), with every scope, in the
      project the call names (the default project unless ``X-Plinth-Project`` says another);
    - a key: its scopes, in its project; a key that acts for a user carries at most what that
      user's ``role`` in the project allows (a user who left the project keeps no rights
      through old keys); a key without a user was made by the local operator;
    - a user logged in (or named by a trusted single-sign-on proxy): the user's role in the
      project the call names; server admins may do everything.

    ``actor`` is how the audit log names them.
    """

    actor: str
    key: ApiKey | None = None
    project: str = DEFAULT_PROJECT
    user: str | None = None
    role: Role | None = None
    is_admin: bool = False
    session: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.key is None and self.user is None

    def scopes(self) -> frozenset[Scope]:
        if self.anonymous:
            return frozenset(Scope)
        out = effective_scopes(self.key.scopes) if self.key is not None else frozenset(Scope)
        if self.user is not None and not self.is_admin:
            held = {Scope(v) for v in role_scopes(self.role)} if self.role is not None else set()
            out = out & effective_scopes(held)
        return out

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes()

    def allows_model(self, model_id: str) -> bool:
        return self.key is None or self.key.allows_model(model_id)

    @property
    def server_admin(self) -> bool:
        """May manage users and projects: nobody when authentication is off (the local
        operator), an admin user, or a key of the local operator with the admin scope."""
        if self.anonymous:
            return True
        if self.user is not None:
            return self.is_admin and self.allows(Scope.ADMIN)
        return self.key is not None and Scope.ADMIN in self.key.scopes


@dataclass(frozen=True)
class Reservation:
    """Tokens and requests counted against a key's windows before work starts; settled with
    the real numbers afterwards (the windows it names are the ones charged)."""

    key_id: str | None  # None: a call without a key (a logged-in user), charged to its project only
    requests: int
    tokens: int
    minute_start: datetime | None
    budget_start: datetime | None
    project: str | None = None  # whose budget it is charged to as well
    project_budget_start: datetime | None = None


@dataclass(frozen=True)
class KeyWindows:
    """A key's counters now: this minute and this budget period."""

    minute_start: datetime
    minute_requests: int
    minute_tokens: int
    budget_start: datetime | None
    budget_end: datetime | None
    budget_tokens_used: int

    def public_dict(self, limits: Limits) -> dict[str, Any]:
        return {
            "minute": {
                "start": self.minute_start.isoformat(),
                "requests": self.minute_requests,
                "tokens": self.minute_tokens,
                "requests_limit": limits.requests_per_minute,
                "tokens_limit": limits.tokens_per_minute,
            },
            "budget": {
                "period": limits.budget_period.value,
                "start": self.budget_start.isoformat() if self.budget_start else None,
                "end": self.budget_end.isoformat() if self.budget_end else None,
                "used": self.budget_tokens_used,
                "limit": limits.budget_tokens,
                "remaining": None if limits.budget_tokens is None else max(0, limits.budget_tokens - self.budget_tokens_used),
            },
        }


@dataclass(frozen=True)
class AuditEntry:
    """One management action: who, what, on what, when, and the state before and after."""

    actor: str
    action: str  # e.g. "deployment.promote", "key.create", "http POST /api/v1/models"
    target_type: str
    target: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None
    id: int | None = None
    #: the project the action was in (None: the store's scope when written)
    project: str | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "at": self.at.isoformat() if self.at else None,
            "actor": self.actor,
            "action": self.action,
            "target_type": self.target_type,
            "target": self.target,
            "before": self.before,
            "after": self.after,
            "details": self.details,
        }
