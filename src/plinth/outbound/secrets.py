"""Named secrets for remote engines and embedders (ADR 0081).

The operator defines them in the settings (``PLINTH_SECRETS``, or ``secrets:`` in the config
file): a name and a value, and optionally the only hosts the value may be sent to. A remote
model or the remote embedder names one (``api_key_secret``); nothing else reads a secret, and
no environment variable is ever read because a request named it. Values are kept out of every
answer, error and audit entry (only names travel), and :meth:`SecretStore.redact` /
:class:`RedactSecrets` take them out of what is logged (an engine may echo a header back).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from plinth.errors import ErrorCode, PlinthError
from plinth.outbound.policy import normal_host

REDACTED = "[secret]"


@dataclass(frozen=True)
class Secret:
    name: str
    value: str
    hosts: tuple[str, ...] = ()  # empty: any host the outbound rules allow

    def allows(self, host: str) -> bool:
        if not self.hosts:
            return True
        h = normal_host(host)
        return any(h == p or (p.startswith("*.") and h.endswith(p[1:]) and len(h) > len(p) - 1) for p in self.hosts)


class SecretStore:
    """The operator's named secrets, looked up by name."""

    def __init__(self, secrets: Iterable[Secret] = ()) -> None:
        self._secrets = {s.name: s for s in secrets}

    @classmethod
    def from_settings(cls, settings: Any) -> SecretStore:
        entries: Mapping[str, Any] = getattr(settings, "secrets", None) or {}
        return cls(Secret(name, e.value.get_secret_value(), tuple(e.hosts)) for name, e in entries.items())

    def names(self) -> list[str]:
        return sorted(self._secrets)

    def get(self, name: str, *, host: str | None = None, param: str | None = None, what: str = "secret") -> Secret:
        """The secret ``name``, when it exists and may be sent to ``host``; else 400 naming it."""
        secret = self._secrets.get(name)
        if secret is None:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"unknown {what} {name!r}: secrets are defined by the operator in PLINTH_SECRETS (or secrets: in the config file)",
                param=param,
            )
        if host is not None and not secret.allows(host):
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"{what} {name!r} may only be sent to {', '.join(secret.hosts)}, not to {normal_host(host)}",
                param=param,
            )
        return secret

    def redact(self, text: str) -> str:
        """``text`` with every secret value replaced by ``[secret]``."""
        for s in self._secrets.values():
            if s.value and s.value in text:
                text = text.replace(s.value, REDACTED)
        return text


class RedactSecrets(logging.Filter):
    """A logging filter that takes secret values out of each record's message."""

    def __init__(self, store: SecretStore) -> None:
        super().__init__()
        self.store = store

    def filter(self, record: logging.LogRecord) -> bool:
        if self.store.names():
            message = record.getMessage()
            clean = self.store.redact(message)
            if clean != message:
                record.msg, record.args = clean, None
            if record.exc_info and record.exc_info[1] is not None:
                text = logging.Formatter().formatException(record.exc_info)
                clean_exc = self.store.redact(text)
                if clean_exc != text:  # the traceback names a secret: keep the redacted text only
                    record.exc_info, record.exc_text = None, clean_exc
        return True


def redact_logs(store: SecretStore, loggers: Iterable[logging.Logger] = ()) -> None:
    """Install :class:`RedactSecrets` on the handlers of the root logger and of ``loggers``."""
    f = RedactSecrets(store)
    for logger in (logging.getLogger(), *loggers):
        for handler in logger.handlers:
            handler.addFilter(f)
