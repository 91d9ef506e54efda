"""GGUF models on CPU through llama.cpp, with continuous batching and LoRA adapters.

The chat template comes from the GGUF (rendered by :class:`ChatTemplate`, sandboxed), so
prompt token counts are known before generation and the context window is enforced. The
generation itself runs in :class:`LlamaBatchEngine`: concurrent requests share one batch
per decode step (see :mod:`plinth.runtimes.llamacpp_engine`).
"""

from __future__ import annotations

import collections
import threading
from typing import Any

from plinth.errors import ErrorCode, PlinthError
from plinth.runtimes.base import InferenceRuntime, OutputConstraint, Prompt, RuntimeHealth
from plinth.runtimes.batching import EngineRuntimeMixin
from plinth.runtimes.llamacpp_engine import LlamaBatchEngine
from plinth.runtimes.text import ChatTemplate


class LlamaCppRuntime(EngineRuntimeMixin, InferenceRuntime):
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
        self._grammars: collections.OrderedDict[str, str] = collections.OrderedDict()  # compiled constraints, LRU
        self._grammars_lock = threading.Lock()
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

    _batch_engine = _eng

    def context_length(self) -> int | None:
        return self._engine.n_ctx_per_seq if self._engine is not None else None

    # -- prompts ---------------------------------------------------------------------------
    def chat_template_handles_tools(self) -> bool:
        return self._template.handles_tools if self._engine is not None else False

    def prepare_chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, prefill: str = "") -> Prompt:
        text = self._template.render(messages, add_generation_prompt=True, tools=tools) + prefill
        # The template writes the BOS token itself where the model wants one.
        ids = self._eng().tokenize(text, add_bos=False)
        return Prompt(text=text, token_ids=ids, n_tokens=len(ids), is_chat=True)

    def prepare_text(self, text: str) -> Prompt:
        eng = self._eng()
        ids = eng.tokenize(text, add_bos=eng.add_bos)
        return Prompt(text=text, token_ids=ids, n_tokens=len(ids), is_chat=False)

    def count_tokens(self, text: str) -> int | None:
        return len(self._eng().tokenize(text, add_bos=False)) if text else 0

    def vocab_size(self) -> int | None:
        return int(self._eng().n_vocab)

    def check_constraint(self, constraint: OutputConstraint) -> None:
        """Compile the constraint into a GBNF grammar (cached by schema)."""
        key = constraint.key()
        with self._grammars_lock:
            gbnf = self._grammars.get(key)
            if gbnf is not None:
                self._grammars.move_to_end(key)
        if gbnf is None:
            gbnf = self._eng().compile_constraint(constraint)
            with self._grammars_lock:
                self._grammars[key] = gbnf
                while len(self._grammars) > 64:
                    self._grammars.popitem(last=False)
        constraint.compiled = gbnf

    def loaded_adapters(self) -> list[str]:
        return self._engine.loaded_adapters() if self._engine is not None else []

    def stats(self) -> dict[str, Any]:
        return self._engine_stats(self._engine)

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
