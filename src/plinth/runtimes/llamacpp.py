"""GGUF models on CPU through llama.cpp, with continuous batching and LoRA adapters.

The chat template comes from the GGUF (rendered by :class:`ChatTemplate`, sandboxed), so
prompt token counts are known before generation and the context window is enforced. The
generation itself runs in :class:`LlamaBatchEngine`: concurrent requests share one batch
per decode step (see :mod:`plinth.runtimes.llamacpp_engine`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from plinth.errors import ErrorCode, PlinthError
from plinth.runtimes.base import AdapterRef, Delta, InferenceRuntime, Prompt, RuntimeHealth, SamplingParams
from plinth.runtimes.llamacpp_engine import AdapterSpec, LlamaBatchEngine
from plinth.runtimes.text import ChatTemplate


class LlamaCppRuntime(InferenceRuntime):
    name = "llamacpp"
    adapter_format = "gguf-lora"

    _engine: LlamaBatchEngine | None = None

    @property
    def max_concurrent(self) -> int:  # type: ignore[override]
        return self.options.max_batch_size

    def load(self) -> None:
        if self.path is None:
            raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"model {self.model.name!r} has no local file to load")
        n_ctx = self.options.context_length
        if self.model.context_length:
            n_ctx = min(n_ctx, self.model.context_length)
        self._engine = LlamaBatchEngine(
            self.path,
            n_ctx_per_seq=n_ctx,
            max_batch=self.options.max_batch_size,
            threads=self.options.threads,
            prefill_chunk=self.options.prefill_chunk_tokens,
            adapter_budget_bytes=self.options.adapter_cache_bytes,
            extra_buffers=self.options.llamacpp_extra_buffers,
        )
        params = self.model.parameters or {}
        self._template = ChatTemplate(
            self.model.chat_template,
            bos_token=str(params.get("bos_token") or ""),
            eos_token=str(params.get("eos_token") or ""),
        )

    def _eng(self) -> LlamaBatchEngine:
        if self._engine is None:
            raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"model {self.model.name!r} is not loaded")
        return self._engine

    def context_length(self) -> int | None:
        return self._engine.n_ctx_per_seq if self._engine is not None else None

    # -- prompts ---------------------------------------------------------------------------
    def prepare_chat(self, messages: list[dict[str, Any]]) -> Prompt:
        text = self._template.render(messages, add_generation_prompt=True)
        # The template writes the BOS token itself where the model wants one.
        ids = self._eng().tokenize(text, add_bos=False)
        return Prompt(text=text, token_ids=ids, n_tokens=len(ids), is_chat=True)

    def prepare_text(self, text: str) -> Prompt:
        eng = self._eng()
        ids = eng.tokenize(text, add_bos=eng.add_bos)
        return Prompt(text=text, token_ids=ids, n_tokens=len(ids), is_chat=False)

    def count_tokens(self, text: str) -> int | None:
        return len(self._eng().tokenize(text, add_bos=False)) if text else 0

    # -- generation ------------------------------------------------------------------------
    def generate(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event, adapter: AdapterRef | None = None
    ) -> Iterator[Delta]:
        assert prompt.token_ids is not None
        if not prompt.token_ids:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "the prompt is empty after tokenisation", param="prompt")
        eng = self._eng()
        spec = AdapterSpec(adapter.key, adapter.path, adapter.size_bytes, adapter.scale) if adapter else None
        out = eng.submit(prompt.token_ids, params, cancel, spec)
        while True:
            try:
                item = out.get(timeout=1.0)
            except queue.Empty:
                if not eng.alive():
                    raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, "the llama.cpp engine stopped") from None
                continue
            if isinstance(item, BaseException):
                raise item
            yield item
            if item.finish_reason:
                return

    def submit_stream(
        self,
        prompt: Prompt,
        params: SamplingParams,
        cancel: threading.Event,
        adapter: AdapterRef | None,
        sink: Any,
    ) -> None:
        """Like generate, without a thread per request: the engine thread ``put``s each
        delta (the last has finish_reason) or an exception into ``sink``."""
        assert prompt.token_ids is not None
        if not prompt.token_ids:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "the prompt is empty after tokenisation", param="prompt")
        spec = AdapterSpec(adapter.key, adapter.path, adapter.size_bytes, adapter.scale) if adapter else None
        self._eng().submit(prompt.token_ids, params, cancel, spec, sink=sink)

    def loaded_adapters(self) -> list[str]:
        return self._engine.loaded_adapters() if self._engine is not None else []

    def stats(self) -> dict[str, Any]:
        if self._engine is None:
            return {}
        e = self._engine
        return {"running": e.running, "waiting": e.waiting, "loaded_adapters": e.loaded_adapters(), **dict(e.stats)}

    def health(self) -> RuntimeHealth:
        if self._engine is None:
            return RuntimeHealth(ok=False, detail="not loaded")
        e = self._engine
        return RuntimeHealth(
            ok=e.alive(),
            detail="" if e.alive() else "engine thread stopped",
            info={"n_ctx": e.n_ctx_per_seq, "kv_cells": e.kv_cells, "max_batch": e.max_batch, "threads": self.options.threads},
        )

    def unload(self) -> None:
        eng, self._engine = self._engine, None
        if eng is not None:
            eng.close()
