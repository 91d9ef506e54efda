"""Projects, users, memberships and login sessions: who may see which project.

Passwords are hashed with scrypt (``hashlib.scrypt``: N=2^15, r=8, p=1, 32 bytes, a 16-byte
salt; about 32 MiB and a few tens of milliseconds per check), stored as
``scrypt$N$r$p$<salt>$<hash>`` so the parameters can be raised later. A login session is a
random id and secret in an HttpOnly cookie (only the secret's sha256 is stored) plus a CSRF
token that every changing request made with the cookie must repeat in ``X-CSRF-Token``.

Every change is written to the audit log: project changes in the project's log, user
changes in the server's (project ``*``, readable by server admins).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from plinth.auth.audit import AuditLog
from plinth.domain.auth import Principal, Scope
from plinth.domain.projects import (
    DEFAULT_PROJECT,
    PROJECT_NAME_RE,
    SERVER,
    USER_NAME_RE,
    Membership,
    Project,
    ProjectQuotas,
    Role,
    User,
    system_scope,
)
from plinth.errors import ErrorCode, PlinthError, not_found
from plinth.store import MetadataStore

_SCRYPT = (2**15, 8, 1)
_MIN_PASSWORD = 12
_MAX_PASSWORD = 1024
SESSION_COOKIE = "plinth_session"
CSRF_HEADER = "x-csrf-token"


def hash_password(password: str) -> str:
    check_password_strength(password)
    n, r, p = _SCRYPT
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=64 * 1024 * 1024)
    return f"scrypt${n}${r}${p}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored or len(password) > _MAX_PASSWORD:
        return False
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32, maxmem=64 * 1024 * 1024
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def check_password_strength(password: str) -> None:
    if not isinstance(password, str) or len(password) < _MIN_PASSWORD:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"a password needs at least {_MIN_PASSWORD} characters", param="password")
    if len(password) > _MAX_PASSWORD:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"a password has at most {_MAX_PASSWORD} characters", param="password")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_project_name(name: str) -> str:
    if not isinstance(name, str) or not PROJECT_NAME_RE.match(name):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid project name {name!r}: use 1-63 lowercase letters, digits and '-', starting with a letter or digit",
            param="name",
        )
    return name


def check_user_name(name: str) -> str:
    if not isinstance(name, str) or not USER_NAME_RE.match(name):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid user name {name!r}: use 1-128 letters, digits, '.', '_', '@' or '-', starting with a letter or digit",
            param="name",
        )
    return name


def parse_role(value: str) -> Role:
    try:
        return Role(str(value).strip().lower())
    except ValueError:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST, f"unknown role {value!r}; use {', '.join(r.value for r in Role)}", param="role"
        ) from None


@dataclass(frozen=True)
class LoginResult:
    user: User
    cookie: str  # "<id>.<secret>"
    csrf_token: str
    expires_at: datetime


class AccountService:
    def __init__(
        self,
        store: MetadataStore,
        audit: AuditLog,
        *,
        session_ttl_s: float = 12 * 3600,
        cache_ttl_s: float = 2.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.audit = audit
        self.session_ttl = timedelta(seconds=session_ttl_s)
        self.cache_ttl_s = cache_ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._users: dict[str, tuple[float, User | None]] = {}
        self._roles: dict[tuple[str, str], tuple[float, Role | None]] = {}
        self._projects: dict[str, tuple[float, bool]] = {}
        self._failures: dict[str, list[float]] = {}

    # -- who a principal is -----------------------------------------------------------------------
    def user(self, name: str) -> User | None:
        now = time.monotonic()
        with self._lock:
            hit = self._users.get(name)
        if hit is not None and now - hit[0] < self.cache_ttl_s:
            return hit[1]
        with system_scope():
            found = self.store.find_user(name)
        user = found[0] if found is not None else None
        with self._lock:
            self._users[name] = (now, user)
        return user

    def role(self, user: str, project: str) -> Role | None:
        now = time.monotonic()
        with self._lock:
            hit = self._roles.get((user, project))
        if hit is not None and now - hit[0] < self.cache_ttl_s:
            return hit[1]
        with system_scope():
            m = self.store.find_membership(user, project)
        role = m.role if m is not None else None
        with self._lock:
            self._roles[(user, project)] = (now, role)
        return role

    def project_exists(self, name: str) -> bool:
        now = time.monotonic()
        with self._lock:
            hit = self._projects.get(name)
        if hit is not None and now - hit[0] < self.cache_ttl_s:
            return hit[1]
        with system_scope():
            exists = self.store.find_project(name) is not None
        with self._lock:
            self._projects[name] = (now, exists)
        return exists

    def _forget(self) -> None:
        with self._lock:
            self._users.clear()
            self._roles.clear()
            self._projects.clear()

    def user_principal(self, name: str, project: str | None, *, session: str | None = None) -> Principal:
        """The principal of a logged-in (or proxy-named) user working in ``project`` (None: the
        user's only project; else the default project when the user may see it, else the first of
        the user's projects by name)."""
        user = self.user(name)
        if user is None or user.disabled:
            raise PlinthError(ErrorCode.UNAUTHENTICATED, "the user is unknown or disabled")
        if project is None:
            mine = sorted(m.project for m in self.memberships_of(name))
            if len(mine) == 1:
                project = mine[0]
            elif not mine or user.is_admin or DEFAULT_PROJECT in mine:
                project = DEFAULT_PROJECT
            else:  # several projects, not the default one: the first (the console's selector switches)
                project = mine[0]
        self.check_project_visible(user.name, user.is_admin, project)
        return Principal(
            actor=f"user:{user.name}",
            project=project,
            user=user.name,
            role=self.role(user.name, project),
            is_admin=user.is_admin,
            session=session,
        )

    def check_project_visible(self, user: str | None, is_admin: bool, project: str) -> None:
        """``not_found`` unless the project exists and the user may see it (the same answer
        for a project that does not exist and one the user is not a member of)."""
        if not self.project_exists(project) or (user is not None and not is_admin and self.role(user, project) is None):
            raise not_found("project", project)

    def memberships_of(self, user: str) -> list[Membership]:
        with system_scope():
            return self.store.list_memberships(user=user)

    # -- login sessions ---------------------------------------------------------------------------
    def login(self, name: str, password: str) -> LoginResult:
        """A new session; ``unauthenticated`` (the same words whatever was wrong) and, after five
        failures for a name within five minutes, ``rate_limited`` for the rest of them."""
        key = str(name)[:128]
        now_m = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(key, []) if now_m - t < 300]
            self._failures[key] = recent
        if len(recent) >= 5:
            raise PlinthError(
                ErrorCode.RATE_LIMITED, "too many failed logins for this user; try again later", retry_after=300 - (now_m - recent[0])
            )
        with system_scope():
            found = self.store.find_user(key) if USER_NAME_RE.match(key) else None
        ok = found is not None and not found[0].disabled and verify_password(password, found[1])
        if found is None:
            verify_password(password, hash_password("x" * _MIN_PASSWORD))  # same time for an unknown name
        if not ok or found is None:
            with self._lock:
                self._failures.setdefault(key, []).append(now_m)
            raise PlinthError(ErrorCode.UNAUTHENTICATED, "wrong user name or password")
        user = found[0]
        session_id, secret, csrf = secrets.token_hex(16), secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self.clock()
        expires = now + self.session_ttl
        with system_scope():
            self.store.create_login_session(session_id, _sha(secret), _sha(csrf), user.name, now=now, expires_at=expires)
            self.store.delete_login_sessions(expired_before=now)
        self.audit.record(f"user:{user.name}", "session.login", "user", user.name, project=SERVER)
        return LoginResult(user=user, cookie=f"{session_id}.{secret}", csrf_token=csrf, expires_at=expires)

    def session_user(self, cookie: str) -> tuple[str, str, str]:
        """(session id, user, CSRF hash) of a valid session cookie; ``unauthenticated`` else.
        Each use extends the session by its lifetime."""
        session_id, _, secret = cookie.partition(".")
        if not session_id or not secret or len(cookie) > 200:
            raise PlinthError(ErrorCode.UNAUTHENTICATED, "the session is not valid; log in again")
        with system_scope():
            found = self.store.find_login_session(session_id)
        now = self.clock()
        if found is None or not hmac.compare_digest(_sha(secret), found[1]) or found[3] <= now:
            raise PlinthError(ErrorCode.UNAUTHENTICATED, "the session is not valid or has expired; log in again")
        user, _, csrf_hash, expires = found
        if expires - now < self.session_ttl * 0.9:  # extend now and then, not on every request
            with system_scope():
                self.store.touch_login_session(session_id, now=now, expires_at=now + self.session_ttl)
        return session_id, user, csrf_hash

    @staticmethod
    def csrf_ok(token: str | None, csrf_hash: str) -> bool:
        return bool(token) and hmac.compare_digest(_sha(token or ""), csrf_hash)

    def logout(self, session_id: str) -> None:
        with system_scope():
            self.store.delete_login_sessions(session_id=session_id)

    # -- projects ---------------------------------------------------------------------------------
    def projects_for(self, principal: Principal) -> list[Project]:
        with system_scope():
            if principal.server_admin:
                return self.store.list_projects()
            if principal.user is not None:
                return self.store.list_projects([m.project for m in self.store.list_memberships(user=principal.user)])
            return self.store.list_projects([principal.project])

    def get_project(self, principal: Principal, name: str) -> Project:
        self._check_sees(principal, name)
        with system_scope():
            found = self.store.find_project(name)
        if found is None:
            raise not_found("project", name)
        return found

    def project_usage(self, principal: Principal, name: str) -> dict[str, Any]:
        """What the project holds: rows per resource table and bytes of stored files."""
        self._check_sees(principal, name)
        with system_scope():
            return {"resources": self.store.project_resource_counts(name), "storage_bytes": self.store.project_storage_bytes(name)}

    def create_project(self, principal: Principal, name: str, *, description: str = "", quotas: ProjectQuotas | None = None) -> Project:
        self._check_server_admin(principal, "create projects")
        check_project_name(name)
        with system_scope():
            project = self.store.create_project(
                Project(name=name, description=description, quotas=quotas or ProjectQuotas(), created_by=principal.actor)
            )
            if principal.user is not None:  # its creator owns it
                self.store.set_membership(principal.user, name, Role.OWNER)
        self._forget()
        self.audit.record(principal.actor, "project.create", "project", name, after=project.public_dict(), project=name)
        return project

    def update_project(
        self, principal: Principal, name: str, *, description: str | None = None, quotas: ProjectQuotas | None = None
    ) -> Project:
        if quotas is not None:
            self._check_server_admin(principal, "change a project's quotas")
        else:
            self._check_owner(principal, name)
        with system_scope():
            before = self.store.find_project(name)
            if before is None:
                raise not_found("project", name)
            after = self.store.update_project(name, description=description, quotas=quotas)
        self.audit.record(
            principal.actor, "project.update", "project", name, before=before.public_dict(), after=after.public_dict(), project=name
        )
        return after

    def delete_project(self, principal: Principal, name: str) -> Project:
        self._check_server_admin(principal, "delete projects")
        if name == DEFAULT_PROJECT:
            raise PlinthError(ErrorCode.CONFLICT, "the default project cannot be deleted", param="name")
        with system_scope():
            gone = self.store.delete_project(name)
        self._forget()
        self.audit.record(principal.actor, "project.delete", "project", name, before=gone.public_dict(), project=SERVER)
        return gone

    # -- members ----------------------------------------------------------------------------------
    def members(self, principal: Principal, project: str) -> list[Membership]:
        self._check_sees(principal, project)
        with system_scope():
            return self.store.list_memberships(project=project)

    def set_member(self, principal: Principal, project: str, user: str, role: str | Role) -> Membership:
        self._check_owner(principal, project)
        r = role if isinstance(role, Role) else parse_role(role)
        with system_scope():
            before = self.store.find_membership(user, project)
            if self.store.find_user(user) is None:
                raise not_found("user", user)
            after = self.store.set_membership(user, project, r)
        self._forget()
        self.audit.record(
            principal.actor,
            "member.set",
            "membership",
            f"{user}@{project}",
            before=before.public_dict() if before else None,
            after=after.public_dict(),
            project=project,
        )
        return after

    def remove_member(self, principal: Principal, project: str, user: str) -> Membership:
        self._check_owner(principal, project)
        with system_scope():
            gone = self.store.remove_membership(user, project)
        self._forget()
        self.audit.record(principal.actor, "member.remove", "membership", f"{user}@{project}", before=gone.public_dict(), project=project)
        return gone

    # -- users ------------------------------------------------------------------------------------
    def list_users(self, principal: Principal) -> list[User]:
        self._check_server_admin(principal, "list users")
        with system_scope():
            return self.store.list_users()

    def get_user(self, principal: Principal, name: str) -> User:
        if principal.user != name:
            self._check_server_admin(principal, "read other users")
        found = self.user(name)
        if found is None:
            raise not_found("user", name)
        return found

    def create_user(
        self, principal: Principal, name: str, *, password: str | None = None, is_admin: bool = False, display_name: str = ""
    ) -> User:
        self._check_server_admin(principal, "create users")
        check_user_name(name)
        pw = hash_password(password) if password is not None else None
        with system_scope():
            user = self.store.create_user(User(name=name, is_admin=is_admin, display_name=display_name[:200]), pw)
        self._forget()
        self.audit.record(principal.actor, "user.create", "user", name, after=user.public_dict(), project=SERVER)
        return user

    def update_user(
        self,
        principal: Principal,
        name: str,
        *,
        password: str | None = None,
        is_admin: bool | None = None,
        disabled: bool | None = None,
        display_name: str | None = None,
    ) -> User:
        own = principal.user == name and is_admin is None and disabled is None
        if not own:
            self._check_server_admin(principal, "change other users")
        pw = hash_password(password) if password is not None else None
        with system_scope():
            found = self.store.find_user(name)
            if found is None:
                raise not_found("user", name)
            before = found[0]
            if before.is_admin and (is_admin is False or disabled) and not before.disabled and self.store.count_admins() <= 1:
                raise PlinthError(ErrorCode.CONFLICT, f"{name!r} is the last admin; make another admin first")
            after = self.store.update_user(name, password_hash=pw, is_admin=is_admin, disabled=disabled, display_name=display_name)
            if pw is not None or disabled:
                self.store.delete_login_sessions(user=name)  # a new password or a disabled user ends every session
        self._forget()
        self.audit.record(
            principal.actor, "user.update", "user", name, before=before.public_dict(), after=after.public_dict(), project=SERVER
        )
        return after

    def delete_user(self, principal: Principal, name: str) -> User:
        self._check_server_admin(principal, "delete users")
        with system_scope():
            found = self.store.find_user(name)
            if found is not None and found[0].is_admin and self.store.count_admins() <= 1:
                raise PlinthError(ErrorCode.CONFLICT, f"{name!r} is the last admin; make another admin first")
            gone = self.store.delete_user(name)
        self._forget()
        self.audit.record(principal.actor, "user.delete", "user", name, before=gone.public_dict(), project=SERVER)
        return gone

    # -- checks -----------------------------------------------------------------------------------
    def _check_server_admin(self, principal: Principal, what: str) -> None:
        if not principal.server_admin:
            raise PlinthError(ErrorCode.PERMISSION_DENIED, f"only a server admin may {what}")

    def _check_sees(self, principal: Principal, project: str) -> None:
        if principal.server_admin:
            if not self.project_exists(project):
                raise not_found("project", project)
            return
        if principal.user is not None:
            self.check_project_visible(principal.user, principal.is_admin, project)
        elif project != principal.project:
            raise not_found("project", project)

    def _check_owner(self, principal: Principal, project: str) -> None:
        self._check_sees(principal, project)
        if principal.server_admin:
            return
        if principal.key is None and principal.user is not None:  # a logged-in user: their role there
            if self.role(principal.user, project) is Role.OWNER:
                return
        elif principal.project == project and principal.allows(Scope.ADMIN):  # a key: in its own project only
            return
        raise PlinthError(ErrorCode.PERMISSION_DENIED, f"only an owner of project {project!r} may manage it and its members")
