"""Scenarios every InferenceRuntime must pass, shared by the per-runtime test modules."""

from __future__ import annotations

import threading

from plinth.runtimes import Delta, InferenceRuntime, Prompt, SamplingParams


def cancel_after_three_tokens(runtime: InferenceRuntime, prompt: Prompt, params: SamplingParams) -> tuple[list[Delta], int]:
    """Generate; after 3 tokens another thread sets the cancel event. Returns the deltas and
    the number of tokens produced; the caller asserts its runtime's bounds."""
    cancel = threading.Event()
    go = threading.Event()

    def canceller() -> None:
        go.wait(30)
        cancel.set()

    t = threading.Thread(target=canceller)
    t.start()
    tokens = 0
    deltas: list[Delta] = []
    for d in runtime.generate(prompt, params, cancel):
        deltas.append(d)
        tokens += d.n_tokens
        if tokens >= 3 and not go.is_set():
            go.set()
            t.join(30)  # the event is set now; the runtime sees it before the next token
    go.set()
    t.join(30)
    return deltas, tokens
