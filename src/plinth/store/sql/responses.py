"""The responses area of the metadata store in SQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from plinth.domain.responses import RESPONSE_ID_RE, StoredResponse
from plinth.errors import ErrorCode, PlinthError
from plinth.store.schema.responses import ResponseRow
from plinth.store.sql.common import SqlBase, json_or_invalid


class ResponsesSql(SqlBase):
    """:class:`plinth.store.base_responses.ResponsesStore` on SQL."""

    def add_response(self, response: StoredResponse) -> StoredResponse:
        json_or_invalid(response.body, "response", "body")
        json_or_invalid(response.input_items, "response input items", "input")
        try:
            with self._session(write=True) as s:
                row = ResponseRow(
                    id=response.id,
                    created_at=response.created_at or datetime.now(UTC),
                    model=response.model,
                    previous_response_id=response.previous_response_id,
                    body=dict(response.body),
                    input_items=list(response.input_items),
                )
                if response.project is not None:
                    row.project = response.project
                s.add(row)
                s.flush()
                return _response(row)
        except IntegrityError as e:  # pragma: no cover - ids are random
            raise PlinthError(ErrorCode.ALREADY_EXISTS, f"response {response.id!r} already exists") from e

    def get_response(self, response_id: str) -> StoredResponse | None:
        if not RESPONSE_ID_RE.match(response_id or ""):
            return None
        q = select(ResponseRow).where(self._visible(ResponseRow), ResponseRow.id == response_id)
        with self._session() as s:
            row = s.scalars(q).first()
            return None if row is None else _response(row)

    def delete_response(self, response_id: str) -> bool:
        if not RESPONSE_ID_RE.match(response_id or ""):
            return False
        with self._session(write=True) as s:
            gone = s.execute(delete(ResponseRow).where(ResponseRow.id == response_id, ResponseRow.project == self._project()))
            return bool(getattr(gone, "rowcount", 0))


def _response(row: ResponseRow) -> StoredResponse:
    return StoredResponse(
        id=row.id,
        model=row.model,
        body=dict(row.body or {}),
        input_items=list(row.input_items or []),
        previous_response_id=row.previous_response_id,
        created_at=row.created_at,
        project=row.project,
    )
