"""Token log-probabilities (chat ``logprobs``/``top_logprobs``, completions ``logprobs``) from
the live server's llama.cpp engine, in OpenAI's shapes, driven by the official openai client."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support.live_server import MODEL, LiveServer

MSG = [{"role": "user", "content": "Name three colours of the rainbow."}]


def test_chat_logprobs_in_openais_shape(client) -> None:
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=12, temperature=0, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert "".join(e.token for e in content) == r.choices[0].message.content
    for e in content:
        assert e.logprob <= 0
        assert bytes(e.bytes).decode("utf-8", errors="replace") == e.token
        assert len(e.top_logprobs) == 3
        assert [t.logprob for t in e.top_logprobs] == sorted((t.logprob for t in e.top_logprobs), reverse=True)
        # greedy: the chosen token is the most likely one
        assert e.top_logprobs[0].token == e.token
        assert e.top_logprobs[0].logprob == pytest.approx(e.logprob)


def test_without_logprobs_there_are_none(client) -> None:
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=4, temperature=0)
    assert r.choices[0].logprobs is None


def test_streamed_logprobs_equal_the_non_streamed_ones(client) -> None:
    kw = dict(model=MODEL, messages=MSG, max_tokens=12, temperature=0, logprobs=True, top_logprobs=2)
    full = client.chat.completions.create(**kw).choices[0].logprobs.content
    streamed = []
    for chunk in client.chat.completions.create(stream=True, **kw):
        if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
            streamed.extend(chunk.choices[0].logprobs.content)
    assert [(e.token, e.logprob) for e in streamed] == [(e.token, e.logprob) for e in full]


def test_completions_logprobs_in_the_legacy_shape(client) -> None:
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=6, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert "".join(lp.tokens) == r.choices[0].text
    assert len(lp.token_logprobs) == len(lp.tokens) == len(lp.top_logprobs) == len(lp.text_offset)
    assert all(v <= 0 for v in lp.token_logprobs)
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)
    for token, value, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True):
        assert len(top) <= 2 and max(top.values()) == pytest.approx(value)
        assert token in top


def test_streamed_completion_logprobs(client) -> None:
    kw = dict(model=MODEL, prompt="The capital of France is", max_tokens=6, temperature=0, logprobs=1)
    full = client.completions.create(**kw).choices[0].logprobs
    tokens = []
    for chunk in client.completions.create(stream=True, **kw):
        if chunk.choices and chunk.choices[0].logprobs:
            tokens.extend(chunk.choices[0].logprobs.tokens)
    assert tokens == full.tokens


@pytest.mark.parametrize(
    ("path", "extra", "param"),
    [
        ("chat/completions", {"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ("chat/completions", {"top_logprobs": 2}, None),
        ("completions", {"logprobs": 6}, "logprobs"),
    ],
)
def test_bad_logprobs_requests_are_400(live_server: LiveServer, path: str, extra: dict, param: str | None) -> None:
    body = {"model": MODEL, "max_tokens": 2, **extra}
    body |= {"messages": MSG} if path.startswith("chat") else {"prompt": "hi"}
    r = httpx.post(f"{live_server.v1}/{path}", json=body, timeout=60)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param
    assert "logprobs" in err["message"]


def test_the_client_sees_bad_top_logprobs(client) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=2, logprobs=True, top_logprobs=50)


# -- logit_bias ---------------------------------------------------------------------------------
def _first(client, **kw) -> str:  # type: ignore[no-untyped-def]
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=3, temperature=0, logprobs=True, **kw)
    return r.choices[0].logprobs.content[0].token


def _token_id(text: str) -> int:
    import llama_cpp

    from plinth.formats import locate_embedded_gguf

    vocab = llama_cpp.Llama(model_path=str(locate_embedded_gguf()), vocab_only=True, verbose=False)
    ids = vocab.tokenize(text.encode(), add_bos=False, special=False)
    assert len(ids) == 1, (text, ids)
    return ids[0]


def test_a_bias_of_minus_100_bans_the_greedy_first_token_and_100_forces_one(client) -> None:
    first = _first(client)
    banned = _token_id(first)
    assert _first(client, logit_bias={str(banned): -100}) != first
    forced_id = _token_id(" purple")
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=3, temperature=0, logit_bias={str(forced_id): 100})
    assert r.choices[0].message.content == " purple" * 3


def test_completions_take_logit_bias_too(client) -> None:
    kw = dict(model=MODEL, prompt="The capital of France is", max_tokens=1, temperature=0)
    first = client.completions.create(**kw).choices[0].text
    banned = _token_id(first)
    assert client.completions.create(logit_bias={str(banned): -100}, **kw).choices[0].text != first


@pytest.mark.parametrize("bias", [{"49152": 5}, {"abc": 1}, {"5": 101}, {"-1": 3}])
def test_bad_logit_bias_is_400(live_server: LiveServer, bias: dict) -> None:
    body = {"model": MODEL, "messages": MSG, "max_tokens": 2, "logit_bias": bias}
    r = httpx.post(f"{live_server.v1}/chat/completions", json=body, timeout=60)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "logit_bias"
