"""GGUF models on CPU through llama.cpp (llama-cpp-python).

The chat template comes from the GGUF (rendered by :class:`ChatTemplate`, sandboxed), so
prompt token counts are known before generation and the context window can be enforced.
Generation drives llama.cpp token by token through ``Llama.generate`` and checks the cancel
event between tokens; end-of-generation tokens are the vocabulary's EOG tokens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import llama_cpp

from plinth.errors import ErrorCode, PlinthError
from plinth.runtimes.base import Delta, InferenceRuntime, Prompt, RuntimeHealth, SamplingParams
from plinth.runtimes.text import ChatTemplate, IncrementalDecoder


class LlamaCppRuntime(InferenceRuntime):
    name = "llamacpp"
    max_concurrent = 1  # one llama context; continuous batching arrives with the scheduler

    _llm: Any = None

    def load(self) -> None:
        if self.path is None:
            raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"model {self.model.name!r} has no local file to load")
        n_ctx = self.options.context_length
        if self.model.context_length:
            n_ctx = min(n_ctx, self.model.context_length)
        started = time.monotonic()
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(self.path),
                n_ctx=n_ctx,
                n_threads=self.options.threads,
                n_threads_batch=self.options.threads,
                n_batch=512,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as e:
            raise PlinthError(
                ErrorCode.RUNTIME_UNAVAILABLE, f"llama.cpp could not load model {self.model.name!r}: {e}"
            ) from None
        self.load_seconds = time.monotonic() - started
        params = self.model.parameters or {}
        self._template = ChatTemplate(
            self.model.chat_template,
            bos_token=str(params.get("bos_token") or ""),
            eos_token=str(params.get("eos_token") or ""),
        )
        self._vocab = self._llm._model.vocab
        self._lock = threading.Lock()

    def context_length(self) -> int | None:
        return int(self._llm.n_ctx()) if self._llm is not None else None

    # -- prompts ---------------------------------------------------------------------------
    def _tokenize(self, text: str, add_bos: bool) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def prepare_chat(self, messages: list[dict[str, Any]]) -> Prompt:
        text = self._template.render(messages, add_generation_prompt=True)
        # The template writes the BOS token itself where the model wants one.
        ids = self._tokenize(text, add_bos=False)
        return Prompt(text=text, token_ids=ids, n_tokens=len(ids), is_chat=True)

    def prepare_text(self, text: str) -> Prompt:
        ids = self._tokenize(text, add_bos=bool(self._llm._model.add_bos_token()))
        return Prompt(text=text, token_ids=ids, n_tokens=len(ids), is_chat=False)

    def count_tokens(self, text: str) -> int | None:
        return len(self._tokenize(text, add_bos=False)) if text else 0

    # -- generation ------------------------------------------------------------------------
    def generate(self, prompt: Prompt, params: SamplingParams, cancel: threading.Event) -> Iterator[Delta]:
        assert prompt.token_ids is not None
        if not prompt.token_ids:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "the prompt is empty after tokenisation", param="prompt")
        with self._lock:
            yield from self._generate_locked(prompt.token_ids, params, cancel)

    def _generate_locked(self, tokens: list[int], params: SamplingParams, cancel: threading.Event) -> Iterator[Delta]:
        llm = self._llm
        seed = params.seed if params.seed is not None else int.from_bytes(__import__("os").urandom(4), "little")
        llm.set_seed(seed & 0xFFFFFFFF)
        decoder = IncrementalDecoder()
        produced = 0
        pending_tokens = 0
        finish: str | None = None
        gen = llm.generate(
            tokens,
            top_k=0,
            top_p=params.top_p,
            min_p=0.0,
            typical_p=1.0,
            temp=params.temperature,
            repeat_penalty=1.0,
            frequency_penalty=params.frequency_penalty,
            presence_penalty=params.presence_penalty,
            reset=True,
        )
        try:
            for token in gen:
                if cancel.is_set():
                    finish = "cancelled"
                    break
                if llama_cpp.llama_token_is_eog(self._vocab, token):
                    finish = "stop"
                    break
                produced += 1
                pending_tokens += 1
                text = decoder.feed(llm.detokenize([token], special=False))
                if text:
                    yield Delta(text=text, n_tokens=pending_tokens)
                    pending_tokens = 0
                if produced >= params.max_tokens:
                    finish = "length"
                    break
        finally:
            gen.close()
        tail = decoder.flush()
        yield Delta(text=tail, n_tokens=pending_tokens, finish_reason=finish or "stop")

    def health(self) -> RuntimeHealth:
        if self._llm is None:
            return RuntimeHealth(ok=False, detail="not loaded")
        return RuntimeHealth(
            ok=True,
            info={"n_ctx": self.context_length(), "threads": self.options.threads, "path": str(self.path)},
        )

    def unload(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()
