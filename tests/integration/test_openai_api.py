"""The OpenAI-compatible API, driven by the official openai client against a live server."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest

from tests.support.live_server import MODEL, LiveServer

MSG = [{"role": "user", "content": "Name three colours of the rainbow."}]


def test_models_list(client) -> None:
    ids = [m.id for m in client.models.list().data]
    assert MODEL in ids
    assert client.models.retrieve(MODEL).id == MODEL


def test_chat_streams_a_real_answer(client) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=MSG, stream=True, max_tokens=40)
    pieces, finishes, roles = [], [], []
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        assert chunk.model == MODEL
        for c in chunk.choices:
            if c.delta.role:
                roles.append(c.delta.role)
            if c.delta.content:
                pieces.append(c.delta.content)
            if c.finish_reason:
                finishes.append(c.finish_reason)
    assert roles == ["assistant"]
    assert len(pieces) > 3, "the answer should arrive in several pieces"
    assert "".join(pieces).strip()
    assert finishes in (["stop"], ["length"])


def test_stream_and_non_stream_agree_with_greedy_decoding(client) -> None:
    kw = dict(model=MODEL, messages=MSG, max_tokens=24, temperature=0)
    full = client.chat.completions.create(**kw)
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **kw) if c.choices)
    assert full.choices[0].message.content == streamed
    assert full.choices[0].message.role == "assistant"


def test_usage_counts(client) -> None:
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=12, temperature=0)
    u = r.usage
    assert u.prompt_tokens > 10  # the chat template adds a system prompt and role markers
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    if r.choices[0].finish_reason == "length":
        assert u.completion_tokens == 12
    else:
        assert 0 < u.completion_tokens <= 12
    # the same counts at the end of a stream with include_usage
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=MSG, max_tokens=12, temperature=0, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump() == u.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"}) | {
        "completion_tokens_details": None,
        "prompt_tokens_details": None,
    }


def test_seeded_sampling_is_reproducible(client) -> None:
    kw = dict(model=MODEL, messages=MSG, max_tokens=20, temperature=1.0, top_p=0.95)
    a = client.chat.completions.create(seed=1234, **kw).choices[0].message.content
    b = client.chat.completions.create(seed=1234, **kw).choices[0].message.content
    assert a == b
    others = {client.chat.completions.create(seed=s, **kw).choices[0].message.content for s in (1, 2, 3)}
    assert len(others | {a}) > 1, "different seeds should give different samples"


def test_stop_sequences(client) -> None:
    kw = dict(model=MODEL, messages=MSG, max_tokens=40, temperature=0)
    text = client.chat.completions.create(**kw).choices[0].message.content
    words = text.split()
    assert len(words) > 4, text
    stop = words[3]
    expected = text[: text.index(stop)]
    r = client.chat.completions.create(stop=[stop, "zzzz-never"], **kw)
    assert r.choices[0].message.content == expected
    assert r.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, stop=stop, **kw) if c.choices)
    assert streamed == expected
    # a stop sequence that spans several tokens
    two = " ".join(words[2:4])
    r2 = client.chat.completions.create(stop=two, **kw)
    assert r2.choices[0].message.content == text[: text.index(two)]


def test_n_choices(client) -> None:
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=8, n=3, seed=7)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert all(c.message.content for c in r.choices)
    assert r.usage.completion_tokens == sum(8 if c.finish_reason == "length" else 0 for c in r.choices) or r.usage.completion_tokens > 0


def test_text_completions(client) -> None:
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert r.object == "text_completion"
    assert r.choices[0].text
    assert r.usage.prompt_tokens >= 5
    batch = client.completions.create(model=MODEL, prompt=["One, two,", "Red, green,"], max_tokens=4, temperature=0)
    assert [c.index for c in batch.choices] == [0, 1]
    echoed = client.completions.create(model=MODEL, prompt="Hello", max_tokens=3, temperature=0, echo=True)
    assert echoed.choices[0].text.startswith("Hello")
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0, stream=True)
        if c.choices
    )
    assert streamed == r.choices[0].text


def _assert_openai_error(resp: httpx.Response, status: int, code: str, param: str | None = "any") -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["code"] == code
    assert isinstance(err["message"], str) and err["message"]
    if param != "any":
        assert err["param"] == param
    return err


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"model": "no-such-model", "messages": MSG}, 404, "model_not_found", "any"),
        ({"model": MODEL, "messages": []}, 400, "invalid_request", "messages"),
        ({"model": MODEL}, 400, "invalid_request", "messages"),
        ({"model": MODEL, "messages": [{"role": "wizard", "content": "hi"}]}, 400, "invalid_request", "any"),
        ({"model": MODEL, "messages": [{"role": "user", "content": None}]}, 400, "invalid_request", "any"),
        ({"model": MODEL, "messages": [{"role": "user"}]}, 400, "invalid_request", "any"),
        ({"model": MODEL, "messages": "hello"}, 400, "invalid_request", "messages"),
        ({"model": MODEL, "messages": MSG, "n": 100000}, 400, "invalid_request", "n"),
        ({"model": MODEL, "messages": MSG, "max_tokens": 10**9}, 400, "invalid_request", "max_tokens"),
        ({"model": MODEL, "messages": MSG, "max_tokens": 0}, 400, "invalid_request", "max_tokens"),
        ({"model": MODEL, "messages": MSG, "temperature": 7}, 400, "invalid_request", "temperature"),
        ({"model": MODEL, "messages": MSG, "stop": ["a", "b", "c", "d", "e"]}, 400, "invalid_request", "stop"),
        ({"model": MODEL, "messages": MSG, "tools": [{"type": "function"}]}, 400, "invalid_request", "any"),
        ({"model": MODEL, "messages": MSG, "max_tokens": 1500}, 400, "context_length_exceeded", "any"),
    ],
)
def test_bad_chat_requests_get_clear_errors(live_server: LiveServer, body, status, code, param) -> None:
    if code == "context_length_exceeded":
        body = dict(body, messages=[{"role": "user", "content": "word " * 700}])
    resp = httpx.post(live_server.v1 + "/chat/completions", json=body, timeout=60)
    err = _assert_openai_error(resp, status, code, param)
    if code == "model_not_found":
        assert "no-such-model" in err["message"]


def test_context_window_without_max_tokens(live_server: LiveServer) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "word " * 2100}]}
    err = _assert_openai_error(httpx.post(live_server.v1 + "/chat/completions", json=body, timeout=60), 400, "context_length_exceeded")
    assert "2048" in err["message"]


def test_invalid_json_and_utf8(live_server: LiveServer) -> None:
    url = live_server.v1 + "/chat/completions"
    h = {"content-type": "application/json"}
    _assert_openai_error(httpx.post(url, content=b'{"model": "x", "messages": [', headers=h), 400, "invalid_json")
    _assert_openai_error(httpx.post(url, content=b'{"model": "\xff\xfe", "messages": []}', headers=h), 400, "invalid_json")
    _assert_openai_error(httpx.post(url, content=b"[1, 2]", headers=h), 400, "invalid_request")


def test_oversized_body_is_refused(live_server: LiveServer) -> None:
    url = live_server.v1 + "/chat/completions"
    big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * (300 * 1024)}]}
    err = _assert_openai_error(httpx.post(url, json=big, timeout=30), 413, "payload_too_large")
    assert "262144" in err["message"]

    def chunked():  # no Content-Length: counted as it arrives
        yield b'{"model": "' + MODEL.encode() + b'", "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"y" * 8192
        yield b'"}]}'

    _assert_openai_error(
        httpx.post(url, content=chunked(), headers={"content-type": "application/json"}, timeout=30), 413, "payload_too_large"
    )
    # the server is still fine afterwards
    assert httpx.get(live_server.url + "/healthz").status_code == 200


def test_official_client_raises_typed_errors(client) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="missing", messages=MSG)
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=MSG, n=99)


def _generation_counters(live_server: LiveServer) -> tuple[float, float]:
    return (
        live_server.metric("plinth_completion_tokens_total", model=MODEL),
        live_server.metric("plinth_generations_total", model=MODEL, finish_reason="cancelled"),
    )


def _assert_cancelled_early(live_server: LiveServer, before: tuple[float, float], max_tokens: int) -> None:
    """The disconnected request ended as cancelled, long before its ``max_tokens``.

    Counted in tokens, not seconds: on a busy machine every step is slow, but a request
    that is not cancelled still runs to ``max_tokens`` (or its end of text, which would not
    count as cancelled), whatever the machine's speed. The wait is only a generous bound."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and live_server.metric("plinth_generating", model=MODEL) != 0.0:
        time.sleep(0.05)
    assert live_server.metric("plinth_generating", model=MODEL) == 0.0, "generation still running 2 minutes after disconnect"
    assert live_server.metric("plinth_running_requests", model=MODEL) == 0.0
    tokens, cancelled = _generation_counters(live_server)
    assert cancelled - before[1] == 1, "the request did not end as cancelled"
    assert tokens - before[0] < max_tokens / 2, f"{tokens - before[0]:.0f} tokens generated of {max_tokens}"


def test_client_disconnect_stops_generation(live_server: LiveServer) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
        "max_tokens": 1400,
        "stream": True,
        "temperature": 1.0,
        "seed": 3,
    }
    before = _generation_counters(live_server)
    with httpx.Client(timeout=60) as http, http.stream("POST", live_server.v1 + "/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        n = 0
        generating_midway = None
        for line in resp.iter_lines():
            if line.startswith("data:"):
                n += 1
            if n >= 5:
                generating_midway = live_server.metric("plinth_generating", model=MODEL)
                break  # leaving the iterator closes the connection mid-stream
        assert generating_midway == 1.0
    _assert_cancelled_early(live_server, before, body["max_tokens"])


def test_non_streaming_disconnect_stops_generation(live_server: LiveServer) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell a long story."}],
        "max_tokens": 1400,
        "temperature": 1.0,
        "seed": 5,
    }
    before = _generation_counters(live_server)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(live_server.v1 + "/chat/completions", json=body, timeout=httpx.Timeout(1.5, connect=5))
    _assert_cancelled_early(live_server, before, body["max_tokens"])


def test_back_pressure_429_with_retry_after(live_server: LiveServer, client) -> None:
    # 4 in the batch + 3 queued fit; the rest must be refused at once with 429 and Retry-After.
    results: list[object] = []
    lock = threading.Lock()

    def call() -> None:
        try:
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MSG, max_tokens=48, temperature=0)
            out: object = raw.status_code
        except openai.RateLimitError as e:
            out = e
        except openai.APIError as e:  # pragma: no cover - reported below
            out = e
        with lock:
            results.append(out)

    threads = [threading.Thread(target=call) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    limited = [r for r in results if isinstance(r, openai.RateLimitError)]
    ok = [r for r in results if r == 200]
    assert len(results) == 12
    assert len(limited) >= 1, results
    assert len(ok) >= 7, results
    assert len(ok) + len(limited) == 12, results
    err = limited[0]
    assert err.status_code == 429
    assert int(err.response.headers["retry-after"]) >= 1
    assert err.body["code"] == "server_busy"
    assert live_server.metric("plinth_rejected_requests_total", model=MODEL) >= len(limited)


def test_metrics_exposition(live_server: LiveServer, client) -> None:
    client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=4)
    text = httpx.get(live_server.url + "/metrics").text
    for name in (
        "plinth_http_requests_total",
        "plinth_http_request_duration_seconds_bucket",
        "plinth_time_to_first_token_seconds_bucket",
        "plinth_inter_token_latency_seconds_bucket",
        "plinth_prompt_tokens_total",
        "plinth_completion_tokens_total",
        "plinth_queue_depth",
        "plinth_running_requests",
        "plinth_errors_total",
    ):
        assert name in text, name
    assert live_server.metric("plinth_http_requests_total", route="/v1/chat/completions", method="POST", status="200") >= 1
    assert live_server.metric("plinth_prompt_tokens_total", model=MODEL) > 0
    assert live_server.metric("plinth_errors_total", code="model_not_found") >= 1


def test_openapi_and_health(live_server: LiveServer) -> None:
    spec = httpx.get(live_server.url + "/openapi.json").json()
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/models", "/api/v1/models", "/healthz", "/readyz"):
        assert path in spec["paths"], path
    assert httpx.get(live_server.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(live_server.url + "/readyz").json()
    assert ready["status"] == "ready" and ready["checks"]["default_model"] == "loaded"


def test_unknown_routes_use_the_documented_shapes(live_server: LiveServer) -> None:
    r = httpx.get(live_server.v1 + "/nothing-here")
    _assert_openai_error(r, 404, "not_found")
    r = httpx.get(live_server.url + "/api/v1/nothing-here")
    assert r.status_code == 404
    assert set(r.json()["error"]) >= {"code", "message"} and r.json()["error"]["code"] == "not_found"
    r = httpx.delete(live_server.v1 + "/chat/completions")
    _assert_openai_error(r, 405, "invalid_request")
    assert json.loads(r.text)["error"]["type"] == "invalid_request_error"


def test_docs_page_works_offline(live_server: LiveServer) -> None:
    page = httpx.get(live_server.url + "/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower(), "the docs page must not load assets from the internet"
    for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"):
        r = httpx.get(live_server.url + asset)
        assert r.status_code == 200 and len(r.content) > 10_000, asset


def test_client_leaving_the_queue_frees_its_place(live_server: LiveServer) -> None:
    long_body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write a very long story."}],
        "max_tokens": 1000,
        "stream": True,
        # greedy: this prompt runs to max_tokens (sampled, a story may end early and free a slot)
        "temperature": 0.0,
    }
    stop = threading.Event()
    started = threading.Semaphore(0)

    def occupy() -> None:  # hold one batch slot until told to stop
        with httpx.stream("POST", live_server.v1 + "/chat/completions", json=long_body, timeout=120) as resp:
            started.release()
            for _ in resp.iter_lines():
                if stop.is_set():
                    return

    holders = [threading.Thread(target=occupy) for _ in range(4)]  # the server's batch size
    for t in holders:
        t.start()
    try:
        for _ in holders:
            assert started.acquire(timeout=60)
        assert live_server.metric("plinth_running_requests", model=MODEL) == 4.0
        for _ in range(2):  # these wait in the queue, then their clients give up
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(
                    live_server.v1 + "/chat/completions",
                    json={**long_body, "stream": False, "max_tokens": 4},
                    timeout=httpx.Timeout(1.0, connect=5),
                )
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and live_server.metric("plinth_queue_depth", model=MODEL) != 0.0:
            time.sleep(0.05)
        assert live_server.metric("plinth_queue_depth", model=MODEL) == 0.0
    finally:
        stop.set()
        for t in holders:
            t.join(timeout=60)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and live_server.metric("plinth_running_requests", model=MODEL) != 0.0:
        time.sleep(0.1)
    assert live_server.metric("plinth_running_requests", model=MODEL) == 0.0
