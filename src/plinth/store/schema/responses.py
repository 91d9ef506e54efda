"""Tables of the responses area (revision 0015): answers of ``/v1/responses`` stored for
``previous_response_id``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from plinth.store.schema.base import Base, Scoped, project_column


class ResponseRow(Scoped, Base):
    """One stored response (:class:`plinth.domain.responses.StoredResponse`)."""

    __tablename__ = "responses"
    __table_args__ = (Index("ix_responses_project_created_at", "project", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project: Mapped[str] = project_column()
    created_at: Mapped[datetime]
    model: Mapped[str] = mapped_column(String(300))
    previous_response_id: Mapped[str | None] = mapped_column(String(40))
    #: the response object as sent
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: the conversation the model saw: earlier items, then this request's input
    input_items: Mapped[list[Any]] = mapped_column(JSON)
