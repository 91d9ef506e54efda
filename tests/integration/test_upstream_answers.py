"""What a remote OpenAI-compatible engine answers never reaches the caller verbatim: a redirect
(plinth follows none), an error status, a page that is not an event stream, an error event or
an event of the wrong shape all become 502 ``upstream_error`` with the status and a short
summary; the engine's own body goes to the server log. The engine is faked by a small HTTP
server in the test process (a third-party service the tests cannot run)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.support.live_server import LiveServer

SECRET = "SECRET-db-password-at-/srv/internal/keys"


def secret_of(behaviour: str) -> str:
    return f"{SECRET}/{behaviour}"


class FakeEngine(BaseHTTPRequestHandler):
    """``/<behaviour>/v1/chat/completions`` answers as ``behaviour`` says."""

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _events(self, *events: object) -> None:
        body = b"".join(b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n\n" for e in events)
        self._send(200, body, "text/event-stream")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        behaviour = self.path.strip("/").split("/")[0]
        SECRET = secret_of(behaviour)  # each behaviour its own, to find it in the log
        chunk = {"choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}]}
        done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        if behaviour == "ok":
            self._events(chunk, done, b"[DONE]")
        elif behaviour in ("moved", "temporary"):
            status = 301 if behaviour == "moved" else 307
            self._send(status, f"<a href='http://10.0.0.7/{SECRET}'>moved</a>".encode(), "text/html", location=f"http://10.0.0.7/{SECRET}")
        elif behaviour == "broken":
            body = {"error": {"message": f"database down: {SECRET}", "type": "server_error", "code": "db_unavailable"}}
            self._send(500, json.dumps(body).encode(), "application/json")
        elif behaviour == "denied":
            self._send(401, f"<html>{SECRET}</html>".encode(), "text/html")
        elif behaviour == "page":
            self._send(200, f"<html><body>{SECRET}</body></html>".encode(), "text/html")
        elif behaviour == "error-event":
            self._events(chunk, {"error": {"message": f"overloaded: {SECRET}", "code": "overloaded"}})
        elif behaviour == "odd-shape":
            self._events({"choices": SECRET})
        else:
            self._send(404, b"no such behaviour", "text/plain")


@pytest.fixture(scope="module")
def engine() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeEngine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def remote_model(live_server: LiveServer, engine: str, behaviour: str) -> str:
    name = f"upstream-{behaviour}"
    r = httpx.post(
        f"{live_server.url}/api/v1/models",
        json={"name": name, "base_url": f"{engine}/{behaviour}/v1", "upstream_model": "fake", "context_length": 2048},
        timeout=30,
    )
    assert r.status_code in (201, 409), r.text
    return name


def chat(live_server: LiveServer, model: str, stream: bool) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "stream": stream}
    return httpx.post(f"{live_server.v1}/chat/completions", json=body, timeout=60)


def test_a_working_engine_is_proxied(live_server: LiveServer, engine: str) -> None:
    r = chat(live_server, remote_model(live_server, engine, "ok"), stream=False)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "Hello"


@pytest.mark.parametrize(
    ("behaviour", "summary"),
    [
        ("moved", "answered 301 Moved Permanently, a redirect; plinth does not follow"),
        ("temporary", "answered 307 Temporary Redirect, a redirect"),
        ("broken", "answered 500 Internal Server Error (code: db_unavailable)"),
        ("denied", "answered 401 Unauthorized"),
        ("page", "answered 200 without an event stream (content-type text/html)"),
        ("error-event", "reported an error mid-stream (code: overloaded)"),
        ("odd-shape", "sent an event in an unexpected shape"),
    ],
)
def test_engine_failures_are_502_with_a_short_summary(live_server: LiveServer, engine: str, behaviour: str, summary: str) -> None:
    model = remote_model(live_server, engine, behaviour)
    r = chat(live_server, model, stream=False)
    assert r.status_code == 502, r.text
    err = r.json()["error"]
    assert err["code"] == "upstream_error" and err["type"] == "server_error"
    assert err["message"] == f"the engine of model {model!r} {summary}" or err["message"].startswith(
        f"the engine of model {model!r} {summary}"
    ), err["message"]
    assert SECRET not in r.text and "10.0.0.7" not in r.text and engine not in r.text

    # Streaming: the same error as an event in OpenAI's stream shape, then [DONE].
    s = chat(live_server, model, stream=True)
    assert s.status_code == 200
    events = [line[6:] for line in s.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    err = json.loads(events[-2])["error"]
    assert err["code"] == "upstream_error" and summary in err["message"]
    assert SECRET not in s.text and engine not in s.text

    # The engine's own words are kept for the operator, in the server log.
    assert secret_of(behaviour) in live_server.log_text()
