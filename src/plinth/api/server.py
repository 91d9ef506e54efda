"""Running the app under uvicorn, with a deadline on request headers (ADR 0065).

uvicorn's HTTP/1.1 protocol (h11) times out only a kept-alive connection that sends nothing
after an answer: a client that connects and sends nothing, or trickles a header line every
few seconds, holds its connection (and a file descriptor) for as long as it likes.
:class:`HeaderDeadlineProtocol` adds one deadline, ``PLINTH_HEADER_TIMEOUT_S``: from the moment
a connection is waiting for a request (when it opens, and after each answer) the request's
headers must be complete before it passes. When it passes, a client that sent part of a
request gets ``408`` in the canonical error shape, one that sent nothing is just closed, and
the connection is closed either way. The deadline is not extended by bytes arriving, so a
byte-a-second client is cut off like a silent one. A request whose headers arrived is never
affected (its body and a long streamed answer are the app's business).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from typing import Any

import h11
import uvicorn
from uvicorn.main import STARTUP_FAILURE
from uvicorn.protocols.http.h11_impl import H11Protocol

from plinth.config import Settings
from plinth.errors import ErrorCode, PlinthError
from plinth.outbound import SecretStore, redact_logs

log = logging.getLogger("plinth.api")

#: Idle time of a kept-alive connection after an answer (uvicorn's own timer), at most.
KEEP_ALIVE_S = 5.0


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's headers."""

    header_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    # -- the events that can change whether the connection waits for headers ---------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._sync_header_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._sync_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._sync_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    # -- the deadline ------------------------------------------------------------------------
    def _waiting_for_headers(self) -> bool:
        return self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE

    def _sync_header_deadline(self) -> None:
        if self.transport is None or self.transport.is_closing() or not self._waiting_for_headers():
            self._cancel_header_deadline()
        elif self._header_deadline is None:  # armed once per request: arriving bytes do not extend it
            self._header_deadline = self.loop.call_later(self.header_timeout_s, self._header_deadline_passed)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or not self._waiting_for_headers():
            return
        partial, _closed = self.conn.trailing_data
        if partial:
            log.debug("request headers from %s not complete after %.1f s: 408", self.client, self.header_timeout_s)
            self.transport.write(_timeout_response(self.header_timeout_s))
        self._unset_keepalive_if_required()
        self.transport.close()


def _timeout_response(timeout_s: float) -> bytes:
    err = PlinthError(
        ErrorCode.REQUEST_TIMEOUT,
        f"the request headers were not complete within {timeout_s:g} s (PLINTH_HEADER_TIMEOUT_S)",
    )
    body = json.dumps(err.to_canonical()).encode()
    head = f"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    return head.encode("ascii") + body


def protocol_for(settings: Settings) -> type[HeaderDeadlineProtocol]:
    """The protocol class with this server's header deadline."""
    return type("PlinthHTTPProtocol", (HeaderDeadlineProtocol,), {"header_timeout_s": float(settings.header_timeout_s)})


def forwarded_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's forwarded-header options (ADR 0082): X-Forwarded-For and X-Forwarded-Proto are
    believed only from ``trusted_proxies``. With none, they are ignored from every peer —
    uvicorn's own default would believe them from 127.0.0.1, so anything on the machine (or a
    proxy that passes the header through) could write the client address of the audit log."""
    if not settings.trusted_proxies:
        return {"proxy_headers": False, "forwarded_allow_ips": []}
    return {"proxy_headers": True, "forwarded_allow_ips": list(settings.trusted_proxies)}


def run(app: Any, settings: Settings) -> None:
    """Serve ``app`` on ``settings.host:port`` until interrupted (what ``plinth up`` runs)."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol_for(settings),
        log_level=settings.log_level,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=min(KEEP_ALIVE_S, settings.header_timeout_s),  # type: ignore[arg-type]  # annotated int; a float works (an asyncio timer)
        access_log=settings.log_level == "debug",
        **forwarded_options(settings),
    )
    # After uvicorn set up its loggers: no secret value reaches a log line (ADR 0081).
    redact_logs(SecretStore.from_settings(settings), [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")])
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:  # as uvicorn.run: a server that could not start exits with 3
        sys.exit(STARTUP_FAILURE)
