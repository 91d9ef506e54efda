"""The audit log: every management action with who, what, when, and before/after.

Services record their own actions with the state before and after (deployments, keys); the
API's auth middleware records every other mutating management call (method, route, status)
unless a service already wrote a detailed entry for it. Entries are never updated or deleted
through plinth.
"""

from __future__ import annotations

import builtins
import getpass
import logging
import socket
from typing import Any

from plinth.auth.context import current_call
from plinth.domain.auth import AuditEntry
from plinth.domain.projects import SERVER, system_scope
from plinth.store import MetadataStore

log = logging.getLogger("plinth.audit")


def cli_actor() -> str:
    """How the audit log names a person using the CLI on this machine."""
    try:
        user = getpass.getuser()
    except Exception:  # pragma: no cover - no user name in this environment
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


class AuditLog:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def record(
        self,
        actor: str,
        action: str,
        target_type: str,
        target: str,
        *,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
        project: str | None = None,
    ) -> AuditEntry:
        """``project``: whose log the entry goes to (default: the project of the call; ``*``:
        the server's own log, for users and projects)."""
        call = current_call.get()
        extra = dict(details or {})
        if call is not None:
            call.audited = True
            extra.setdefault("request", f"{call.method} {call.path}")
            if call.client:
                extra.setdefault("client", call.client)
        entry = AuditEntry(
            actor=actor, action=action, target_type=target_type, target=target, before=before, after=after, details=extra, project=project
        )
        if project is None:
            entry = self.store.add_audit(entry)
        else:
            with system_scope():  # another project's log than the call's (or the server's)
                entry = self.store.add_audit(entry)
        log.info("audit: %s %s %s %s", actor, action, target_type, target)
        return entry

    def list(self, *, server: bool = False, **filters: Any) -> builtins.list[AuditEntry]:
        """Newest first; ``filters`` as :meth:`plinth.store.base_auth.AuthStore.list_audit` takes them.
        ``server``: the server's own log (users, projects) instead of the call's project's."""
        if server:
            with system_scope():
                return self.store.list_audit(project=SERVER, **filters)
        return self.store.list_audit(**filters)
