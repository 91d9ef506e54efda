"""Continuous-batching scenarios every batching engine must pass (llama.cpp and torch).

Every comparison is against the same request served alone by the same engine: greedy
decoding (and seeded sampling) must give the same text whether a sequence shares its
decode steps with others or not. The per-runtime test modules call these with their own
runtime, adapters and stat names.
"""

from __future__ import annotations

import threading
import time

import pytest

from plinth.runtimes.base import AdapterRef, SamplingParams

QUESTIONS = [
    "What is the capital of France?",
    "Name a large animal.",
    "Write one sentence about the sea.",
    "What colour is grass?",
    "Count from one to five.",
    "Say hello politely.",
]


def _gen(rt, question: str, adapter=None, *, max_tokens=24, temperature=0.0, seed=None, cancel=None) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    prompt = rt.prepare_chat([{"role": "user", "content": question}])
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
    text, finish = "", None
    for d in rt.generate(prompt, params, cancel or threading.Event(), adapter):
        text += d.text
        finish = d.finish_reason or finish
    return text, finish or ""


def _concurrently(fns) -> list:  # type: ignore[no-untyped-def]
    out: list = [None] * len(fns)
    barrier = threading.Barrier(len(fns))

    def run(i: int) -> None:
        barrier.wait()
        out[i] = fns[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return out


def batched_greedy_answers_equal_answers_served_alone(rt) -> None:
    alone = [_gen(rt, q) for q in QUESTIONS]
    steps_before = rt.stats()["steps"]
    batched = _concurrently([lambda q=q: _gen(rt, q) for q in QUESTIONS])
    assert batched == alone
    stats = rt.stats()
    assert stats["max_sequences_in_step"] >= 3, "requests were not decoded together"
    # fewer decode steps than tokens proves sequences shared steps
    assert stats["steps"] - steps_before < sum(rt.count_tokens(t) for t, _ in batched)


def seeded_sampling_inside_a_batch_is_reproducible(rt) -> None:
    alone = [_gen(rt, q, temperature=0.9, seed=40 + i) for i, q in enumerate(QUESTIONS[:4])]
    batched = _concurrently([lambda i=i, q=q: _gen(rt, q, temperature=0.9, seed=40 + i) for i, q in enumerate(QUESTIONS[:4])])
    assert batched == alone
    assert len({t for t, _ in alone}) > 1


def max_tokens_per_request_inside_a_batch(rt) -> None:
    limits = [3, 9, 17]
    prompts = [rt.prepare_chat([{"role": "user", "content": "Tell me a long story."}]) for _ in limits]
    counts = _concurrently(
        [
            lambda p=p, n=n: sum(d.n_tokens for d in rt.generate(p, SamplingParams(max_tokens=n, temperature=0.0), threading.Event()))
            for p, n in zip(prompts, limits, strict=True)
        ]
    )
    assert counts == limits


def cancelling_one_request_leaves_the_others_intact(rt) -> None:
    expected = _gen(rt, QUESTIONS[2], max_tokens=40)
    cancel = threading.Event()
    got_tokens = threading.Event()

    def cancelled() -> tuple[str, str, int]:
        prompt = rt.prepare_chat([{"role": "user", "content": "Write a very long story about dragons."}])
        n, finish = 0, ""
        for d in rt.generate(prompt, SamplingParams(max_tokens=400, temperature=0.0), cancel):
            n += d.n_tokens
            if n >= 4:
                got_tokens.set()
            finish = d.finish_reason or finish
        return "", finish, n

    def canceller() -> None:
        got_tokens.wait(timeout=60)
        cancel.set()

    t = threading.Thread(target=canceller)
    t.start()
    results = _concurrently([cancelled, lambda: _gen(rt, QUESTIONS[2], max_tokens=40)])
    t.join()
    _, finish, n = results[0]
    assert finish == "cancelled"
    assert n < 100
    assert results[1] == expected


def long_prompt_does_not_stall_running_streams(rt, chunk: int) -> None:
    long_question = "Summarise this text: " + " ".join(f"word{i}" for i in range(150))
    stream_times: list[float] = []
    started = threading.Event()

    def running() -> None:
        prompt = rt.prepare_chat([{"role": "user", "content": "Tell me a long story about a ship."}])
        for d in rt.generate(prompt, SamplingParams(max_tokens=120, temperature=0.0), threading.Event()):
            if d.n_tokens:
                stream_times.append(time.monotonic())
            if len(stream_times) == 5:
                started.set()

    first_token_of_long: list[float] = []

    def long() -> None:
        started.wait(timeout=60)
        submitted = time.monotonic()
        prompt = rt.prepare_chat([{"role": "user", "content": long_question}])
        assert prompt.n_tokens and prompt.n_tokens > 4 * chunk  # several prefill chunks
        for d in rt.generate(prompt, SamplingParams(max_tokens=2, temperature=0.0), threading.Event()):
            if d.n_tokens and not first_token_of_long:
                first_token_of_long.append(time.monotonic())
        first_token_of_long.insert(0, submitted)

    a = threading.Thread(target=running)
    b = threading.Thread(target=long)
    a.start()
    b.start()
    a.join(timeout=300)
    b.join(timeout=300)
    submitted, first = first_token_of_long[0], first_token_of_long[1]
    during_prefill = [t for t in stream_times if submitted < t < first]
    assert len(during_prefill) >= 3, "the running stream got no tokens while the long prompt was prefilled"


def each_request_gets_its_own_adapter_in_a_mixed_batch(rt, adapters, mixed_stat: str) -> None:
    q = QUESTIONS[1]
    cases = [None, adapters[0], adapters[1], None, adapters[0]]
    alone = [_gen(rt, q, a) for a in cases]
    assert len({alone[0], alone[1], alone[2]}) == 3, "each adapter should give its own answer"
    mixed = _concurrently([lambda a=a: _gen(rt, q, a) for a in cases])
    assert mixed == alone
    assert rt.stats()[mixed_stat] > 0


def adapters_load_on_first_use_and_are_evicted_lru(make_runtime, adapters) -> None:
    size = adapters[0].size_bytes
    rt = make_runtime(adapter_cache_bytes=int(size * 2.5))  # room for two adapters
    try:
        reference = {a.key: _gen(rt, QUESTIONS[3], a) for a in adapters[:2]}
        assert sorted(rt.loaded_adapters()) == sorted([adapters[0].key, adapters[1].key])
        assert rt.stats()["adapter_loads"] == 2
        _gen(rt, QUESTIONS[3], adapters[0])  # lora0 is now the most recent
        _gen(rt, QUESTIONS[3], adapters[2])  # needs room: lora1 (least recently used) goes
        assert sorted(rt.loaded_adapters()) == sorted([adapters[0].key, adapters[2].key])
        assert rt.stats()["adapter_evictions"] == 1
        assert _gen(rt, QUESTIONS[3], adapters[1]) == reference[adapters[1].key]  # reloaded, same answer
        assert rt.stats()["adapter_loads"] == 4
    finally:
        rt.unload()


def a_broken_adapter_fails_only_its_request(rt, bad: AdapterRef) -> None:
    with pytest.raises(Exception) as e:
        _gen(rt, QUESTIONS[0], bad)
    assert "adapter" in str(e.value)
    assert _gen(rt, QUESTIONS[0])[0]  # the engine still serves
