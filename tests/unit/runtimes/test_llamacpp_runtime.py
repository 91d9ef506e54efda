"""The real llama.cpp runtime on the embedded SmolLM2-135M GGUF (small max_tokens, one thread)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth.domain import ModelFormat, ModelRecord
from plinth.errors import ErrorCode, PlinthError
from plinth.formats import inspect_model, locate_embedded_gguf
from plinth.runtimes import Delta, Prompt, RuntimeOptions, SamplingParams
from plinth.runtimes.llamacpp import LlamaCppRuntime
from tests.support.runtime_contract import cancel_after_three_tokens

THREADS = 1
MESSAGES = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


def record_for(path: Path) -> ModelRecord:
    info = inspect_model(path)
    return ModelRecord(
        name="smollm2-test",
        format=ModelFormat.GGUF,
        runtime="llamacpp",
        digest=None,
        size_bytes=info.size_bytes,
        architecture=info.architecture,
        context_length=info.context_length,
        chat_template=info.chat_template,
        license=info.license,
        parameters=dict(info.parameters),
    )


@pytest.fixture(scope="module")
def runtime() -> Iterator[LlamaCppRuntime]:
    path = locate_embedded_gguf()
    # threads=1: llama.cpp's spinning thread pool slows down ~50x when another process wants
    # one of the cores (docs/adr/0004); measured 0.6 s vs 37-58 s for 16 tokens on 2 busy cores.
    rt = LlamaCppRuntime(record_for(path), path, RuntimeOptions(threads=THREADS, context_length=1024))
    rt.load()
    yield rt
    rt.unload()


@pytest.fixture(scope="module")
def prompt(runtime: LlamaCppRuntime) -> Prompt:
    return runtime.prepare_chat(MESSAGES)


def collect(runtime: LlamaCppRuntime, prompt: Prompt, params: SamplingParams) -> tuple[str, int, str | None, list[Delta]]:
    deltas = list(runtime.generate(prompt, params, threading.Event()))
    return "".join(d.text for d in deltas), sum(d.n_tokens for d in deltas), deltas[-1].finish_reason, deltas


def greedy(n: int) -> SamplingParams:
    return SamplingParams(max_tokens=n, temperature=0.0)


def test_context_length_is_capped_by_the_options(runtime: LlamaCppRuntime) -> None:
    assert runtime.context_length() == 1024


def test_prepare_chat_applies_the_model_template_and_counts_tokens(runtime: LlamaCppRuntime, prompt: Prompt) -> None:
    assert prompt.is_chat
    assert prompt.text is not None
    assert prompt.text.startswith("<|im_start|>system\n")
    assert prompt.text.endswith("<|im_start|>assistant\n")
    assert prompt.token_ids and prompt.n_tokens == len(prompt.token_ids)
    # special tokens are tokens, not their spelling: <|im_start|> is one id (1, the BOS)
    assert prompt.token_ids[0] == 1
    assert prompt.token_ids.count(1) == 3  # system, user, assistant turns
    # the template wrote the BOS itself: no second BOS was added in front
    assert prompt.token_ids[1] != 1


def test_prepare_text_counts_tokens(runtime: LlamaCppRuntime) -> None:
    p = runtime.prepare_text("The capital of France is")
    assert not p.is_chat
    assert p.token_ids and p.n_tokens == len(p.token_ids)
    assert runtime.count_tokens("The capital of France is") in (p.n_tokens, p.n_tokens - 1)
    assert runtime.count_tokens("") == 0


def test_greedy_decoding_is_deterministic(runtime: LlamaCppRuntime, prompt: Prompt) -> None:
    a, n_a, _, _ = collect(runtime, prompt, greedy(16))
    b, n_b, _, _ = collect(runtime, prompt, greedy(16))
    assert a.strip(), "the model should answer"
    assert (a, n_a) == (b, n_b)


def test_max_tokens_is_respected_with_finish_reason_length(runtime: LlamaCppRuntime, prompt: Prompt) -> None:
    text, n, finish, deltas = collect(runtime, prompt, greedy(8))
    assert finish == "length"
    assert n == 8, "every generated token is counted once"
    assert all(d.finish_reason is None for d in deltas[:-1])
    assert 1 <= runtime.count_tokens(text) <= 10  # type: ignore[operator]
    # and the 8 tokens are the beginning of a longer greedy answer
    longer, _, _, _ = collect(runtime, prompt, greedy(12))
    assert longer.startswith(text)


def test_seeded_sampling_is_reproducible(runtime: LlamaCppRuntime, prompt: Prompt) -> None:
    def sample(seed: int) -> str:
        return collect(runtime, prompt, SamplingParams(max_tokens=12, temperature=1.0, top_p=0.95, seed=seed))[0]

    a = sample(1234)
    assert sample(1234) == a
    others = {sample(s) for s in (1, 2)}
    assert len(others | {a}) > 1, "different seeds should give different samples"


def test_greedy_is_unchanged_after_other_generations(runtime: LlamaCppRuntime, prompt: Prompt) -> None:
    # the KV cache is reused between calls (prefix matching); it must not leak state
    first = collect(runtime, prompt, greedy(12))[0]
    collect(runtime, runtime.prepare_chat([{"role": "user", "content": "Hello!"}]), SamplingParams(max_tokens=8, seed=5))
    assert collect(runtime, prompt, greedy(12))[0] == first


def test_cancel_from_another_thread_stops_generation(runtime: LlamaCppRuntime, prompt: Prompt) -> None:
    deltas, tokens = cancel_after_three_tokens(runtime, prompt, greedy(64))
    assert deltas[-1].finish_reason == "cancelled"
    assert all(d.finish_reason is None for d in deltas[:-1])
    assert 3 <= tokens <= 16, f"{tokens} tokens: the engine should stop within a few tokens of the cancel"
    # the runtime is usable again at once
    assert collect(runtime, prompt, greedy(4))[2] == "length"


def test_cancel_set_before_starting_generates_nothing(runtime: LlamaCppRuntime, prompt: Prompt) -> None:
    cancel = threading.Event()
    cancel.set()
    deltas = list(runtime.generate(prompt, greedy(16), cancel))
    assert [(d.text, d.n_tokens, d.finish_reason) for d in deltas] == [("", 0, "cancelled")]


def test_an_empty_prompt_is_refused(runtime: LlamaCppRuntime) -> None:
    with pytest.raises(PlinthError) as info:
        list(runtime.generate(Prompt(text="", token_ids=[]), greedy(4), threading.Event()))
    assert info.value.code == ErrorCode.INVALID_REQUEST


def test_health_and_unload() -> None:
    path = locate_embedded_gguf()
    rt = LlamaCppRuntime(record_for(path), path, RuntimeOptions(threads=THREADS, context_length=512))
    assert not rt.health().ok
    assert rt.context_length() is None
    rt.load()
    h = rt.health()
    assert h.ok
    assert h.info["n_ctx"] == 512 and h.info["threads"] == THREADS
    rt.unload()
    assert not rt.health().ok
    assert rt.context_length() is None
    rt.unload()  # twice is harmless


def test_loading_a_missing_or_broken_file_is_runtime_unavailable(tmp_path: Path) -> None:
    path = locate_embedded_gguf()
    record = record_for(path)
    with pytest.raises(PlinthError) as info:
        LlamaCppRuntime(record, None, RuntimeOptions()).load()
    assert info.value.code == ErrorCode.RUNTIME_UNAVAILABLE
    broken = tmp_path / "broken.gguf"
    with open(path, "rb") as src:
        broken.write_bytes(src.read(1 << 20))  # the header and a little, no tensors
    with pytest.raises(PlinthError) as info:
        LlamaCppRuntime(record, broken, RuntimeOptions(threads=1, context_length=256)).load()
    assert info.value.code == ErrorCode.RUNTIME_UNAVAILABLE
    assert "smollm2-test" in info.value.message or str(broken) in info.value.message
