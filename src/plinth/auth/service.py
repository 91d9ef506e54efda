"""API keys: create (shown once), list, update, revoke; authenticate a presented key; check
scopes and model patterns; reserve requests and tokens against a key's limits.

Keys are ``pk-<12 hex id>-<40 base62 secret>``. Only the sha256 of the secret is stored: a
secret of 238 random bits needs no slow hash (nobody can guess one), and authentication
stays one primary-key read, cached for ``cache_ttl_s``. A revoked key stops working at once
in the process that revoked it and within ``cache_ttl_s`` elsewhere; requests that reserve
(every ``/v1`` generation with a key) check revocation in the store itself, at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from plinth.auth.accounts import AccountService
from plinth.auth.audit import AuditLog
from plinth.domain.auth import (
    KEY_ID_RE,
    KEY_NAME_RE,
    KEY_RE,
    ApiKey,
    BudgetPeriod,
    KeyWindows,
    Limits,
    Principal,
    Reservation,
    Scope,
    effective_scopes,
)
from plinth.domain.projects import DEFAULT_PROJECT, current_project, system_scope
from plinth.errors import ErrorCode, PlinthError, not_found
from plinth.monitoring.metrics import Metrics
from plinth.store import MetadataStore

_ALPHABET = string.ascii_letters + string.digits
_SECRET_LEN = 40
MODEL_PATTERN_RE = re.compile(r"^[A-Za-z0-9._:@*?\[\]-]{1,256}$")
_MAX_PATTERNS = 64


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    out = set()
    for v in values:
        try:
            out.add(Scope(str(v).strip().lower()))
        except ValueError:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"unknown scope {v!r}; use {', '.join(s.value for s in Scope)}",
                param="scopes",
            ) from None
    if not out:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "a key needs at least one scope", param="scopes")
    return frozenset(out)


def check_patterns(patterns: Iterable[str]) -> tuple[str, ...]:
    out = tuple(str(p) for p in patterns)
    if len(out) > _MAX_PATTERNS:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"at most {_MAX_PATTERNS} model patterns per key", param="models")
    for p in out:
        if not MODEL_PATTERN_RE.match(p):
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"invalid model pattern {p!r}: use model ids or deployment names with * and ? wildcards",
                param="models",
            )
    return out


def make_limits(
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
    budget_tokens: int | None = None,
    budget_period: str | BudgetPeriod = BudgetPeriod.MONTH,
) -> Limits:
    for value, name in (
        (requests_per_minute, "requests_per_minute"),
        (tokens_per_minute, "tokens_per_minute"),
        (budget_tokens, "budget_tokens"),
    ):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1 or value > 10**15):
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"{name} must be a whole number from 1 to 10^15; got {value!r}", param=name)
    try:
        period = BudgetPeriod(budget_period)
    except ValueError:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"budget_period must be one of {', '.join(p.value for p in BudgetPeriod)}; got {budget_period!r}",
            param="budget_period",
        ) from None
    return Limits(
        requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute, budget_tokens=budget_tokens, budget_period=period
    )


class AuthService:
    def __init__(
        self,
        store: MetadataStore,
        metrics: Metrics,
        audit: AuditLog,
        *,
        enabled: bool,
        cache_ttl_s: float = 2.0,
        on_used: Callable[[str, datetime], None] | None = None,
        accounts: AccountService | None = None,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.metrics = metrics
        self.audit = audit
        self.enabled = enabled
        self.cache_ttl_s = cache_ttl_s
        self.on_used = on_used
        self._cache: dict[str, tuple[float, ApiKey, str]] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    # -- keys ---------------------------------------------------------------------------------
    def create_key(
        self,
        name: str,
        *,
        scopes: Iterable[str | Scope],
        models: Iterable[str] = (),
        limits: Limits | None = None,
        expires_at: datetime | None = None,
        actor: str,
        principal: Principal | None = None,
        user: str | None = None,
        project: str | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and the key itself (``pk-...``), which is never shown again.

        ``principal`` (the caller, None for the local operator's CLI) bounds it: the key gets
        no scope the caller does not hold, acts for the caller's user in the caller's project;
        only a server admin may name another ``user`` or ``project``."""
        if not KEY_NAME_RE.match(name or "") or name == "self":
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"invalid key name {name!r}: use 1-128 letters, digits, '.', '_', '@' or '-', starting with a letter or digit",
                param="name",
            )
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise PlinthError(ErrorCode.INVALID_REQUEST, "expires_at must be in the future", param="expires_at")
        wanted = parse_scopes(s.value if isinstance(s, Scope) else s for s in scopes)
        if principal is not None:
            self._check_grant(principal, wanted)
            elsewhere = (user is not None and user != principal.user) or (project is not None and project != principal.project)
            if elsewhere and not principal.server_admin:
                raise PermissionDeniedError("only a server admin may make a key for another user or project")
            user = user if user is not None else principal.user
            project = project if project is not None else principal.project
        if user is not None and self.accounts is not None:
            target = project or current_project()
            found = self.accounts.user(user)
            if found is None:
                raise not_found("user", user)
            if not found.is_admin and self.accounts.role(user, target) is None:
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"user {user!r} is not a member of project {target!r}", param="user")
        key = ApiKey(
            id=secrets.token_hex(6),
            name=name,
            scopes=wanted,
            models=check_patterns(models),
            limits=limits or Limits(),
            created_by=actor,
            expires_at=expires_at,
            project=project,
            user=user,
        )
        secret = "".join(secrets.choice(_ALPHABET) for _ in range(_SECRET_LEN))
        if project is not None and project != current_project():
            with system_scope():  # a server admin making a key in another project
                stored = self.store.create_api_key(key, _hash(secret))
        else:
            stored = self.store.create_api_key(key, _hash(secret))
        self.audit.record(actor, "key.create", "api_key", stored.id, after=stored.public_dict(), project=stored.project)
        return stored, f"pk-{stored.id}-{secret}"

    def list_keys(self, *, include_revoked: bool = False) -> list[ApiKey]:
        return self.store.list_api_keys(include_revoked=include_revoked)

    def get_key(self, ref: str) -> ApiKey:
        """A key by id (or ``pk-<id>-`` prefix) or by name."""
        ref = ref.strip()
        m = re.match(r"^pk-([0-9a-f]{12})-?", ref)
        key_id = m.group(1) if m else ref
        if KEY_ID_RE.match(key_id):
            found = self.store.find_api_key(key_id)
            if found is not None:
                return found[0]
        by_name = self.store.find_api_key_by_name(ref)
        if by_name is None:
            raise not_found("API key", ref)
        return by_name

    def update_key(
        self,
        ref: str,
        *,
        actor: str,
        scopes: Iterable[str] | None = None,
        models: Iterable[str] | None = None,
        limits: Limits | None = None,
        expires_at: datetime | None = None,
        principal: Principal | None = None,
    ) -> ApiKey:
        key = self.get_key(ref)
        self._check_not_itself(principal, key, "change")
        changes: dict[str, Any] = {}
        if scopes is not None:
            changes["scopes"] = parse_scopes(scopes)
            if principal is not None:
                self._check_grant(principal, changes["scopes"])
        if models is not None:
            changes["models"] = check_patterns(models)
        if limits is not None:
            changes["limits"] = limits
        if expires_at is not None:
            changes["expires_at"] = expires_at
        if not changes:
            return key
        updated = self.store.update_api_key(key.id, changes)
        self._forget(key.id)
        self.audit.record(actor, "key.update", "api_key", key.id, before=key.public_dict(), after=updated.public_dict())
        return updated

    def revoke_key(self, ref: str, *, actor: str, principal: Principal | None = None) -> ApiKey:
        key = self.get_key(ref)
        self._check_not_itself(principal, key, "revoke")
        if key.revoked_at is not None:
            return key
        revoked = self.store.update_api_key(key.id, {"revoked_at": datetime.now(UTC)})
        self._forget(key.id)
        self.audit.record(actor, "key.revoke", "api_key", key.id, before=key.public_dict(), after=revoked.public_dict())
        return revoked

    def _check_grant(self, principal: Principal, wanted: frozenset[Scope]) -> None:
        """No key gets a scope its maker does not hold (``admin`` implies every scope)."""
        missing = effective_scopes(wanted) - principal.scopes()
        if missing:
            self.metrics.auth_failures.labels("scope").inc()
            raise PermissionDeniedError(
                f"{principal.actor} may not grant the {', '.join(sorted(s.value for s in missing))} scope: it does not hold it",
                param="scopes",
            )

    @staticmethod
    def _check_not_itself(principal: Principal | None, key: ApiKey, what: str) -> None:
        """A key may read itself (``GET /api/v1/keys/self``) and nothing more."""
        if principal is not None and principal.key is not None and principal.key.id == key.id:
            raise PermissionDeniedError(f"an API key may not {what} itself; ask an admin of the project")

    def windows(self, ref: str) -> tuple[ApiKey, KeyWindows]:
        key = self.get_key(ref)
        return key, self.store.key_windows(key.id, now=datetime.now(UTC))

    # -- requests -------------------------------------------------------------------------------
    def authenticate(self, token: str | None) -> Principal:
        """The principal a presented key names; ``unauthenticated`` for a missing, malformed,
        unknown, revoked or expired key (the message never echoes the key)."""
        if not token:
            self.metrics.auth_failures.labels("missing").inc()
            raise PlinthError(
                ErrorCode.UNAUTHENTICATED,
                "an API key is required: send 'Authorization: Bearer pk-...' (create one with `plinth keys create`)",
            )
        m = KEY_RE.match(token.strip()[:200])
        if m is None:
            self.metrics.auth_failures.labels("malformed").inc()
            raise PlinthError(ErrorCode.UNAUTHENTICATED, "the API key is not valid")
        key_id, secret = m.groups()
        key, secret_hash = self._lookup(key_id)
        if key is None or not hmac.compare_digest(_hash(secret), secret_hash):
            self.metrics.auth_failures.labels("invalid").inc()
            raise PlinthError(ErrorCode.UNAUTHENTICATED, "the API key is not valid")
        now = datetime.now(UTC)
        if key.revoked_at is not None:
            self.metrics.auth_failures.labels("revoked").inc()
            raise PlinthError(ErrorCode.UNAUTHENTICATED, f"the API key {key.prefix}... has been revoked")
        if key.expires_at is not None and key.expires_at <= now:
            self.metrics.auth_failures.labels("expired").inc()
            raise PlinthError(ErrorCode.UNAUTHENTICATED, f"the API key {key.prefix}... has expired")
        self._used(key.id, now)
        project = key.project or DEFAULT_PROJECT
        if key.user is None or self.accounts is None:
            return Principal(actor=f"key:{key.name}", key=key, project=project)
        user = self.accounts.user(key.user)
        if user is None or user.disabled:
            self.metrics.auth_failures.labels("user").inc()
            raise PlinthError(ErrorCode.UNAUTHENTICATED, f"the API key {key.prefix}... belongs to a user who is gone or disabled")
        return Principal(
            actor=f"key:{key.name}",
            key=key,
            project=project,
            user=user.name,
            role=self.accounts.role(user.name, project),
            is_admin=user.is_admin,
        )

    def authorize(self, principal: Principal, scopes: tuple[Scope, ...], what: str) -> None:
        """``permission_denied`` unless the principal has one of ``scopes``."""
        if any(principal.allows(s) for s in scopes):
            return
        self.metrics.auth_failures.labels("scope").inc()
        have = ", ".join(sorted(s.value for s in principal.scopes())) or "none"
        who = f"the API key {principal.key.name!r}" if principal.key else principal.actor
        raise PermissionDeniedError(
            f"{who} may not {what} in project {principal.project!r}: it needs the "
            f"{' or '.join(s.value for s in scopes)} scope (it has {have})",
        )

    def check_model(self, principal: Principal | None, model_id: str) -> None:
        if principal is None or principal.allows_model(model_id):
            return
        self.metrics.auth_failures.labels("model").inc()
        assert principal.key is not None
        raise PermissionDeniedError(
            f"the API key {principal.key.name!r} may not use {model_id!r} (it may use {', '.join(principal.key.models)})",
            param="model",
        )

    def reserve(self, principal: Principal | None, *, requests: int, tokens: int) -> Reservation | None:
        """Count a request and its tokens against the key's limits and its project's budget
        (None when nobody is authenticated: authentication off)."""
        if principal is None or principal.anonymous:
            return None
        key_id = principal.key.id if principal.key is not None else None
        try:
            return self.store.reserve(key_id, requests=requests, tokens=tokens, now=datetime.now(UTC), project=principal.project)
        except PlinthError as e:
            if e.code is ErrorCode.RATE_LIMITED:
                self.metrics.rate_limited.labels(str(e.details.get("limit", ""))).inc()
            elif e.code is ErrorCode.UNAUTHENTICATED and key_id is not None:
                self._forget(key_id)
            raise

    # -- cache ----------------------------------------------------------------------------------
    def _lookup(self, key_id: str) -> tuple[ApiKey | None, str]:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key_id)
        if hit is not None and now - hit[0] < self.cache_ttl_s:
            return hit[1], hit[2]
        with system_scope():  # before the key is known, so is its project
            found = self.store.find_api_key(key_id)
        if found is None:
            return None, ""
        with self._lock:
            self._cache[key_id] = (now, found[0], found[1])
        return found

    def _forget(self, key_id: str) -> None:
        with self._lock:
            self._cache.pop(key_id, None)

    def _used(self, key_id: str, at: datetime) -> None:
        """Remember the key's last use (at most once a minute per key and process)."""
        if self.on_used is None:
            return
        now = time.monotonic()
        with self._lock:
            last = self._touched.get(key_id)
            if last is not None and now - last < 60:
                return
            self._touched[key_id] = now
        self.on_used(key_id, at)


class PermissionDeniedError(PlinthError):
    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(ErrorCode.PERMISSION_DENIED, message, param=param)
