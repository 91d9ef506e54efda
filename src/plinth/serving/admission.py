"""Bounded admission: a fixed number of running generations and a bounded FIFO queue.

Beyond the queue bound a request is refused at once with ``server_busy`` (HTTP 429) and a
``Retry-After`` estimated from recent service times, instead of piling up until clients
time out. A slot is handed directly to the next waiter on release, so the queue is fair.
Slots are released from worker threads through :meth:`release_threadsafe`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time

from plinth.errors import ErrorCode, PlinthError


class Admission:
    def __init__(self, name: str, max_running: int, max_queued: int, queue_timeout_s: float) -> None:
        self.name = name
        self.max_running = max_running
        self.max_queued = max_queued
        self.queue_timeout_s = queue_timeout_s
        self.running = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._service_time = 2.0  # seconds, exponentially weighted average
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def retry_after(self) -> int:
        per_slot = self._service_time * (self.queued + 1) / max(1, self.max_running)
        return max(1, min(60, math.ceil(per_slot)))

    async def acquire(self) -> float:
        """Wait for a slot; return the seconds spent waiting."""
        self._loop = asyncio.get_running_loop()
        if self.running < self.max_running and not self._waiters:
            self.running += 1
            return 0.0
        if len(self._waiters) >= self.max_queued:
            raise PlinthError(
                ErrorCode.SERVER_BUSY,
                f"model {self.name!r} is saturated: {self.running} requests running and {self.queued} queued "
                f"(limit {self.max_queued}); retry later",
                retry_after=self.retry_after(),
            )
        fut: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(fut)
        started = time.monotonic()
        try:
            # asyncio.timeout (not wait_for): on 3.11 wait_for can swallow a cancellation that
            # arrives in the same loop step as the slot hand-off.
            async with asyncio.timeout(self.queue_timeout_s):
                await asyncio.shield(fut)
        except TimeoutError:
            if fut.done() and not fut.cancelled():
                self._release()  # the slot arrived just as we gave up: pass it on
            else:
                fut.cancel()
                self._discard(fut)
            raise PlinthError(
                ErrorCode.SERVER_BUSY,
                f"model {self.name!r}: no generation slot within {self.queue_timeout_s:.0f} s; retry later",
                retry_after=self.retry_after(),
            ) from None
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()
            else:
                fut.cancel()
                self._discard(fut)
            raise
        return time.monotonic() - started

    def _discard(self, fut: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(fut)

    def _release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes to this waiter; running is unchanged
                return
        self.running -= 1

    def release(self, service_seconds: float | None = None) -> None:
        if service_seconds is not None:
            self._service_time = 0.8 * self._service_time + 0.2 * max(0.01, service_seconds)
        self._release()

    def release_threadsafe(self, service_seconds: float | None = None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self.release, service_seconds)
