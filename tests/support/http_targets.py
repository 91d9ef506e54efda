"""Real local HTTP servers as targets of the outbound fetcher (and fakes of remote engines).

:func:`serve` runs a ``ThreadingHTTPServer`` on an address (127.0.0.1, 127.0.0.2, ::1) and a
free port in a thread, answering each request with what its route returns, and records every
request it received (path, headers, the peer), so a test can tell a request that was refused
before it left from one that reached a server.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] | None = None  # sent one by one (chunked encoding), ``pause`` apart
    pause: float = 0.0
    delay: float = 0.0  # before the status line
    send_length: bool = True


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    peer: str
    body: bytes


Route = Callable[[Seen], Answer]


@dataclass
class Target:
    host: str
    port: int
    seen: list[Seen]
    routes: dict[str, Route]

    @property
    def origin(self) -> str:
        return f"http://[{self.host}]:{self.port}" if ":" in self.host else f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.origin + path


def _handler(target: Target) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, self.client_address[0], body)
            target.seen.append(seen)
            route = target.routes.get(self.path.split("?")[0]) or target.routes.get("*")
            answer = route(seen) if route else Answer(404, b"no such route")
            if answer.delay:
                time.sleep(answer.delay)
            self.send_response(answer.status)
            self.send_header("content-type", answer.content_type)
            for k, v in answer.headers.items():
                self.send_header(k, v)
            if answer.chunks is not None:
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                try:
                    for chunk in answer.chunks:
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        self.wfile.flush()
                        time.sleep(answer.pause)
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the client gave up: what the test wants to see
                    pass
                self.close_connection = True
                return
            if answer.send_length:
                self.send_header("content-length", str(len(answer.body)))
            else:
                self.close_connection = True
            self.end_headers()
            with suppress(OSError):  # the client gave up
                self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = _serve

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class _Server6(_Server):
    address_family = socket.AF_INET6


@contextmanager
def serve(routes: dict[str, Route] | None = None, host: str = "127.0.0.1", port: int = 0) -> Iterator[Target]:
    """A server on ``host`` answering ``routes`` (path -> function of the request; ``*`` for any)."""
    target = Target(host, 0, [], dict(routes or {}))
    cls = _Server6 if ":" in host else _Server
    server = cls((host, port), _handler(target))
    target.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield target
    finally:
        server.shutdown()
        server.server_close()


def text(body: str, content_type: str = "text/plain; charset=utf-8", status: int = 200, **headers: str) -> Route:
    return lambda _seen: Answer(status, body.encode(), content_type, dict(headers))


def redirect(location: str, status: int = 302) -> Route:
    return lambda _seen: Answer(status, b"", "text/plain", {"location": location})


def events(*items: Any) -> bytes:
    """An OpenAI-style event stream of ``items`` (dicts as JSON, bytes as they are)."""
    return b"".join(b"data: " + (i if isinstance(i, bytes) else json.dumps(i).encode()) + b"\n\n" for i in items)
