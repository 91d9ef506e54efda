"""Loaded models, their admission queues, and the bridge from runtime threads to asyncio.

:class:`ModelManager` loads a model on first use (one load at a time per model), keeps it
loaded, and gives each loaded model an :class:`Admission` queue. :func:`stream_deltas`
runs a runtime's blocking ``generate`` on a worker thread and yields its deltas to the
event loop; closing the async iterator (a client went away, a stop sequence matched) sets
the cancel event, and the runtime stops between two tokens.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from plinth.config import Settings
from plinth.domain import ModelRecord
from plinth.domain.projects import in_context
from plinth.errors import ErrorCode, PlinthError
from plinth.monitoring.metrics import Metrics
from plinth.outbound import Outbound
from plinth.runtimes import AdapterRef, Delta, InferenceRuntime, Prompt, RuntimeOptions, SamplingParams, load_runtime_class
from plinth.serving.admission import Admission

log = logging.getLogger("plinth.serving")


@dataclass
class LoadedModel:
    record: ModelRecord
    runtime: InferenceRuntime
    admission: Admission
    loaded_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0


@dataclass(frozen=True)
class Resolved:
    """What a requested model id resolved to: the loaded base, the adapter (if any), and
    the catalog id that serves it (``base`` or ``base:adapter``)."""

    lm: LoadedModel
    adapter: AdapterRef | None
    served_id: str


#: maps a requested model id to the catalog id that serves it (registry names such as
#: ``acme-faq@production``), or returns None when the id is not one of its names
IdResolver = Callable[[str], "str | None"]


class ModelManager:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        resolve: Callable[[str], ModelRecord],
        model_path: Callable[[ModelRecord], Path | None],
        adapter_ref: Callable[[str, str, str | None], AdapterRef] | None = None,
        id_resolvers: list[IdResolver] | None = None,
        outbound: Outbound | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._resolve = resolve
        self._model_path = model_path
        self._adapter_ref = adapter_ref
        self.id_resolvers: list[IdResolver] = list(id_resolvers or [])
        self._id_cache: dict[str, tuple[float, str]] = {}
        self._loaded: dict[str, LoadedModel] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="plinth-gen")
        self.options = RuntimeOptions(
            threads=settings.threads,
            context_length=settings.context_length,
            upstream_timeout_s=settings.upstream_timeout_s,
            max_batch_size=settings.max_batch_size,
            prefill_chunk_tokens=settings.prefill_chunk_tokens,
            adapter_cache_bytes=settings.adapter_cache_bytes,
            llamacpp_extra_buffers=settings.llamacpp_extra_buffers,
            torch_batching=settings.torch_batching,
            torch_dtype=settings.torch_dtype,
            torch_batch_invariant=settings.torch_batch_invariant,
            cache_dir=settings.home / "cache",
            outbound=outbound or Outbound.from_settings(settings),
        )

    def loaded(self) -> list[LoadedModel]:
        return list(self._loaded.values())

    def is_loaded(self, name: str) -> bool:
        return name in self._loaded

    def served_id(self, model_id: str) -> str:
        """The catalog id that serves ``model_id`` (a model, ``base:adapter``, or a name one of
        the id resolvers knows, such as a registry ``name@alias``). Cached for two seconds:
        moving an alias takes effect within that time in every server process."""
        if ":" in model_id or not self.id_resolvers:
            return model_id
        now = time.monotonic()
        hit = self._id_cache.get(model_id)
        if hit is not None and now - hit[0] < 2.0:
            return hit[1]
        served = model_id
        for resolver in self.id_resolvers:
            found = resolver(model_id)
            if found is not None:
                served = found
                break
        self._id_cache[model_id] = (now, served)
        return served

    def forget_ids(self) -> None:
        self._id_cache.clear()

    async def resolve(self, model_id: str) -> Resolved:
        """A model id is a model name, ``base:adapter``, or a name an id resolver maps to one
        of those; load the base, find the adapter."""
        loop = asyncio.get_running_loop()
        served = model_id
        if ":" not in model_id and self.id_resolvers and not self.is_loaded(model_id):
            served = await loop.run_in_executor(self.executor, in_context(lambda: self.served_id(model_id)))
        base, sep, adapter = served.partition(":")
        lm = await self.get(base)
        if not sep:
            return Resolved(lm, None, served)
        if self._adapter_ref is None or not adapter:
            raise PlinthError(ErrorCode.MODEL_NOT_FOUND, f"model {model_id!r} does not exist", param="model")
        adapter_ref = self._adapter_ref
        ref = await loop.run_in_executor(self.executor, in_context(lambda: adapter_ref(base, adapter, lm.runtime.adapter_format)))
        return Resolved(lm, ref, served)

    async def get(self, name: str) -> LoadedModel:
        lm = self._loaded.get(name)
        if lm is not None:
            return lm
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            lm = self._loaded.get(name)
            if lm is None:
                loop = asyncio.get_running_loop()
                lm = await loop.run_in_executor(self.executor, in_context(lambda: self.load_blocking(name)))
            return lm

    def load_blocking(self, name: str) -> LoadedModel:
        record = self._resolve(name)
        existing = self._loaded.get(record.name)
        if existing is not None:
            return existing
        cls = load_runtime_class(record.runtime)
        path = self._model_path(record)
        runtime = cls(record, path, self.options)
        started = time.monotonic()
        try:
            runtime.load()
        except PlinthError:
            self.metrics.model_loads.labels(record.runtime, "error").inc()
            raise
        except Exception as e:  # an engine failing in an unexpected way must not become a 500
            self.metrics.model_loads.labels(record.runtime, "error").inc()
            log.exception("loading model %s failed", record.name)
            raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"model {record.name!r} failed to load: {e}") from None
        elapsed = time.monotonic() - started
        self.metrics.model_loads.labels(record.runtime, "ok").inc()
        self.metrics.model_load_seconds.labels(record.runtime).observe(elapsed)
        max_running = runtime.max_concurrent
        if self.settings.max_concurrent_per_model is not None:
            max_running = min(max_running, self.settings.max_concurrent_per_model)
        admission = Admission(record.name, max_running, self.settings.max_queued_per_model, self.settings.queue_timeout_s)
        self.metrics.queue_depth.labels(record.name).set_function(lambda: admission.queued)
        self.metrics.running.labels(record.name).set_function(lambda: admission.running)
        lm = LoadedModel(record=record, runtime=runtime, admission=admission, load_seconds=elapsed)
        self._loaded[record.name] = lm
        log.info("loaded model %s with runtime %s in %.2f s", record.name, record.runtime, elapsed)
        return lm

    def stream(self, lm: LoadedModel, prompt: Prompt, params: SamplingParams, adapter: AdapterRef | None = None) -> AsyncGenerator[Delta]:
        """Generate on a worker thread; ``plinth_generating`` counts engines still running."""
        gauge = self.metrics.generating.labels(lm.record.name)
        return stream_deltas(
            lm.runtime, prompt, params, self.executor, adapter=adapter, on_thread_start=gauge.inc, on_thread_exit=gauge.dec
        )

    def unload(self, name: str) -> bool:
        lm = self._loaded.pop(name, None)
        if lm is None:
            return False
        try:
            lm.runtime.unload()
        finally:
            self.metrics.queue_depth.remove(name)
            self.metrics.running.remove(name)
        return True

    def close(self) -> None:
        for name in list(self._loaded):
            try:
                self.unload(name)
            except Exception:  # pragma: no cover - best effort at shutdown
                log.exception("unloading %s failed", name)
        self.executor.shutdown(wait=False, cancel_futures=True)


_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


async def stream_deltas(
    runtime: InferenceRuntime,
    prompt: Prompt,
    params: SamplingParams,
    executor: ThreadPoolExecutor,
    adapter: AdapterRef | None = None,
    on_thread_start: Callable[[], None] | None = None,
    on_thread_exit: Callable[[], None] | None = None,
) -> AsyncGenerator[Delta]:
    """Run ``runtime.generate`` on a worker thread; yield its deltas. Closing this iterator
    cancels the generation; ``on_thread_exit`` runs on the worker when the engine has stopped."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    cancel = threading.Event()

    def put(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: the server is shutting down
            cancel.set()

    def work() -> None:
        try:
            for delta in runtime.generate(prompt, params, cancel, adapter):
                put(delta)
                if cancel.is_set():
                    break
        except BaseException as e:  # delivered to the consumer, which maps it
            put(_Failure(e))
        finally:
            put(_END)
            if on_thread_exit is not None:
                on_thread_exit()

    if on_thread_start is not None:
        on_thread_start()
    submit_stream = getattr(runtime, "submit_stream", None)
    if submit_stream is not None:
        # A batching engine delivers from its own thread: no worker thread per request.
        class _Sink:
            def put(self, item: object) -> None:
                if isinstance(item, Delta) and item.finish_reason is None:
                    put(item)
                    return
                put(_Failure(item) if isinstance(item, BaseException) else item)  # the last item
                put(_END)
                if on_thread_exit is not None:
                    on_thread_exit()

        try:
            submit_stream(prompt, params, cancel, adapter, _Sink())
        except BaseException:
            if on_thread_exit is not None:
                on_thread_exit()
            raise
    else:
        executor.submit(in_context(work))
    try:
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                err = item.error
                if isinstance(err, PlinthError):
                    raise err
                log.error("runtime %s failed during generation", runtime.name, exc_info=err)
                raise PlinthError(ErrorCode.INTERNAL, f"generation failed in runtime {runtime.name!r}: {err}")
            assert isinstance(item, Delta)
            yield item
    finally:
        cancel.set()
