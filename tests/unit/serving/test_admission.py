"""Admission: bounded running generations and a bounded FIFO queue, on a real event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

import pytest

from plinth.errors import ErrorCode, PlinthError
from plinth.serving.admission import Admission


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), timeout=20))


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)


def test_running_is_bounded_and_a_release_admits_the_next() -> None:
    async def main() -> None:
        adm = Admission("m", max_running=2, max_queued=4, queue_timeout_s=10)
        assert await adm.acquire() == 0.0
        assert await adm.acquire() == 0.0
        assert adm.running == 2
        third = asyncio.create_task(adm.acquire())
        await until(lambda: adm.queued == 1)
        await asyncio.sleep(0.02)
        assert not third.done(), "a third request must wait while two run"
        adm.release()
        waited = await third
        assert waited > 0.0
        assert adm.running == 2  # the slot passed on; it was not freed
        assert adm.queued == 0
        adm.release()
        adm.release()
        assert adm.running == 0

    run(main)


def test_waiters_are_served_in_fifo_order() -> None:
    async def main() -> None:
        adm = Admission("m", max_running=1, max_queued=10, queue_timeout_s=10)
        await adm.acquire()
        order: list[int] = []

        async def waiter(i: int) -> None:
            await adm.acquire()
            order.append(i)
            await asyncio.sleep(0.001)
            adm.release()

        tasks = []
        for i in range(6):
            tasks.append(asyncio.create_task(waiter(i)))
            await until(lambda i=i: adm.queued == i + 1)  # enqueue strictly in order
        adm.release()
        await asyncio.gather(*tasks)
        assert order == list(range(6))
        assert (adm.running, adm.queued) == (0, 0)

    run(main)


def test_a_newcomer_does_not_overtake_the_queue() -> None:
    async def main() -> None:
        adm = Admission("m", max_running=1, max_queued=10, queue_timeout_s=10)
        await adm.acquire()
        first = asyncio.create_task(adm.acquire())
        await until(lambda: adm.queued == 1)
        adm.release()  # hands the slot to `first` ...
        late = asyncio.create_task(adm.acquire())  # ... so this one must queue, not run
        await first
        await until(lambda: adm.queued == 1)
        assert not late.done()
        assert adm.running == 1
        adm.release()
        await late
        adm.release()
        assert (adm.running, adm.queued) == (0, 0)

    run(main)


def test_a_full_queue_answers_server_busy_at_once() -> None:
    async def main() -> None:
        adm = Admission("tiny-model", max_running=1, max_queued=2, queue_timeout_s=10)
        await adm.acquire()
        waiting = [asyncio.create_task(adm.acquire()) for _ in range(2)]
        await until(lambda: adm.queued == 2)
        started = time.monotonic()
        with pytest.raises(PlinthError) as info:
            await adm.acquire()
        # immediate, not after the 10 s queue timeout (half of it is a bound a busy machine keeps)
        assert time.monotonic() - started < 5.0, "refusal must be immediate"
        err = info.value
        assert err.code == ErrorCode.SERVER_BUSY
        assert err.http_status == 429
        assert err.retry_after is not None and err.retry_after >= 1
        assert "tiny-model" in err.message
        assert adm.queued == 2, "the refused request must not take a queue place"
        for _ in range(3):
            adm.release()
        await asyncio.gather(*waiting)
        assert (adm.running, adm.queued) == (0, 0)

    run(main)


def test_no_queue_at_all_refuses_when_running_is_full() -> None:
    async def main() -> None:
        adm = Admission("m", max_running=1, max_queued=0, queue_timeout_s=10)
        await adm.acquire()
        with pytest.raises(PlinthError) as info:
            await adm.acquire()
        assert info.value.code == ErrorCode.SERVER_BUSY
        adm.release()
        assert await adm.acquire() == 0.0

    run(main)


def test_retry_after_grows_with_the_queue_and_service_time_and_stays_bounded() -> None:
    async def main() -> None:
        adm = Admission("m", max_running=1, max_queued=100, queue_timeout_s=10)
        for _ in range(20):  # slow generations: about 5 s each
            await adm.acquire()
            adm.release(service_seconds=5.0)
        assert adm.running == 0
        empty = adm.retry_after()
        assert 4 <= empty <= 60
        await adm.acquire()
        waiting = [asyncio.create_task(adm.acquire()) for _ in range(3)]
        await until(lambda: adm.queued == 3)
        assert adm.retry_after() > empty
        for _ in range(4):
            adm.release(service_seconds=1000.0)
            await asyncio.sleep(0)
        await asyncio.gather(*waiting)
        assert adm.retry_after() == 60  # capped

    run(main)


def test_queue_timeout_answers_server_busy_and_frees_the_place() -> None:
    async def main() -> None:
        adm = Admission("m", max_running=1, max_queued=4, queue_timeout_s=0.1)
        await adm.acquire()
        started = time.monotonic()
        with pytest.raises(PlinthError) as info:
            await adm.acquire()
        waited = time.monotonic() - started
        assert waited >= 0.09  # the upper bound only tells "timed out" from "waited forever", even on a busy machine
        assert waited < 30.0
        assert info.value.code == ErrorCode.SERVER_BUSY
        assert info.value.retry_after is not None and info.value.retry_after >= 1
        assert adm.queued == 0
        assert adm.running == 1
        adm.release()
        assert adm.running == 0, "the timed-out waiter must not have been handed the slot"
        assert await adm.acquire() == 0.0

    run(main)


def test_a_cancelled_waiter_does_not_leak_a_slot() -> None:
    async def main() -> None:
        adm = Admission("m", max_running=1, max_queued=4, queue_timeout_s=10)
        await adm.acquire()
        waiter = asyncio.create_task(adm.acquire())
        await until(lambda: adm.queued == 1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert adm.queued == 0
        adm.release()
        assert adm.running == 0, "the slot must not go to the cancelled waiter"
        assert await adm.acquire() == 0.0
        adm.release()

    run(main)


def test_cancel_at_the_moment_of_handoff_never_loses_the_slot() -> None:
    """The slot is handed to A and A is cancelled in the same loop iteration: either A
    holds the slot (and releases it) or it passes on to B; nothing is lost either way."""

    async def main() -> None:
        adm = Admission("m", max_running=1, max_queued=4, queue_timeout_s=10)
        await adm.acquire()
        served: list[str] = []

        async def waiter(name: str) -> None:
            await adm.acquire()
            served.append(name)
            await asyncio.sleep(0.001)
            adm.release()

        a = asyncio.create_task(waiter("A"))
        await until(lambda: adm.queued == 1)
        b = asyncio.create_task(waiter("B"))
        await until(lambda: adm.queued == 2)
        adm.release()
        a.cancel()
        await asyncio.gather(a, b, return_exceptions=True)
        assert "B" in served
        assert (adm.running, adm.queued) == (0, 0)
        assert await adm.acquire() == 0.0

    run(main)


def test_release_threadsafe_from_a_worker_thread() -> None:
    async def main() -> None:
        adm = Admission("m", max_running=1, max_queued=4, queue_timeout_s=10)
        await adm.acquire()
        waiter = asyncio.create_task(adm.acquire())
        await until(lambda: adm.queued == 1)

        def worker() -> None:
            time.sleep(0.05)
            adm.release_threadsafe(service_seconds=0.5)

        t = threading.Thread(target=worker)
        t.start()
        waited = await asyncio.wait_for(waiter, timeout=5)
        t.join()
        assert waited >= 0.04
        assert adm.running == 1 and adm.queued == 0
        # the last holder releases from a thread too: the slot is freed on the loop
        threading.Thread(target=adm.release_threadsafe).start()
        await until(lambda: adm.running == 0)

    run(main)
