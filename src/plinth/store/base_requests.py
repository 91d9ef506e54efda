"""The requests area of the metadata store (monitoring, issue 14): the request log.

Every entry belongs to a project. Reads see the call's project only (the store filters them,
ADR 0083); :meth:`RequestLogStore.add_request_logs` is called by the background writer in the
system scope with each entry naming its project.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from plinth.domain.requests import PromptSample, RequestLogEntry, RequestQuery, SignalRow


class RequestLogStore(abc.ABC):
    """Methods of this area; see :mod:`plinth.store.sql.requests`."""

    @abc.abstractmethod
    def add_request_logs(self, entries: list[RequestLogEntry]) -> None:
        """Store entries in one transaction; each goes to its ``project`` (None: the scope's)."""

    @abc.abstractmethod
    def list_request_logs(self, query: RequestQuery, *, limit: int = 50, with_embedding: bool = False) -> list[RequestLogEntry]:
        """Entries matching ``query``, newest first (by id), at most ``limit``."""

    @abc.abstractmethod
    def iter_request_logs(self, query: RequestQuery, *, batch: int = 500, with_embedding: bool = False) -> Iterator[RequestLogEntry]:
        """Every entry matching ``query``, newest first, read ``batch`` at a time (for exports)."""

    @abc.abstractmethod
    def get_request_log(self, response_id: str) -> RequestLogEntry | None:
        """The entry of a response id (with its embedding), or None."""

    @abc.abstractmethod
    def set_request_feedback(self, response_id: str, rating: int, *, project: str | None = None) -> int:
        """Record the last rating of a response; the number of entries changed (0: not logged
        yet, or not at all). ``project``: the entry's project, for the system scope."""

    @abc.abstractmethod
    def set_request_anomalies(self, scores: list[tuple[int, float, dict[str, Any] | None]]) -> int:
        """Set ``(entry id, anomaly score, details)`` on entries; the number changed."""

    @abc.abstractmethod
    def request_prompts(
        self,
        *,
        deployment: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
        revision: int | None = None,
        adapter: str | None = None,
        limit: int = 10_000,
        with_text: bool = True,
        with_embedding: bool = True,
        unscored_only: bool = False,
    ) -> list[PromptSample]:
        """The newest logged prompts of a deployment (None: requests made without one),
        newest first, for drift and anomaly scores."""

    @abc.abstractmethod
    def request_signals(
        self, *, deployment: str, since: datetime, until: datetime | None = None, revision: int | None = None, limit: int = 100_000
    ) -> list[SignalRow]:
        """The text-free columns of a deployment's entries in a window, newest first."""

    @abc.abstractmethod
    def prune_request_logs(self, *, before: datetime | None = None, max_bytes: int | None = None) -> int:
        """Delete entries older than ``before``, then the oldest until the entries of every
        project together hold at most ``max_bytes`` (``size_bytes`` summed); how many went."""

    @abc.abstractmethod
    def request_log_bytes(self) -> int:
        """The summed ``size_bytes`` of the entries the scope sees."""
