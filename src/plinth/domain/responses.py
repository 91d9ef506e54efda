"""Stored answers of the Responses API (``/v1/responses``, no I/O).

A stored response is the response object as it was sent (``body``: OpenAI's ``Response``
shape, output items included) and the conversation the model saw (``input_items``: the
items of the responses it continued, their outputs, then this request's own input), so a
later request naming it as ``previous_response_id`` continues the conversation from one read.
Instructions are not part of ``input_items``: as in OpenAI's API they do not carry over.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: ``resp_`` and 32 hex digits (the request's id)
RESPONSE_ID_RE = re.compile(r"^resp_[0-9a-f]{32}$")


@dataclass(frozen=True)
class StoredResponse:
    id: str
    model: str  # as requested
    body: dict[str, Any]  # the response object as sent
    input_items: list[dict[str, Any]] = field(default_factory=list)
    previous_response_id: str | None = None
    created_at: datetime | None = None
    project: str | None = None  # None: the scope's
