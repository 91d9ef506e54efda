"""The remote-engine runtime through the outbound fetcher: a model stored before the rules (or
whose name now resolves inward) fails closed at request time, and a record's old
``api_key_env`` is read as a secret's name, never as an environment variable."""

from __future__ import annotations

import threading

import pytest

from plinth.domain import ModelFormat, ModelRecord
from plinth.errors import ErrorCode, PlinthError
from plinth.outbound import Outbound, OutboundPolicy, Secret, SecretStore
from plinth.runtimes.base import RuntimeOptions, SamplingParams
from plinth.runtimes.openai_upstream import OpenAIUpstreamRuntime
from tests.support.http_targets import Answer, Seen, events, serve

KEY = "sk-runtime-test-key"


def _engine(seen: Seen) -> Answer:
    if seen.headers.get("authorization") != f"Bearer {KEY}":
        return Answer(401, b"who are you")
    done = {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}
    return Answer(200, events(done, b"[DONE]"), "text/event-stream")


def _runtime(base_url: str, outbound: Outbound, **params: str) -> OpenAIUpstreamRuntime:
    record = ModelRecord(
        name="remote",
        format=ModelFormat.REMOTE,
        runtime="openai",
        digest=None,
        size_bytes=0,
        source=base_url,
        parameters={"base_url": base_url, "upstream_model": "m", **params},
    )
    rt = OpenAIUpstreamRuntime(record, None, RuntimeOptions(outbound=outbound, upstream_timeout_s=10))
    rt.load()
    return rt


def _answer(rt: OpenAIUpstreamRuntime) -> str:
    prompt = rt.prepare_chat([{"role": "user", "content": "hi"}])
    return "".join(d.text for d in rt.generate(prompt, SamplingParams(max_tokens=4), threading.Event()))


def test_a_stored_loopback_model_is_refused_at_request_time() -> None:
    with serve({"/v1/chat/completions": _engine}) as engine:
        rt = _runtime(engine.url("/v1"), Outbound(OutboundPolicy(), secrets=SecretStore([Secret("k", KEY)])), api_key_secret="k")
        with pytest.raises(PlinthError) as e:
            _answer(rt)
        assert e.value.code is ErrorCode.UPSTREAM_ERROR
        assert e.value.message == "the engine of model 'remote' is at an address the outbound rules refuse; the server log says which"
        assert "127.0.0.1" not in e.value.message  # the caller of /v1 learns no internal address
        assert engine.seen == []
        allowed = Outbound(OutboundPolicy.from_entries(["127.0.0.1"]), secrets=SecretStore([Secret("k", KEY)]))
        assert _answer(_runtime(engine.url("/v1"), allowed, api_key_secret="k")) == "ok"


def test_an_old_api_key_env_names_a_secret_not_a_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLD_ENGINE_KEY", KEY)  # what the old code would have sent
    with serve({"/v1/chat/completions": _engine}) as engine:
        none_defined = Outbound(OutboundPolicy.from_entries(["127.0.0.1"]))
        with pytest.raises(PlinthError) as e:
            _runtime(engine.url("/v1"), none_defined, api_key_env="OLD_ENGINE_KEY")
        assert (
            e.value.code is ErrorCode.RUNTIME_UNAVAILABLE
            and "api_key_env (now read as a secret's name): unknown secret 'OLD_ENGINE_KEY'" in e.value.message
        )
        assert engine.seen == []
        defined = Outbound(OutboundPolicy.from_entries(["127.0.0.1"]), secrets=SecretStore([Secret("OLD_ENGINE_KEY", KEY)]))
        assert _answer(_runtime(engine.url("/v1"), defined, api_key_env="OLD_ENGINE_KEY")) == "ok"


def test_a_secret_bound_to_another_host_is_not_sent() -> None:
    bound = Outbound(OutboundPolicy.from_entries(["127.0.0.1"]), secrets=SecretStore([Secret("k", KEY, ("api.openai.com",))]))
    with pytest.raises(PlinthError, match=r"may only be sent to api\.openai\.com, not to 127\.0\.0\.1"):
        _runtime("http://127.0.0.1:9/v1", bound, api_key_secret="k")


def test_an_answer_over_the_limits_is_a_short_502() -> None:
    piece = {"choices": [{"index": 0, "delta": {"content": "x" * 2000}, "finish_reason": None}]}
    endless = events(*[piece] * 100)  # valid events, 200 kB of them
    with serve({"/v1/chat/completions": lambda _s: Answer(200, endless, "text/event-stream")}) as engine:
        ob = Outbound(OutboundPolicy.from_entries(["127.0.0.1"]))
        rt = _runtime(engine.url("/v1"), ob)
        rt._client._transport.max_bytes = 10_000  # type: ignore[union-attr]  # a small limit for the test
        with pytest.raises(PlinthError) as e:
            _answer(rt)
    assert e.value.code is ErrorCode.UPSTREAM_ERROR and e.value.message == "the engine of model 'remote' sent an answer over the size limit"
