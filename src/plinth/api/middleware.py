"""Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer streams and hide disconnects)."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import MutableMapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plinth.errors import ErrorCode, PlinthError
from plinth.monitoring.metrics import Metrics


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413 in the documented error shape.

    A declared Content-Length over the limit is refused before reading; a chunked body is
    counted as it arrives and refused as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_error(send, path, PlinthError(ErrorCode.INVALID_REQUEST, "Content-Length is not a number"))
                    return
                if declared > self.max_bytes:
                    await _send_error(send, path, self._too_large(declared))
                    return
        if not any(name == b"content-length" for name, _ in scope.get("headers", [])) and scope.get("method") in (
            "POST",
            "PUT",
            "PATCH",
        ):
            # A chunked body: read it here (bounded) so it can be refused before the app sees it.
            chunks: list[bytes] = []
            received = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body = message.get("body", b"")
                received += len(body)
                if received > self.max_bytes:
                    await _send_error(send, path, self._too_large(received))
                    return
                chunks.append(body)
                if not message.get("more_body", False):
                    break
            replay: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

            async def replay_receive() -> Message:
                if replay:
                    return replay.pop()
                return await receive()

            await self.app(scope, replay_receive, send)
            return
        await self.app(scope, receive, send)

    def _too_large(self, size: int) -> PlinthError:
        return PlinthError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"request body of {size} bytes or more is over this server's limit of {self.max_bytes} bytes",
            details={"limit_bytes": self.max_bytes},
        )


async def _send_error(send: Send, path: str, err: PlinthError) -> None:
    from plinth.api.errors import is_openai_path

    body = json.dumps(err.to_openai() if is_openai_path(path) else err.to_canonical()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": err.http_status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class MetricsMiddleware:
    """Count requests by route template (not raw path: bounded label values) and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_template(scope)
            method = _method_label(scope.get("method", ""))
            self.metrics.http_requests.labels(route, method, str(status)).inc()
            self.metrics.http_latency.labels(route, method).observe(time.perf_counter() - started)


#: Methods counted under their own name; any other token a client sends is counted as "other",
#: so a client cannot mint label values (and series) with ``curl -X FOOBAR1``.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "other"


def _route_template(scope: MutableMapping[str, Any]) -> str:
    """The matched route's template (a fixed set), or one value for every path no route matched."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


#: a request id a client may choose: what tracing systems send (uuids, W3C/B3 ids, ``req_...``)
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
REQUEST_ID_HEADER = b"x-request-id"


class RequestIdMiddleware:
    """Every answer carries ``x-request-id``: the client's own (when it sent a well-formed one,
    up to 128 characters of ``[A-Za-z0-9._:-]``) or a new ``req_<32 hex>``. The id is in
    ``scope["state"]["request_id"]`` for the handlers and the log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((bytes(v).decode("latin-1") for k, v in scope.get("headers", []) if k == REQUEST_ID_HEADER), None)
        request_id = given if given is not None and _REQUEST_ID_RE.match(given) else f"req_{uuid.uuid4().hex}"
        scope.setdefault("state", {})["request_id"] = request_id
        encoded = request_id.encode("latin-1")

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID_HEADER]
                message = {**message, "headers": [*headers, (REQUEST_ID_HEADER, encoded)]}
            await send(message)

        await self.app(scope, receive, send_wrapper)
