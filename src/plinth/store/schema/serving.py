"""Tables of the serving area: what is attached to a served model id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plinth.store.schema.base import Base, Scoped, project_column


class AttachmentRow(Scoped, Base):
    """Attachments of one model id (:class:`plinth.domain.serving.Attachments`).

    ``model_id`` is a model name or ``base:adapter``; it has no foreign key because it can
    name an adapter. The catalog deletes a model's attachments when it removes the model.
    """

    __tablename__ = "model_attachments"

    project: Mapped[str] = project_column(primary_key=True)
    model_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    knowledge_base: Mapped[str | None] = mapped_column(String(160))
    guardrail_policy: Mapped[str | None] = mapped_column(String(160))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]
