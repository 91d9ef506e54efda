"""A background writer for what every request leaves behind: its usage record, the
settlement of its token reservation, the key's last use.

Requests end on the event loop, which must not wait for the database; the writer takes the
items from a queue on its own thread and writes them in batches (one transaction each). When
the store is briefly unavailable a batch is kept and retried; after ``max_retries`` failures
in a row it is dropped with an error in the log. After each batch, ``on_written`` is told
which deployments got records, so the rollout watcher looks at data that is in the store.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import cast

from plinth.domain.auth import Reservation
from plinth.domain.deployments import UsageRecord
from plinth.domain.projects import DEFAULT_PROJECT, current_project, system_scope
from plinth.store import MetadataStore

log = logging.getLogger("plinth.usage")

_BATCH = 500
_PRUNE_EVERY_S = 3600.0


class UsageWriter:
    def __init__(
        self,
        store: MetadataStore,
        *,
        retention_days: int = 90,
        on_written: Callable[[set[tuple[str, str]]], None] | None = None,
        max_retries: int = 20,
    ) -> None:
        self.store = store
        self.retention_days = retention_days
        self.on_written = on_written
        self.max_retries = max_retries
        self._q: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=200_000)
        self._pending = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._last_prune = 0.0
        self.written = 0

    # -- producers (any thread) -----------------------------------------------------------------
    def usage(self, record: UsageRecord, settle: tuple[Reservation, int] | None = None) -> None:
        if record.project is None:  # written later, on another thread: name the request's project now
            record = dataclasses.replace(record, project=current_project())
        self._put("usage", (record, settle))

    def touch(self, key_id: str, at: datetime) -> None:
        self._put("touch", (key_id, at))

    def _put(self, kind: str, item: object) -> None:
        self._ensure_started()
        with self._cond:
            self._pending += 1
        try:
            self._q.put_nowait((kind, item))
        except queue.Full:
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()
            log.error("usage writer queue is full; a %s item was dropped", kind)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (True) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        self.flush(timeout)
        self._stop.set()
        self._q.put(("stop", None))
        self._thread.join(timeout)

    # -- the writer thread ---------------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="plinth-usage-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        with system_scope():  # records of every project; each record names its own
            self._loop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._q.get(timeout=1.0)
            except queue.Empty:
                self._maybe_prune()
                continue
            batch = [first]
            while len(batch) < _BATCH:
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            items = [b for b in batch if b[0] != "stop"]
            self._write(items)
            with self._cond:
                self._pending -= len(items)
                self._cond.notify_all()
            self._maybe_prune()

    def _write(self, items: list[tuple[str, object]]) -> None:
        records: list[UsageRecord] = []
        settlements: list[tuple[Reservation, int]] = []
        touches: dict[str, datetime] = {}
        for kind, item in items:
            if kind == "usage":
                record, settle = cast(tuple[UsageRecord, tuple[Reservation, int] | None], item)
                records.append(record)
                if settle is not None:
                    settlements.append(settle)
            elif kind == "touch":
                key_id, at = cast(tuple[str, datetime], item)
                touches[key_id] = max(at, touches.get(key_id, at))
        for attempt in range(self.max_retries):
            try:
                # Settlements first: a reservation held a moment too long only refuses early.
                self.store.settle_many(settlements)
                settlements = []
                self.store.add_usage(records)
                for key_id, at in touches.items():
                    self.store.touch_api_key(key_id, at)
                break
            except Exception as e:  # the store is down or locked: keep the batch and retry
                if attempt == self.max_retries - 1:
                    log.error("usage writer dropped %d records after %d failures: %s", len(records), self.max_retries, e)
                    return
                time.sleep(min(5.0, 0.05 * 2**attempt))
        self.written += len(records)
        deployments = {(r.project or DEFAULT_PROJECT, r.deployment) for r in records if r.deployment}
        if deployments and self.on_written is not None:
            try:
                self.on_written(deployments)
            except Exception:  # pragma: no cover - the watcher logs its own failures
                log.exception("usage writer callback failed")

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < _PRUNE_EVERY_S:
            return
        self._last_prune = now
        try:
            gone = self.store.prune_usage(datetime.now(UTC) - timedelta(days=self.retention_days))
            if gone:
                log.info("pruned %d usage and feedback records older than %d days", gone, self.retention_days)
        except Exception as e:
            log.warning("pruning usage records failed: %s", e)
