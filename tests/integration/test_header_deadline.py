"""Clients that trickle request headers, or connect and say nothing, are cut off after
``PLINTH_HEADER_TIMEOUT_S`` (408 when part of a request came, a plain close otherwise); a
request whose headers arrived in time is never cut, however long its body or answer takes.
Raw sockets against a live ``plinth up`` with a 2-second deadline."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.live_server import MODEL, LiveServer, start_server, stop_server

DEADLINE_S = 2
#: generous bound for "the server cut it off" (the deadline is 2 s; a busy machine is slow)
CUT_OFF_WITHIN_S = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    s = start_server(
        tmp_path_factory.mktemp("deadline-home"),
        PLINTH_HEADER_TIMEOUT_S=str(DEADLINE_S),
        PLINTH_PRELOAD_DEFAULT_MODEL="false",
        PLINTH_JOBS_LOCAL_WORKER="false",
    )
    yield s
    stop_server(s)
    assert "Traceback" not in s.log_text()


def connect(server: LiveServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=CUT_OFF_WITHIN_S)
    return sock


def trickle_until_cut(sock: socket.socket, first: bytes, piece: bytes) -> tuple[bytes, float]:
    """Send ``first``, then ``piece`` every 0.25 s until the server closes; returns what the
    server sent and how long the client kept trickling."""
    started = time.monotonic()
    sock.sendall(first)
    sock.settimeout(0.25)
    received = b""
    while time.monotonic() - started < CUT_OFF_WITHIN_S:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            with contextlib.suppress(OSError):  # the server closed: what it sent is still readable
                sock.sendall(piece)
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return received, time.monotonic() - started


def test_ten_clients_trickling_headers_each_get_408(server: LiveServer) -> None:
    results: list[tuple[bytes, float]] = []
    lock = threading.Lock()

    def client() -> None:
        with connect(server) as sock:
            got = trickle_until_cut(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-Slow: y\r\n")
        with lock:
            results.append(got)

    threads = [threading.Thread(target=client) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(CUT_OFF_WITHIN_S + 30)
    assert len(results) == 10
    for received, held in results:
        assert held < CUT_OFF_WITHIN_S, "the server kept a trickling client"
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), received[:200]
        assert b"connection: close" in head.lower()
        err = json.loads(body)["error"]
        assert err["code"] == "request_timeout" and "PLINTH_HEADER_TIMEOUT_S" in err["message"]
    # and the server serves others meanwhile and after
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200


def test_a_silent_connection_is_closed(server: LiveServer) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed, nothing sent: there was no request to answer
        assert time.monotonic() - started < CUT_OFF_WITHIN_S


def test_a_kept_alive_connection_that_starts_trickling_is_cut_too(server: LiveServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b"\r\n\r\n" not in first or not first.endswith(b"}"):
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        received, held = trickle_until_cut(sock, b"GET /healthz HTTP/1.1\r\n", b"X-Slow: y\r\n")
    assert held < CUT_OFF_WITHIN_S
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]


def test_headers_sent_in_pieces_within_the_deadline_are_served(server: LiveServer) -> None:
    with connect(server) as sock:
        for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"Connection: close\r\n\r\n"):
            sock.sendall(piece)
            time.sleep(0.2)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 "), received[:200]


def test_a_slow_body_and_a_long_answer_are_not_cut(server: LiveServer) -> None:
    """The deadline covers headers only: a body trickled over longer than the deadline reaches
    the app, and an answer that takes longer than the deadline (loading a model) arrives."""
    body = json.dumps({"name": "x"}).encode()
    with connect(server) as sock:
        sock.sendall(
            b"POST /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        )
        for i in range(len(body)):
            sock.sendall(body[i : i + 1])
            time.sleep((DEADLINE_S * 1.5) / len(body))
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 400 "), received[:300]  # the app's own answer to this body
    assert b"give exactly one of 'path'" in received
    r = httpx.post(f"{server.url}/api/v1/models/{MODEL}/load", timeout=CUT_OFF_WITHIN_S * 3)
    assert r.status_code == 200, r.text
