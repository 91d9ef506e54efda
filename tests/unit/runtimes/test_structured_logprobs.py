"""Token log-probabilities from both engines directly, on the real embedded model: values are
log-probabilities, greedy picks the top entry, and asking for them changes no answer."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from plinth.runtimes.base import OutputConstraint, SamplingParams
from tests.unit.runtimes import test_llamacpp_batching as lb
from tests.unit.runtimes import test_torch_batching as tb


@pytest.fixture(scope="module", params=["llamacpp", "torch"])
def rt(request: pytest.FixtureRequest, torch_cache_dir: Path):  # type: ignore[no-untyped-def]
    if request.param == "torch":
        request.getfixturevalue("smol_dir")
        tb._CACHE["dir"] = torch_cache_dir
        runtime = tb._make()
    else:
        runtime = lb._runtime()
    yield runtime
    runtime.unload()


def _gen(rt, params: SamplingParams):  # type: ignore[no-untyped-def]
    prompt = rt.prepare_chat([{"role": "user", "content": "What is the capital of France?"}])
    text, entries, tokens = "", [], 0
    for d in rt.generate(prompt, params, threading.Event()):
        text += d.text
        entries += d.logprobs or []
        tokens += d.n_tokens
    assert not entries or len(entries) == tokens, "one entry per generated token"
    return text, entries


def test_greedy_tokens_are_the_top_entries_and_values_are_log_probabilities(rt) -> None:
    plain, none = _gen(rt, SamplingParams(max_tokens=10, temperature=0.0))
    text, entries = _gen(rt, SamplingParams(max_tokens=10, temperature=0.0, logprobs=4))
    assert text == plain and none == []
    assert entries
    for e in entries:
        assert e.logprob <= 0
        assert len(e.top) == 4
        assert e.top[0][0] == e.token
        assert e.top[0][2] == pytest.approx(e.logprob, abs=1e-5)
        assert all(a[2] >= b[2] for a, b in zip(e.top, e.top[1:], strict=False))


def test_logprobs_under_a_constraint_are_the_models(rt) -> None:
    c = OutputConstraint(
        "json_schema", {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"]}
    )
    rt.check_constraint(c)
    text, entries = _gen(rt, SamplingParams(max_tokens=30, temperature=0.0, constraint=c, logprobs=0))
    assert text.startswith("{")
    assert entries and all(e.logprob <= 0 and e.top == [] for e in entries)


def test_logit_bias_bans_and_forces_tokens(rt) -> None:
    _, entries = _gen(rt, SamplingParams(max_tokens=3, temperature=0.0, logprobs=1))
    first = entries[0]
    first_id = _id_of(rt, first.token)
    _, banned = _gen(rt, SamplingParams(max_tokens=3, temperature=0.0, logprobs=0, logit_bias={first_id: -100.0}))
    assert banned[0].token != first.token
    forced_id = _id_of(rt, " purple")
    text, _ = _gen(rt, SamplingParams(max_tokens=3, temperature=0.0, logit_bias={forced_id: 100.0}))
    assert text == " purple" * 3


def _id_of(rt, text: str) -> int:  # type: ignore[no-untyped-def]
    ids = rt.prepare_text(text).token_ids
    ids = [i for i in ids if i != 1] if len(ids) > 1 else ids  # without a BOS the tokenizer may add
    assert len(ids) == 1, ids
    return int(ids[0])
