"""Continuous batching and multi-LoRA in the llama.cpp engine, on the real embedded model.

Every comparison is against the same request served alone by the same engine: greedy
decoding (and seeded sampling) must give the same text whether a sequence shares its
decode steps with others or not.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import pytest

from plinth.domain import ModelFormat, ModelRecord
from plinth.formats import inspect_model, locate_embedded_gguf
from plinth.runtimes.base import AdapterRef, RuntimeOptions, SamplingParams
from plinth.runtimes.llamacpp import LlamaCppRuntime
from tests.support import batching_contract as contract
from tests.support.adapters import write_random_gguf_lora


def _runtime(**opts) -> LlamaCppRuntime:  # type: ignore[no-untyped-def]
    gguf = locate_embedded_gguf()
    info = inspect_model(gguf)
    record = ModelRecord(
        name="smollm2",
        format=ModelFormat.GGUF,
        runtime="llamacpp",
        digest=None,
        size_bytes=info.size_bytes,
        context_length=info.context_length,
        chat_template=info.chat_template,
        parameters=dict(info.parameters),
    )
    base = dict(threads=1, context_length=1024, max_batch_size=8, prefill_chunk_tokens=64)
    rt = LlamaCppRuntime(record, gguf, RuntimeOptions(**{**base, **opts}))
    rt.load()
    return rt


@pytest.fixture(scope="module")
def rt():  # type: ignore[no-untyped-def]
    runtime = _runtime()
    yield runtime
    runtime.unload()


@pytest.fixture(scope="module")
def adapters(tmp_path_factory) -> list[AdapterRef]:  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("loras")
    refs = []
    for i in range(3):
        f = write_random_gguf_lora(d / f"lora{i}.gguf", base_gguf=locate_embedded_gguf(), seed=i, scale=0.1)
        refs.append(AdapterRef(key=f"lora{i}", path=Path(f), size_bytes=Path(f).stat().st_size))
    return refs


def test_batched_greedy_answers_equal_answers_served_alone(rt) -> None:
    contract.batched_greedy_answers_equal_answers_served_alone(rt)


def test_seeded_sampling_inside_a_batch_is_reproducible(rt) -> None:
    contract.seeded_sampling_inside_a_batch_is_reproducible(rt)


def test_max_tokens_per_request_inside_a_batch(rt) -> None:
    contract.max_tokens_per_request_inside_a_batch(rt)


def test_cancelling_one_request_leaves_the_others_intact(rt) -> None:
    contract.cancelling_one_request_leaves_the_others_intact(rt)


def test_long_prompt_does_not_stall_running_streams(rt) -> None:
    contract.long_prompt_does_not_stall_running_streams(rt, chunk=64)


def test_each_request_gets_its_own_adapter_in_a_mixed_batch(rt, adapters) -> None:
    # llama.cpp applies a LoRA to a whole context: different adapters take turns by group
    contract.each_request_gets_its_own_adapter_in_a_mixed_batch(rt, adapters, mixed_stat="steps_with_adapter_groups")


def test_adapters_load_on_first_use_and_are_evicted_lru(adapters) -> None:
    contract.adapters_load_on_first_use_and_are_evicted_lru(_runtime, adapters)


def test_a_broken_adapter_fails_only_its_request(rt, tmp_path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    contract.a_broken_adapter_fails_only_its_request(rt, AdapterRef(key="bad", path=bad, size_bytes=68))


def test_a_full_batch_is_one_run_of_sequence_ids_after_ids_are_reused() -> None:
    # llama.cpp (one KV stream per sequence) computes one ubatch, a whole pass over the
    # weights, per run of consecutive sequence ids in the batch. A short request leaves, a
    # waiting one takes its id: the full batch must still be laid out as one run.
    runtime = _runtime(max_batch_size=3)
    try:
        prompt = runtime.prepare_chat([{"role": "user", "content": "Tell me a long story."}])
        sinks: list[queue.SimpleQueue] = []  # type: ignore[type-arg]
        for max_tokens in (16, 2, 16, 16, 16):  # submitted in this order: ids 0, 1, 2, then reused
            sink: queue.SimpleQueue = queue.SimpleQueue()  # type: ignore[type-arg]
            runtime.submit_stream(prompt, SamplingParams(max_tokens=max_tokens, temperature=0.0), threading.Event(), None, sink)
            sinks.append(sink)
        finished = []
        for sink in sinks:
            while True:
                item = sink.get(timeout=300)
                assert not isinstance(item, BaseException), item
                if item.finish_reason:
                    finished.append(item.finish_reason)
                    break
        assert finished == ["length"] * 5
        stats = runtime.stats()
        assert stats["full_batch_steps"] > 0, "the batch never filled up"
        assert stats["full_batch_id_runs"] == stats["full_batch_steps"]
    finally:
        runtime.unload()
