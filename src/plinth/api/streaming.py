"""Streaming responses that notice a client going away.

:class:`SSEResponse` sends an async iterator of SSE events while it listens for
``http.disconnect``; when the client leaves it cancels the producer at once (so generation
stops between two tokens) and always runs the ``on_close`` callbacks, even if the stream
never started. :func:`run_until_disconnect` does the same for a non-streaming answer.

A producer that fails mid-stream (anything but a client leaving) never truncates the stream
silently: the failure is logged with its traceback, counted in ``plinth_stream_errors_total``
(and ``plinth_errors_total``), the client gets one error event in the stream's own shape
(``error_event``: OpenAI's ``data: {"error": {...}}`` then ``data: [DONE]`` by default) and
the response ends cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from plinth.errors import ErrorCode, PlinthError

T = TypeVar("T")
log = logging.getLogger("plinth.api")


def openai_error_event(err: PlinthError) -> bytes:
    """An error inside an OpenAI stream: ``data: {"error": {...}}``, then ``data: [DONE]``."""
    return b"data: " + json.dumps(err.to_openai(), separators=(",", ":")).encode() + b"\n\ndata: [DONE]\n\n"


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class SSEResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        events: AsyncIterator[bytes],
        *,
        headers: dict[str, str] | None = None,
        on_close: Callable[[], None] | None = None,
        error_event: Callable[[PlinthError], bytes] = openai_error_event,
    ) -> None:
        super().__init__(content=None, status_code=200, headers=headers, media_type=self.media_type)
        # A stream has no length: drop the content-length Response computed for an empty body.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.events = events
        self.on_close = on_close
        self.error_event = error_event

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.raw_headers.append((b"cache-control", b"no-cache"))
        self.raw_headers.append((b"x-accel-buffering", b"no"))
        events = self.events

        async def pump() -> None:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            producer = events.__aiter__()
            while True:
                try:
                    chunk = await producer.__anext__()
                except StopAsyncIteration:
                    break
                except Exception as exc:  # the producer's failure (not CancelledError: a client leaving)
                    await send({"type": "http.response.body", "body": self._failed(scope, exc), "more_body": True})
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        pump_task = asyncio.ensure_future(pump())
        watch_task = asyncio.ensure_future(_wait_for_disconnect(receive))
        try:
            await asyncio.wait({pump_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump_task, watch_task):
                if not task.done():
                    task.cancel()
            for task in (pump_task, watch_task):
                with contextlib.suppress(asyncio.CancelledError, OSError, Exception):
                    await task
            with contextlib.suppress(Exception):
                await events.aclose()  # type: ignore[attr-defined]
            if self.on_close is not None:
                self.on_close()

    def _failed(self, scope: Scope, exc: Exception) -> bytes:
        """Log and count a producer's failure; returns the event that tells the client."""
        route = getattr(scope.get("route"), "path", None) or "<unmatched>"
        if isinstance(exc, PlinthError):
            err = exc
            log.warning("stream on %s ended by an error: %s", route, exc.message)
        else:
            log.error("stream on %s failed mid-way", route, exc_info=exc)
            err = PlinthError(ErrorCode.INTERNAL, "internal error while streaming; the server log has the details")
        services = getattr(getattr(scope.get("app"), "state", None), "services", None)
        if services is not None:
            services.metrics.stream_errors.labels(route).inc()
            services.metrics.errors.labels(err.code.value).inc()
        return self.error_event(err)


class ClientDisconnected(Exception):
    pass


async def run_until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work`` unless the client disconnects first, in which case cancel it."""
    work_task: asyncio.Future[Any] = asyncio.ensure_future(work)
    watch_task = asyncio.ensure_future(_wait_for_disconnect(request.receive))
    try:
        await asyncio.wait({work_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watch_task
    if not work_task.done():
        work_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work_task
        raise ClientDisconnected()
    return cast(T, work_task.result())
