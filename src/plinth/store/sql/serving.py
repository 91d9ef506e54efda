"""The serving area in SQL: attachments of served model ids."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, or_, select

from plinth.domain.serving import Attachments
from plinth.errors import ErrorCode, PlinthError
from plinth.store.schema.serving import AttachmentRow
from plinth.store.sql.common import RefusedValue, SqlBase, db_reason
from plinth.store.sql.engine import rowcount


class ServingSql(SqlBase):
    """:class:`plinth.store.base_serving.ServingStore` on SQL."""

    def get_attachments(self, model_id: str) -> Attachments | None:
        with self._session() as s:
            row = s.get(AttachmentRow, (self._project(), model_id))
            return None if row is None else _attachments(row)

    def set_attachments(self, model_id: str, attachments: Attachments) -> Attachments:
        now = datetime.now(UTC)
        try:
            with self._session(write=True) as s:
                row = s.get(AttachmentRow, (self._project(), model_id), with_for_update=True)
                if attachments.is_empty():
                    if row is not None:
                        s.delete(row)
                    return Attachments(updated_at=now)
                if row is None:
                    row = AttachmentRow(project=self._project(), model_id=model_id, updated_at=now)
                    s.add(row)
                row.knowledge_base = attachments.knowledge_base
                row.guardrail_policy = attachments.guardrail_policy
                row.system_prompt = attachments.system_prompt
                row.updated_at = now
                s.flush()
                return _attachments(row)
        except RefusedValue as e:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"attachments of {model_id!r} cannot be stored: {db_reason(e)}") from None

    def delete_attachments(self, model_id: str, *, with_adapters: bool = False) -> int:
        cond = AttachmentRow.model_id == model_id
        own = AttachmentRow.project == self._project()
        if with_adapters:
            # autoescape: a '_' in the model name is matched literally, not as a wildcard.
            cond = or_(cond, AttachmentRow.model_id.startswith(model_id + ":", autoescape=True))
        with self._session(write=True) as s:
            result = s.execute(delete(AttachmentRow).where(cond, own))
            return rowcount(result)

    def list_attachments(self) -> dict[str, Attachments]:
        with self._session() as s:
            return {r.model_id: _attachments(r) for r in s.scalars(select(AttachmentRow).where(self._visible(AttachmentRow)))}


def _attachments(row: AttachmentRow) -> Attachments:
    return Attachments(
        knowledge_base=row.knowledge_base,
        guardrail_policy=row.guardrail_policy,
        system_prompt=row.system_prompt,
        updated_at=row.updated_at,
    )
