"""The responses area of the metadata store: answers of ``/v1/responses`` kept for
``previous_response_id`` and ``GET /v1/responses/{id}``.

Every stored response belongs to a project; reads see the call's project only (ADR 0083), so
another project's id reads as absent.
"""

from __future__ import annotations

import abc

from plinth.domain.responses import StoredResponse


class ResponsesStore(abc.ABC):
    """Methods of this area; see :mod:`plinth.store.sql.responses`."""

    @abc.abstractmethod
    def add_response(self, response: StoredResponse) -> StoredResponse:
        """Store a response (``created_at`` now when None); PlinthError(ALREADY_EXISTS) if
        its id is taken."""

    @abc.abstractmethod
    def get_response(self, response_id: str) -> StoredResponse | None:
        """The stored response of this id in the call's project, or None."""

    @abc.abstractmethod
    def delete_response(self, response_id: str) -> bool:
        """Delete the response of this id in the call's project; whether one went."""
