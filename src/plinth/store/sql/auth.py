"""The auth area in SQL: API keys, their limit windows (reserve and settle under a lock of the
key's row, so concurrent requests in any number of processes never overspend), the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from plinth.domain.auth import ApiKey, AuditEntry, BudgetPeriod, KeyWindows, Limits, Reservation, Scope, minute_bounds, period_bounds
from plinth.errors import ErrorCode, PlinthError, not_found
from plinth.store.schema.auth import ApiKeyRow, ApiKeyWindowRow, AuditRow
from plinth.store.schema.projects import ProjectRow, ProjectWindowRow
from plinth.store.sql.common import RefusedValue, SqlBase, db_reason, is_unique_violation, json_or_invalid

MINUTE = "minute"
BUDGET = "budget"
#: minute windows older than this are deleted when a key opens a new one
_KEEP_MINUTES = timedelta(hours=1)


class AuthSql(SqlBase):
    """:class:`plinth.store.base_auth.AuthStore` on SQL."""

    # -- keys -------------------------------------------------------------------------------------
    def create_api_key(self, key: ApiKey, secret_hash: str) -> ApiKey:
        row = ApiKeyRow(
            id=key.id,
            project=key.project,  # None: the scope's
            user=key.user,
            name=key.name,
            secret_hash=secret_hash,
            scopes=sorted(s.value for s in key.scopes),
            models=list(key.models),
            requests_per_minute=key.limits.requests_per_minute,
            tokens_per_minute=key.limits.tokens_per_minute,
            budget_tokens=key.limits.budget_tokens,
            budget_period=key.limits.budget_period.value,
            created_by=key.created_by[:200],
            created_at=key.created_at or datetime.now(UTC),
            expires_at=key.expires_at,
            revoked_at=None,
            last_used_at=None,
        )
        try:
            with self._session(write=True) as s:
                s.add(row)
                s.flush()
                return _key(row)
        except IntegrityError as e:
            if is_unique_violation(e):
                raise PlinthError(ErrorCode.ALREADY_EXISTS, f"an API key named {key.name!r} already exists", param="name") from None
            raise
        except RefusedValue as e:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"API key {key.name!r} cannot be stored: {db_reason(e)}") from None

    def get_api_key(self, key_id: str) -> ApiKey:
        with self._session() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None:
                raise not_found("API key", key_id)
            return _key(row)

    def find_api_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        with self._session() as s:
            row = s.get(ApiKeyRow, key_id)
            return None if row is None else (_key(row), row.secret_hash)

    def find_api_key_by_name(self, name: str) -> ApiKey | None:
        with self._session() as s:
            row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.name == name, self._visible(ApiKeyRow)))
            return None if row is None else _key(row)

    def list_api_keys(self, *, include_revoked: bool = False) -> list[ApiKey]:
        q = select(ApiKeyRow).where(self._visible(ApiKeyRow)).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        if not include_revoked:
            q = q.where(ApiKeyRow.revoked_at.is_(None))
        with self._session() as s:
            return [_key(r) for r in s.scalars(q)]

    def update_api_key(self, key_id: str, changes: dict[str, Any]) -> ApiKey:
        with self._session(write=True) as s:
            row = s.get(ApiKeyRow, key_id, with_for_update=True)
            if row is None:
                raise not_found("API key", key_id)
            for field, value in changes.items():
                if field == "scopes":
                    row.scopes = sorted(Scope(v).value for v in value)
                elif field == "models":
                    row.models = list(value)
                elif field == "limits":
                    row.requests_per_minute = value.requests_per_minute
                    row.tokens_per_minute = value.tokens_per_minute
                    row.budget_tokens = value.budget_tokens
                    row.budget_period = value.budget_period.value
                elif field in ("expires_at", "revoked_at"):
                    setattr(row, field, value)
                else:
                    raise ValueError(f"API key field {field!r} cannot be changed")
            s.flush()
            return _key(row)

    def touch_api_key(self, key_id: str, at: datetime) -> None:
        with self._session(write=True) as s:
            row = s.get(ApiKeyRow, key_id)
            if row is not None and (row.last_used_at is None or row.last_used_at < at):
                row.last_used_at = at

    # -- limits -----------------------------------------------------------------------------------
    def reserve(self, key_id: str | None, *, requests: int, tokens: int, now: datetime, project: str | None = None) -> Reservation:
        now = now.astimezone(UTC)
        with self._session(write=True) as s:
            # the project's budget first (its row lock orders every reservation of the project)
            p_start = self._reserve_project(s, project, requests, tokens, now) if project is not None else None
            if key_id is None:
                return Reservation(
                    key_id=None,
                    requests=requests,
                    tokens=tokens,
                    minute_start=None,
                    budget_start=None,
                    project=project,
                    project_budget_start=p_start,
                )
            # The key's row lock serialises every reservation and settlement of this key
            # (SQLite: the write transaction itself, BEGIN IMMEDIATE).
            row = s.get(ApiKeyRow, key_id, with_for_update=True)
            if row is None or row.revoked_at is not None:
                raise PlinthError(ErrorCode.UNAUTHENTICATED, "the API key has been revoked")
            if row.expires_at is not None and row.expires_at <= now:
                raise PlinthError(ErrorCode.UNAUTHENTICATED, "the API key has expired")
            limits = _limits(row)
            m_start, m_end = minute_bounds(now)
            minute = _window(s, key_id, MINUTE, m_start)
            budget = None
            b_start = b_end = None
            if limits.budget_tokens is not None:
                b_start, b_end = period_bounds(limits.budget_period, now)
                budget = _window(s, key_id, BUDGET, b_start)
            used_r = minute.requests if minute is not None else 0
            used_t = minute.tokens if minute is not None else 0
            if requests and limits.requests_per_minute is not None and used_r + requests > limits.requests_per_minute:
                raise _limited(
                    f"the API key's limit of {limits.requests_per_minute} requests per minute is reached",
                    "requests_per_minute",
                    m_end - now,
                    limits.requests_per_minute,
                    used_r,
                )
            if tokens and limits.tokens_per_minute is not None and used_t + tokens > limits.tokens_per_minute:
                raise _limited(
                    f"this request reserves {tokens} tokens (prompt + max_tokens) and the API key has "
                    f"{max(0, limits.tokens_per_minute - used_t)} of its {limits.tokens_per_minute} tokens per minute left",
                    "tokens_per_minute",
                    m_end - now,
                    limits.tokens_per_minute,
                    used_t,
                )
            if limits.budget_tokens is not None and b_end is not None:
                spent = budget.tokens if budget is not None else 0
                if (tokens and spent + tokens > limits.budget_tokens) or (requests and spent >= limits.budget_tokens):
                    raise _limited(
                        f"the API key's token budget of {limits.budget_tokens} per {limits.budget_period.value} has "
                        f"{max(0, limits.budget_tokens - spent)} left and this request reserves {tokens} (prompt + max_tokens)",
                        "budget",
                        b_end - now,
                        limits.budget_tokens,
                        spent,
                    )
            if minute is None:
                s.execute(
                    delete(ApiKeyWindowRow).where(
                        ApiKeyWindowRow.key_id == key_id,
                        ApiKeyWindowRow.kind == MINUTE,
                        ApiKeyWindowRow.window_start < m_start - _KEEP_MINUTES,
                    )
                )
                minute = ApiKeyWindowRow(key_id=key_id, kind=MINUTE, window_start=m_start, requests=0, tokens=0)
                s.add(minute)
            minute.requests += requests
            minute.tokens += tokens
            if b_start is not None:
                if budget is None:
                    budget = ApiKeyWindowRow(key_id=key_id, kind=BUDGET, window_start=b_start, requests=0, tokens=0)
                    s.add(budget)
                budget.requests += requests
                budget.tokens += tokens
            return Reservation(
                key_id=key_id,
                requests=requests,
                tokens=tokens,
                minute_start=m_start,
                budget_start=b_start,
                project=project if p_start is not None else None,
                project_budget_start=p_start,
            )

    @staticmethod
    def _reserve_project(s: Session, project: str, requests: int, tokens: int, now: datetime) -> datetime | None:
        """Count ``tokens`` against the project's budget; None when it has none."""
        row = s.get(ProjectRow, project, with_for_update=True)
        if row is None or row.budget_tokens is None:
            return None
        start, end = period_bounds(BudgetPeriod(row.budget_period), now)
        window = s.get(ProjectWindowRow, (project, start))
        spent = window.tokens if window is not None else 0
        if (tokens and spent + tokens > row.budget_tokens) or (requests and spent >= row.budget_tokens):
            raise _limited(
                f"project {project!r} has {max(0, row.budget_tokens - spent)} of its {row.budget_tokens} tokens per "
                f"{row.budget_period} left and this request reserves {tokens} (prompt + max_tokens)",
                "project_budget",
                end - now,
                row.budget_tokens,
                spent,
            )
        if window is None:
            window = ProjectWindowRow(project=project, window_start=start, tokens=0)
            s.add(window)
        window.tokens += tokens
        return start

    def settle_many(self, items: list[tuple[Reservation, int]]) -> None:
        if not items:
            return
        with self._session(write=True) as s:
            # one lock order: projects, then keys
            for reservation, tokens in sorted(items, key=lambda it: (it[0].project or "", it[0].key_id or "")):
                delta = int(tokens) - reservation.tokens
                if delta == 0:
                    continue
                p, p_start = reservation.project, reservation.project_budget_start
                if p is not None and p_start is not None and s.get(ProjectRow, p, with_for_update=True) is not None:
                    pw = s.get(ProjectWindowRow, (p, p_start))
                    if pw is not None:
                        pw.tokens = max(0, pw.tokens + delta)
                if reservation.key_id is None or s.get(ApiKeyRow, reservation.key_id, with_for_update=True) is None:
                    continue  # no key, or it was deleted
                for kind, start in ((MINUTE, reservation.minute_start), (BUDGET, reservation.budget_start)):
                    if start is None:
                        continue
                    w = _window(s, reservation.key_id, kind, start)
                    if w is not None:
                        w.tokens = max(0, w.tokens + delta)

    def key_windows(self, key_id: str, *, now: datetime) -> KeyWindows:
        now = now.astimezone(UTC)
        with self._session() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None:
                raise not_found("API key", key_id)
            limits = _limits(row)
            m_start, _ = minute_bounds(now)
            minute = _window(s, key_id, MINUTE, m_start)
            b_start = b_end = None
            spent = 0
            if limits.budget_tokens is not None:
                b_start, b_end = period_bounds(limits.budget_period, now)
                budget = _window(s, key_id, BUDGET, b_start)
                spent = budget.tokens if budget is not None else 0
            return KeyWindows(
                minute_start=m_start,
                minute_requests=minute.requests if minute is not None else 0,
                minute_tokens=minute.tokens if minute is not None else 0,
                budget_start=b_start,
                budget_end=b_end,
                budget_tokens_used=spent,
            )

    # -- audit ------------------------------------------------------------------------------------
    def add_audit(self, entry: AuditEntry) -> AuditEntry:
        for value, what in ((entry.before, "before"), (entry.after, "after"), (entry.details, "details")):
            json_or_invalid(value, f"audit {what}", what)
        row = AuditRow(
            project=entry.project,  # None: the scope's
            at=entry.at or datetime.now(UTC),
            actor=entry.actor[:200],
            action=entry.action[:100],
            target_type=entry.target_type[:64],
            target=entry.target[:300],
            before=entry.before,
            after=entry.after,
            details=dict(entry.details),
        )
        with self._session(write=True) as s:
            s.add(row)
            s.flush()
            return _audit(row)

    def list_audit(
        self,
        *,
        actor: str | None = None,
        target_type: str | None = None,
        target: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
        project: str | None = None,
    ) -> list[AuditEntry]:
        q = select(AuditRow).where(self._visible(AuditRow) if project is None else AuditRow.project == project)
        if actor is not None:
            q = q.where(AuditRow.actor == actor)
        if target_type is not None:
            q = q.where(AuditRow.target_type == target_type)
        if target is not None:
            q = q.where(AuditRow.target == target)
        if action is not None:
            q = q.where(AuditRow.action.startswith(action, autoescape=True))
        if since is not None:
            q = q.where(AuditRow.at >= since)
        if before_id is not None:
            q = q.where(AuditRow.id < before_id)
        q = q.order_by(AuditRow.id.desc()).limit(max(1, min(limit, 10_000)))
        with self._session() as s:
            return [_audit(r) for r in s.scalars(q)]


def _window(s: Session, key_id: str, kind: str, start: datetime) -> ApiKeyWindowRow | None:
    return s.get(ApiKeyWindowRow, (key_id, kind, start))


def _limited(message: str, limit: str, wait: timedelta, value: int, used: int) -> PlinthError:
    return PlinthError(
        ErrorCode.RATE_LIMITED,
        message,
        details={"limit": limit, "value": value, "used": used},
        retry_after=max(1.0, wait.total_seconds()),
    )


def _limits(row: ApiKeyRow) -> Limits:
    return Limits(
        requests_per_minute=row.requests_per_minute,
        tokens_per_minute=row.tokens_per_minute,
        budget_tokens=row.budget_tokens,
        budget_period=BudgetPeriod(row.budget_period),
    )


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        scopes=frozenset(Scope(v) for v in row.scopes or []),
        models=tuple(row.models or []),
        limits=_limits(row),
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        project=row.project,
        user=row.user,
    )


def _audit(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target_type=row.target_type,
        target=row.target,
        before=row.before,
        after=row.after,
        details=dict(row.details or {}),
        project=row.project,
    )
