"""The auth area of the metadata store: API keys, their rate-limit and budget counters, and
the audit log."""

from __future__ import annotations

import abc
from datetime import datetime
from typing import Any

from plinth.domain.auth import ApiKey, AuditEntry, KeyWindows, Reservation


class AuthStore(abc.ABC):
    # -- keys -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_api_key(self, key: ApiKey, secret_hash: str) -> ApiKey:
        """``already_exists`` for a taken id or name."""

    @abc.abstractmethod
    def get_api_key(self, key_id: str) -> ApiKey:
        """``not_found`` when there is none (revoked keys are still found)."""

    @abc.abstractmethod
    def find_api_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key and its secret hash, for authentication."""

    @abc.abstractmethod
    def find_api_key_by_name(self, name: str) -> ApiKey | None: ...

    @abc.abstractmethod
    def list_api_keys(self, *, include_revoked: bool = False) -> list[ApiKey]: ...

    @abc.abstractmethod
    def update_api_key(self, key_id: str, changes: dict[str, Any]) -> ApiKey:
        """Change ``scopes``, ``models``, ``limits``, ``expires_at`` or ``revoked_at``."""

    @abc.abstractmethod
    def touch_api_key(self, key_id: str, at: datetime) -> None:
        """Record that the key was used at ``at``."""

    # -- limits ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def reserve(self, key_id: str | None, *, requests: int, tokens: int, now: datetime, project: str | None = None) -> Reservation:
        """Count ``requests`` and ``tokens`` against the key's minute window and budget period,
        atomically with the check against its limits (read in the same transaction): if any
        limit would be passed nothing is counted and ``rate_limited`` is raised with
        ``retry_after`` (the end of the window that is full). ``unauthenticated`` for a
        revoked or expired key. Exact under concurrent callers in any number of processes.
        With ``project``, the tokens count against that project's budget too (and only
        against it when ``key_id`` is None)."""

    @abc.abstractmethod
    def settle_many(self, items: list[tuple[Reservation, int]]) -> None:
        """For each (reservation, tokens really used): replace the reservation's tokens with
        the real number, in the windows the reservation charged; one transaction."""

    def settle(self, reservation: Reservation, *, tokens: int) -> None:
        self.settle_many([(reservation, tokens)])

    @abc.abstractmethod
    def key_windows(self, key_id: str, *, now: datetime) -> KeyWindows: ...

    # -- audit ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def add_audit(self, entry: AuditEntry) -> AuditEntry: ...

    @abc.abstractmethod
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
        """Newest first; ``before_id`` pages back."""
