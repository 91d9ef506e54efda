"""What the continuous-batching engines share: the engine thread and its request lifecycle.

A batching engine owns one model on one thread. Requests arrive from any thread through
:meth:`BatchEngine.submit` into an inbox; the engine thread drains it between steps, drops
requests cancelled while they waited, admits waiting requests while it has room, and runs
one step of the model for every admitted sequence. Each request gets its output through a
:class:`Sink`: text deltas, then exactly one final item — a :class:`Delta` with
``finish_reason``, or an exception. If the engine thread itself fails, every request it
holds gets that failure, so nobody waits forever.

Subclasses (``llamacpp_engine.LlamaBatchEngine``, ``torch_engine.TorchBatchEngine``)
implement admission (:meth:`_admit_one`), one model step (:meth:`_step`), releasing a
finished sequence's resources (:meth:`_release`) and freeing the model (:meth:`_free`).
"""

from __future__ import annotations

import abc
import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from plinth.errors import ErrorCode, PlinthError
from plinth.runtimes.base import Delta, SamplingParams, TokenLogprob

log = logging.getLogger("plinth.runtimes")

BASE = ""  # the adapter key of requests on the base model


@dataclass
class AdapterSpec:
    key: str  # e.g. "acme-faq"
    path: Path
    size_bytes: int
    scale: float = 1.0


class Sink(Protocol):
    def put(self, item: Delta | BaseException) -> None: ...


@dataclass
class Sequence:
    """One request inside an engine. Engines keep their own state in subclasses."""

    tokens: list[int]
    params: SamplingParams
    cancel: threading.Event
    out: Sink
    adapter: str = BASE
    adapter_spec: AdapterSpec | None = None
    n_past: int = 0  # prompt (and generated) tokens already in the KV cache
    generated: int = 0
    last_token: int = -1
    pending_tokens: int = 0  # tokens sampled since the last delta carried text
    pending_logprobs: list[TokenLogprob] = field(default_factory=list)  # their log-probabilities, when asked for
    enqueued_at: float = field(default_factory=time.monotonic)

    @property
    def prefilling(self) -> bool:
        return self.n_past < len(self.tokens)


class BatchEngine(abc.ABC):
    kind: str = "batch"

    def __init__(self, *, max_batch: int, n_ctx_per_seq: int, thread_name: str) -> None:
        self.max_batch = max_batch
        self.n_ctx_per_seq = n_ctx_per_seq
        self._inbox: queue.SimpleQueue[Sequence | None] = queue.SimpleQueue()
        self._pending: collections.deque[Sequence] = collections.deque()
        # steps, tokens, max_sequences_in_step, adapter_loads, adapter_evictions, ...
        self.stats: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def _start(self) -> None:
        self._thread.start()

    # -- public API (any thread) -----------------------------------------------------------
    def submit(
        self,
        tokens: list[int],
        params: SamplingParams,
        cancel: threading.Event,
        adapter: AdapterSpec | None = None,
        sink: Sink | None = None,
    ) -> Sink:
        """Queue a sequence; its deltas (and finally a delta with finish_reason, or an
        exception) are ``put`` into ``sink`` from the engine thread (default: a new queue)."""
        if not self._thread.is_alive():
            raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"the {self.kind} engine has stopped")
        if not tokens:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "the prompt is empty after tokenisation", param="prompt")
        need = len(tokens) + params.max_tokens
        if need > self.n_ctx_per_seq:
            raise PlinthError(
                ErrorCode.CONTEXT_LENGTH_EXCEEDED,
                f"this model's context window is {self.n_ctx_per_seq} tokens; the prompt has {len(tokens)} tokens "
                f"and max_tokens asks for {params.max_tokens} more",
            )
        seq = self._new_sequence(list(tokens), params, cancel, sink if sink is not None else queue.SimpleQueue())
        if adapter is not None:
            seq.adapter, seq.adapter_spec = adapter.key, adapter
        self._inbox.put(seq)
        return seq.out

    def _new_sequence(self, tokens: list[int], params: SamplingParams, cancel: threading.Event, out: Sink) -> Sequence:
        return Sequence(tokens=tokens, params=params, cancel=cancel, out=out)

    @property
    @abc.abstractmethod
    def running(self) -> int: ...

    @property
    def waiting(self) -> int:
        return len(self._pending)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        self._stop.set()
        self._inbox.put(None)
        self._thread.join(timeout=10)
        if self._thread.is_alive():  # pragma: no cover - a step that never returns
            log.error("%s engine thread did not stop; leaking its model", self.kind)
            return
        self._free()

    # -- engine thread ---------------------------------------------------------------------
    def _on_thread_start(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Runs first on the engine thread (a subclass may load its model there)."""

    def _run(self) -> None:
        failure: PlinthError | None = None
        try:
            self._on_thread_start()
            while not self._stop.is_set():
                self._drain_inbox(block=not self._has_active() and not self._pending)
                if self._stop.is_set():
                    break
                self._drop_cancelled()
                self._admit()
                if self._has_active():
                    self._step()
        except BaseException as e:  # the engine must never die silently: fail every request
            log.exception("%s engine failed", self.kind)
            failure = PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"the {self.kind} engine failed: {e}")
            raise
        finally:
            # Every request still here gets exactly one final item.
            err = failure or PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, "the model was unloaded")
            for seq in self._active_sequences() + list(self._pending):
                self._finish(seq, None, error=err)
            while True:
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item.out.put(err)

    def _drain_inbox(self, block: bool) -> None:
        try:
            item = self._inbox.get(timeout=0.5) if block else self._inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            if item is None:
                return
            self._pending.append(item)
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _drop_cancelled(self) -> None:
        if any(s.cancel.is_set() for s in self._pending):
            keep: collections.deque[Sequence] = collections.deque()
            for s in self._pending:
                if s.cancel.is_set():
                    s.out.put(Delta(text="", n_tokens=0, finish_reason="cancelled"))
                else:
                    keep.append(s)
            self._pending = keep
        for seq in [s for s in self._active_sequences() if s.cancel.is_set()]:
            self._finish(seq, "cancelled")

    def _admit(self) -> None:
        while self._pending and self._has_room():
            seq = self._pending.popleft()
            try:
                self._admit_one(seq)
            except PlinthError as e:
                seq.out.put(e)

    def _deliver(self, seq: Sequence, text: str | None, logprob: TokenLogprob | None = None) -> None:
        """One more token was sampled for ``seq``; send the text it completed, if any."""
        seq.generated += 1
        seq.pending_tokens += 1
        self.stats["tokens"] += 1
        if logprob is not None:
            seq.pending_logprobs.append(logprob)
        if text:
            seq.out.put(Delta(text=text, n_tokens=seq.pending_tokens, logprobs=self._take_logprobs(seq)))
            seq.pending_tokens = 0
        if seq.generated >= seq.params.max_tokens:
            self._finish(seq, "length")
        elif seq.cancel.is_set():
            self._finish(seq, "cancelled")

    def _finish(self, seq: Sequence, reason: str | None, error: BaseException | None = None) -> None:
        self._release(seq)
        if error is not None:
            seq.out.put(error)
        else:
            seq.out.put(Delta(text=self._tail(seq), n_tokens=seq.pending_tokens, finish_reason=reason, logprobs=self._take_logprobs(seq)))

    @staticmethod
    def _take_logprobs(seq: Sequence) -> list[TokenLogprob] | None:
        if not seq.pending_logprobs:
            return None
        taken, seq.pending_logprobs = seq.pending_logprobs, []
        return taken

    def _tail(self, seq: Sequence) -> str:
        """Text still held by the sequence's decoder when it ends."""
        return ""

    def _note_batch(self, decoding: int) -> None:
        self.stats["steps"] += 1
        if decoding > self.stats["max_sequences_in_step"]:
            self.stats["max_sequences_in_step"] = decoding

    # -- what each engine implements -------------------------------------------------------
    @abc.abstractmethod
    def _has_active(self) -> bool: ...

    @abc.abstractmethod
    def _active_sequences(self) -> list[Sequence]: ...

    @abc.abstractmethod
    def _has_room(self) -> bool: ...

    @abc.abstractmethod
    def _admit_one(self, seq: Sequence) -> None:
        """Take the sequence into the running batch (raise PlinthError to refuse it)."""

    @abc.abstractmethod
    def _step(self) -> None: ...

    @abc.abstractmethod
    def _release(self, seq: Sequence) -> None:
        """Free what the sequence holds (idempotent; also called for never-admitted ones)."""

    @abc.abstractmethod
    def _free(self) -> None:
        """Free the model after the thread has stopped."""

    def describe(self) -> dict[str, Any]:
        return {"max_batch": self.max_batch, "n_ctx": self.n_ctx_per_seq}


class EngineRuntimeMixin:
    """``generate``, ``submit_stream`` and the engine's counters for a runtime backed by a
    :class:`BatchEngine` (``self._batch_engine()`` returns it, loaded)."""

    def _batch_engine(self) -> BatchEngine:  # pragma: no cover - implemented by the runtime
        raise NotImplementedError

    @staticmethod
    def _spec(adapter: Any) -> AdapterSpec | None:
        return AdapterSpec(adapter.key, adapter.path, adapter.size_bytes, adapter.scale) if adapter else None

    @staticmethod
    def _tokens(prompt: Any) -> list[int]:
        if not prompt.token_ids:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "the prompt is empty after tokenisation", param="prompt")
        return list(prompt.token_ids)

    def generate(self, prompt: Any, params: SamplingParams, cancel: threading.Event, adapter: Any = None) -> Any:
        eng = self._batch_engine()
        out = eng.submit(self._tokens(prompt), params, cancel, self._spec(adapter))
        while True:
            try:
                item = out.get(timeout=1.0)  # type: ignore[attr-defined]
            except queue.Empty:
                if not eng.alive():
                    raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"the {eng.kind} engine stopped") from None
                continue
            if isinstance(item, BaseException):
                raise item
            yield item
            if item.finish_reason:
                return

    def submit_stream(self, prompt: Any, params: SamplingParams, cancel: threading.Event, adapter: Any, sink: Any) -> None:
        """Like generate, without a thread per request: the engine thread ``put``s each
        delta (the last has finish_reason) or an exception into ``sink``."""
        self._batch_engine().submit(self._tokens(prompt), params, cancel, self._spec(adapter), sink=sink)

    def _engine_stats(self, eng: BatchEngine | None) -> dict[str, Any]:
        if eng is None:
            return {}
        loaded = eng.loaded_adapters() if hasattr(eng, "loaded_adapters") else []
        return {"running": eng.running, "waiting": eng.waiting, "loaded_adapters": loaded, **dict(eng.stats)}
