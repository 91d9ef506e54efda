"""A stream whose producer fails mid-way (any exception, not only PlinthError) is never cut off
silently: the failure is logged with its traceback, counted in ``plinth_stream_errors_total``,
the client gets one error event in the stream's shape and the response ends cleanly.

The real app (``create_app`` on real services) is served by uvicorn on a real socket in this
process, so the test can add producers that fail the way a bug would (the session live server
must not log tracebacks, and its producers cannot be made to fail on purpose).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn

from plinth.api.streaming import SSEResponse
from plinth.errors import ErrorCode, PlinthError
from tests.support.live_server import free_port


class Boom(RuntimeError):
    pass


async def failing(after: int, exc: Exception) -> AsyncIterator[bytes]:
    for i in range(after):
        yield b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": f"piece {i}"}}]}).encode() + b"\n\n"
    raise exc


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from plinth.api.app import create_app
    from plinth.config import load_settings
    from plinth.services import build_services

    settings = load_settings(home=tmp_path_factory.mktemp("stream-home"), preload_default_model=False, jobs_local_worker=False)
    services = build_services(settings)
    app = create_app(services)

    def openai_stream() -> SSEResponse:
        return SSEResponse(failing(2, Boom("a bug half-way through")))

    def canonical_stream() -> SSEResponse:
        def event(err: PlinthError) -> bytes:
            return b"event: error\ndata: " + json.dumps(err.to_canonical()).encode() + b"\n\n"

        return SSEResponse(failing(1, KeyError("lost")), error_event=event)

    def plinth_error_stream() -> SSEResponse:
        return SSEResponse(failing(1, PlinthError(ErrorCode.UPSTREAM_ERROR, "the engine went away")))

    app.add_api_route("/test/failing-stream", openai_stream)
    app.add_api_route("/test/failing-canonical", canonical_stream)
    app.add_api_route("/test/failing-plinth-error", plinth_error_stream)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(30)
    services.close()


def metric(url: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def read_stream(url: str) -> list[str]:
    """Every SSE line of a complete response (httpx raises if the response is cut off)."""
    with httpx.stream("GET", url, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        return [line for line in r.iter_lines() if line]


def test_an_unexpected_failure_mid_stream_is_logged_counted_and_told(served: str, caplog: pytest.LogCaptureFixture) -> None:
    route = "/test/failing-stream"
    before = metric(served, "plinth_stream_errors_total", route=route)
    internal_before = metric(served, "plinth_errors_total", code="internal_error")
    with caplog.at_level(logging.ERROR, logger="plinth.api"):
        lines = read_stream(served + route)
    # the pieces sent before the failure, then one error in OpenAI's stream shape, then [DONE]
    assert [json.loads(line[6:])["choices"][0]["delta"]["content"] for line in lines[:2]] == ["piece 0", "piece 1"]
    error = json.loads(lines[2].removeprefix("data: "))["error"]
    assert error["code"] == "internal_error" and error["type"] == "server_error"
    assert "a bug half-way through" not in lines[2]  # the exception's text stays in the log
    assert lines[3:] == ["data: [DONE]"]
    # the server log has the failure with its traceback
    (record,) = [r for r in caplog.records if r.name == "plinth.api" and "failed mid-way" in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is Boom
    assert route in record.getMessage()
    assert metric(served, "plinth_stream_errors_total", route=route) == before + 1
    assert metric(served, "plinth_errors_total", code="internal_error") == internal_before + 1


def test_the_caller_chooses_the_error_event_shape(served: str) -> None:
    lines = read_stream(served + "/test/failing-canonical")
    assert lines[-2] == "event: error"
    assert json.loads(lines[-1].removeprefix("data: ")) == {
        "error": {"code": "internal_error", "message": "internal error while streaming; the server log has the details"}
    }


def test_a_plinth_error_mid_stream_is_told_as_it_is(served: str) -> None:
    route = "/test/failing-plinth-error"
    lines = read_stream(served + route)
    assert json.loads(lines[-2].removeprefix("data: "))["error"]["code"] == "upstream_error"
    assert lines[-1] == "data: [DONE]"
    assert metric(served, "plinth_stream_errors_total", route=route) == 1


def test_the_server_still_answers(served: str) -> None:
    assert httpx.get(served + "/healthz", timeout=10).status_code == 200
