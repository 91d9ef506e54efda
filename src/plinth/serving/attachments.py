"""Attachments of served model ids: what knowledge base, guardrail policy and system prompt
apply when a request names a model (``plinth models attach``, ``/api/v1/models/{id}/attachments``).

Reads are cached for a few seconds so a request costs no store round trip; a change made
through this process is seen at once, one made by another server process of the same team
store within ``ttl_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from plinth.domain.serving import Attachments
from plinth.errors import ErrorCode, PlinthError
from plinth.serving.pipeline import ChatStage
from plinth.store import MetadataStore

_MAX_SYSTEM_PROMPT = 32_000


class AttachmentService:
    def __init__(
        self,
        store: MetadataStore,
        model_exists: Callable[[str], None],
        stages: Callable[[], list[ChatStage]],
        ttl_s: float = 5.0,
    ) -> None:
        self.store = store
        self._model_exists = model_exists
        self._stages = stages
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Attachments | None]] = {}
        self._lock = threading.Lock()

    def get(self, model_id: str) -> Attachments | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(model_id)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        value = self.store.get_attachments(model_id)
        with self._lock:
            self._cache[model_id] = (now, value)
        return value

    def show(self, model_id: str) -> Attachments:
        """What is attached to ``model_id``, read from the store (not the cache); the id is
        checked as :meth:`set` checks it (a catalog model, ``base:adapter`` or a registry id
        such as ``acme-faq@1``): PlinthError(MODEL_NOT_FOUND) when it names nothing."""
        self._model_exists(model_id)
        return self.store.get_attachments(model_id) or Attachments()

    def set(self, model_id: str, attachments: Attachments) -> Attachments:
        """Validate and store; fields left None are detached."""
        self._model_exists(model_id)
        if attachments.system_prompt is not None and len(attachments.system_prompt) > _MAX_SYSTEM_PROMPT:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"system_prompt has {len(attachments.system_prompt)} characters; at most {_MAX_SYSTEM_PROMPT} are allowed",
                param="system_prompt",
            )
        for stage in self._stages():
            stage.check_attachments(attachments)
        stored = self.store.set_attachments(model_id, replace(attachments, updated_at=None))
        self.invalidate(model_id)
        return stored

    def update(self, model_id: str, **changes: str | None) -> Attachments:
        """Change some fields: a value sets it, an empty string detaches it, a missing key
        keeps it."""
        current = self.store.get_attachments(model_id) or Attachments()
        fields: dict[str, Any] = {k: (None if v == "" else v) for k, v in changes.items() if v is not None}
        return self.set(model_id, replace(current, **fields))

    def forget_model(self, model_name: str) -> None:
        """The model is gone: drop its attachments and those of its adapters."""
        self.store.delete_attachments(model_name, with_adapters=True)
        with self._lock:
            self._cache.clear()

    def invalidate(self, model_id: str | None = None) -> None:
        with self._lock:
            if model_id is None:
                self._cache.clear()
            else:
                self._cache.pop(model_id, None)
