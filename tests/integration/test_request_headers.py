"""Per-request headers application developers rely on (issue 17): ``x-request-id`` on every
answer (the client's own when well-formed), and CORS for browser apps of the origins the
operator allows (the shared live server allows ``http://app.example``)."""

from __future__ import annotations

import re

import httpx
import openai

from tests.support.live_server import MODEL, LiveServer

ALLOWED = "http://app.example"


def test_every_answer_carries_a_request_id_and_a_clients_own_is_kept(live_server: LiveServer) -> None:
    made = httpx.get(live_server.url + "/healthz", timeout=30)
    assert re.fullmatch(r"req_[0-9a-f]{32}", made.headers["x-request-id"])
    assert httpx.get(live_server.url + "/healthz", timeout=30).headers["x-request-id"] != made.headers["x-request-id"]
    own = httpx.get(live_server.url + "/api/v1/models", headers={"X-Request-Id": "trace-4bf92f3577b34da6:01"}, timeout=30)
    assert own.headers["x-request-id"] == "trace-4bf92f3577b34da6:01"
    # a malformed one (a newline smuggling a header, or too long) is replaced, never echoed
    for bad in ("a b", "x" * 129, "id;drop"):
        r = httpx.get(live_server.url + "/healthz", headers={"X-Request-Id": bad}, timeout=30)
        assert re.fullmatch(r"req_[0-9a-f]{32}", r.headers["x-request-id"]), bad
    # errors carry it too, in both error shapes
    missing = httpx.get(live_server.url + "/v1/models/no-such-model", timeout=30)
    assert missing.status_code == 404 and missing.headers["x-request-id"].startswith("req_")


def test_the_openai_client_sees_the_request_id(live_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=live_server.v1, api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hi"}], max_tokens=2, extra_headers={"X-Request-Id": "app-42"}
    )
    assert raw.headers["x-request-id"] == "app-42"
    assert raw.parse().choices[0].message.content is not None


def test_cors_preflight_and_answers_for_an_allowed_origin_only(live_server: LiveServer) -> None:
    preflight = {"Origin": ALLOWED, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    ok = httpx.options(live_server.v1 + "/chat/completions", headers=preflight, timeout=30)
    assert ok.status_code == 200, ok.text
    assert ok.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in ok.headers["access-control-allow-methods"]
    assert "authorization" in ok.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in ok.headers  # cookies are not offered to other origins
    other = httpx.options(live_server.v1 + "/chat/completions", headers={**preflight, "Origin": "http://evil.example"}, timeout=30)
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    answer = httpx.get(live_server.v1 + "/models", headers={"Origin": ALLOWED}, timeout=30)
    assert answer.headers["access-control-allow-origin"] == ALLOWED
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
    assert (
        "access-control-allow-origin"
        not in httpx.get(live_server.v1 + "/models", headers={"Origin": "http://evil.example"}, timeout=30).headers
    )
