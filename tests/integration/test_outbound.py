"""Shared use, the outbound side, on live servers with real local HTTP servers as targets
(ADR 0080-0082):

- a server with no allow-list refuses to register a remote engine at any internal address,
  in any spelling (decimal, octal, hex, IPv4-mapped IPv6, a name that resolves inward, user
  information tricks): 400 naming the address and the rule, nothing stored, nothing sent;
  and URL ingestion of knowledge bases and datasets is refused the same way;
- a server whose operator allows 127.0.0.1 serves the same engine end to end, with its API
  key from a named secret that never appears in an answer, the log or the audit log; a
  redirect from an allowed document URL to a refused address fails that document;
- forwarded headers are believed only from PLINTH_TRUSTED_PROXIES.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from subprocess import CompletedProcess
from typing import Any

import httpx
import pytest

from tests.support import cli
from tests.support.http_targets import Answer, Seen, Target, events, redirect, serve, text
from tests.support.live_server import LiveServer, server_env, start_server, stop_server

SECRET = "sk-outbound-test-5f0e9a1c7d"
HTML = "<html><head><title>Dental</title></head><body><h1>Dental cover</h1><p>Two check-ups a year are covered in full.</p></body></html>"
JSONL = "".join(json.dumps({"prompt": f"question {i}?", "completion": f"answer {i}."}) + "\n" for i in range(12))


def _chat(seen: Seen) -> Answer:
    """A remote engine that wants the secret as its key; with another key it answers 401 and
    echoes the header it got (as some engines do), so a leak would show."""
    if seen.headers.get("authorization") != f"Bearer {SECRET}":
        return Answer(401, f"bad key: {seen.headers.get('authorization')}".encode(), "text/plain")
    chunk = {"choices": [{"index": 0, "delta": {"content": "Covered."}, "finish_reason": None}]}
    done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    return Answer(200, events(chunk, done, b"[DONE]"), "text/event-stream")


def _echo(seen: Seen) -> Answer:
    return Answer(500, json.dumps({"error": {"message": f"I got {seen.headers.get('authorization')}", "code": "echo"}}).encode())


@pytest.fixture(scope="module")
def engine() -> Iterator[Target]:
    routes = {
        "/v1/chat/completions": _chat,
        "/echo/v1/chat/completions": _echo,
        "/docs/dental.html": text(HTML, "text/html; charset=utf-8"),
        "/docs/moved": redirect("http://127.0.0.2:9/admin"),
        "/data/faq.jsonl": text(JSONL, "application/x-ndjson"),
    }
    with serve(routes) as t:
        yield t


COMMON = {"PLINTH_PRELOAD_DEFAULT_MODEL": "false", "PLINTH_JOBS_LOCAL_WORKER": "false", "PLINTH_THREADS": "1"}


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """What a fresh server does: no allow-list, no trusted proxy."""
    server = start_server(tmp_path_factory.mktemp("closed-home"), **COMMON)
    yield server
    stop_server(server)
    assert "Traceback" not in server.log_text(), server.log_text()[-5000:]


@pytest.fixture(scope="module")
def opened(tmp_path_factory: pytest.TempPathFactory, engine: Target) -> Iterator[LiveServer]:
    """An operator who runs engines on this machine: 127.0.0.1 allowed, a named secret, a proxy on loopback."""
    server = start_server(
        tmp_path_factory.mktemp("open-home"),
        PLINTH_OUTBOUND_ALLOW='["127.0.0.1"]',
        PLINTH_SECRETS=json.dumps({"engine-key": SECRET, "openai-only": {"value": "sk-other", "hosts": ["api.openai.com"]}}),
        PLINTH_TRUSTED_PROXIES='["127.0.0.1"]',
        **COMMON,
    )
    yield server
    stop_server(server)
    log = server.log_text()
    assert "Traceback" not in log, log[-5000:]
    assert SECRET not in log  # whatever the engine echoed, the log has it redacted


def api(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url + "/api/v1", timeout=120)


def internal_urls(port: int) -> list[tuple[str, str]]:
    return [
        (f"http://127.0.0.1:{port}/v1", "address 127.0.0.1 is loopback"),
        (f"http://2130706433:{port}/v1", "address 127.0.0.1 of host 2130706433 is loopback"),
        (f"http://017700000001:{port}/v1", "address 127.0.0.1 of host 017700000001 is loopback"),
        (f"http://0x7f.1:{port}/v1", "address 127.0.0.1 of host 0x7f.1 is loopback"),
        (f"http://[::ffff:127.0.0.1]:{port}/v1", "address 127.0.0.1 of host ::ffff:127.0.0.1"),
        (f"http://localhost:{port}/v1", "address 127.0.0.1 of host localhost is loopback"),
        (f"http://allowed@127.0.0.1:{port}/v1", "has user information before the host"),
        (f"http://[::1]:{port}/v1", "address ::1 is loopback"),
        (f"http://0.0.0.0:{port}/v1", "address 0.0.0.0 is unspecified"),
        ("http://10.1.2.3:8000/v1", "address 10.1.2.3 is private"),
        ("http://172.16.5.4/v1", "address 172.16.5.4 is private"),
        ("http://192.168.1.20/v1", "address 192.168.1.20 is private"),
        ("http://100.64.0.7/v1", "carrier-grade NAT"),
        ("http://169.254.169.254/latest/meta-data/", "address 169.254.169.254 is link-local (cloud metadata), never fetched"),
        ("http://[fd00:ec2::254]/latest/", "cloud metadata (AWS IPv6), never fetched"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata service, never fetched"),
        ("gopher://127.0.0.1:6379/_INFO", "scheme 'gopher' is not fetched"),
    ]


def test_a_server_without_an_allow_list_registers_no_internal_engine(closed: LiveServer, engine: Target) -> None:
    before = len(engine.seen)
    with api(closed) as c:
        for i, (url, words) in enumerate(internal_urls(engine.port)):
            r = c.post("/models", json={"name": f"probe-{i}", "base_url": url, "upstream_model": "x"})
            assert r.status_code == 400, (url, r.text)
            body = r.json()["error"]
            assert body["code"] == "invalid_request" and body["param"] == "base_url", url
            assert words in body["message"], (url, body["message"])
            assert "allowed@" not in body["message"]
        names = {m["name"] for m in c.get("/models").json()["models"]}
    assert not any(n.startswith("probe-") for n in names)  # nothing stored
    assert len(engine.seen) == before  # nothing sent


def test_registration_fails_closed_without_the_setting_and_works_with_it(closed: LiveServer, opened: LiveServer, engine: Target) -> None:
    body = {"name": "acme-remote", "base_url": engine.url("/v1"), "upstream_model": "acme", "api_key_secret": "engine-key"}
    with api(closed) as c:
        r = c.post("/models", json=body)
        assert r.status_code == 400 and "refused unless PLINTH_OUTBOUND_ALLOW lists it" in r.json()["error"]["message"]
        assert c.get("/models/acme-remote").status_code == 404
    with api(opened) as c:
        r = c.post("/models", json=body)
        assert r.status_code == 201, r.text
        shown = c.get("/models/acme-remote").json()
    assert shown["parameters"]["api_key_secret"] == "engine-key" and SECRET not in json.dumps(shown)
    chat = {"model": "acme-remote", "messages": [{"role": "user", "content": "Is dental covered?"}], "max_tokens": 8}
    r = httpx.post(opened.v1 + "/chat/completions", json=chat, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Covered."
    with httpx.stream("POST", opened.v1 + "/chat/completions", json={**chat, "stream": True}, timeout=60) as s:
        streamed = "".join(s.iter_text())
    assert "Covered." in streamed and streamed.rstrip().endswith("data: [DONE]")
    assert engine.seen[-1].headers["authorization"] == f"Bearer {SECRET}"


def test_secrets_are_named_never_shown(opened: LiveServer, engine: Target) -> None:
    with api(opened) as c:
        r = c.post("/models", json={"name": "no-such-secret", "base_url": engine.url("/v1"), "api_key_secret": "AWS_SECRET_ACCESS_KEY"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "api_key_secret"
        assert "unknown secret 'AWS_SECRET_ACCESS_KEY'" in r.json()["error"]["message"]
        r = c.post("/models", json={"name": "wrong-host", "base_url": engine.url("/v1"), "api_key_secret": "openai-only"})
        assert r.status_code == 400 and "may only be sent to api.openai.com, not to 127.0.0.1" in r.json()["error"]["message"]
        r = c.post("/models", json={"name": "env-key", "base_url": engine.url("/v1"), "api_key_env": "HOME"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "api_key_env" and "no longer accepted" in r.json()["error"]["message"]
        for name in ("no-such-secret", "wrong-host", "env-key"):
            assert c.get(f"/models/{name}").status_code == 404
        r = c.post("/models", json={"name": "echoing", "base_url": engine.url("/echo/v1"), "api_key_secret": "engine-key"})
        assert r.status_code == 201, r.text
        answers = [r.text, c.get("/models").text, c.get("/models/echoing").text]
    chat = {"model": "echoing", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    r = httpx.post(opened.v1 + "/chat/completions", json=chat, timeout=60)
    assert (
        r.status_code == 502
        and r.json()["error"]["message"] == "the engine of model 'echoing' answered 500 Internal Server Error (code: echo)"
    )
    answers.append(r.text)
    with httpx.stream("POST", opened.v1 + "/chat/completions", json={**chat, "stream": True}, timeout=60) as s:
        answers.append(s.read().decode())
    assert engine.seen[-1].headers["authorization"] == f"Bearer {SECRET}"  # it was sent, to the engine only
    with api(opened) as c:
        answers.append(c.get("/audit", params={"limit": 1000}).text)
    for text_ in answers:
        assert SECRET not in text_
    log = opened.log_text()
    assert SECRET not in log and "Bearer [secret]" in log  # the engine's echo, redacted in the log


def test_url_ingestion_goes_through_the_same_rules(closed: LiveServer, opened: LiveServer, engine: Target) -> None:
    for server in (closed, opened):
        with api(server) as c:
            assert c.post("/knowledge-bases", json={"name": "web"}).status_code == 201
    before = len(engine.seen)
    with api(closed) as c:
        r = c.post("/knowledge-bases/web/documents", json={"urls": [engine.url("/docs/dental.html")]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "urls.0" and "loopback" in r.json()["error"]["message"]
        r = c.post("/knowledge-bases/web/documents", json={"urls": ["http://169.254.169.254/latest/user-data"]})
        assert r.status_code == 400 and "never fetched" in r.json()["error"]["message"]
        r = c.post("/datasets", json={"name": "faq", "url": engine.url("/data/faq.jsonl")})
        assert r.status_code == 400 and r.json()["error"]["param"] == "url" and "loopback" in r.json()["error"]["message"]
        assert c.get("/knowledge-bases/web").json()["version"] == 0
        assert c.get("/datasets/faq").status_code == 404
    assert len(engine.seen) == before
    with api(opened) as c:
        r = c.post("/knowledge-bases/web/documents", json={"urls": [engine.url("/docs/dental.html"), engine.url("/docs/moved")]})
        assert r.status_code == 200, r.text
        files = {f["name"]: f for f in r.json()["files"]}
        dental, moved = files[f"127.0.0.1:{engine.port}/docs/dental.html"], files[f"127.0.0.1:{engine.port}/docs/moved"]
        assert dental["outcome"] == "added"
        assert moved["outcome"] == "failed" and "redirected to http://127.0.0.2:9/admin" in moved["error"]
        assert "address 127.0.0.2 is loopback" in moved["error"]
        doc = c.get(f"/knowledge-bases/web/documents/127.0.0.1:{engine.port}/docs/dental.html").json()
        assert doc["metadata"]["source_url"] == engine.url("/docs/dental.html") and "check-ups" in doc["text"]
        r = c.post("/datasets", json={"name": "faq", "url": engine.url("/data/faq.jsonl")})
        assert r.status_code == 201, r.text
        assert r.json()["source"]["name"] == engine.url("/data/faq.jsonl") and r.json()["rows"] == 12
        r = c.post("/datasets", json={"name": "faq2", "url": engine.url("/data/faq.jsonl"), "path": "x.jsonl"})
        assert r.status_code == 400 and "exactly one of 'path'" in r.json()["error"]["message"]


def _audit_client(server: LiveServer, marker: str, forwarded: str) -> Any:
    """The client address the audit log recorded for a request sent with X-Forwarded-For."""
    with api(server) as c:
        r = c.delete(f"/knowledge-bases/{marker}", headers={"X-Forwarded-For": forwarded, "X-Forwarded-Proto": "https"})
        assert r.status_code == 404, r.text  # audited all the same
        for _ in range(50):  # the audit entry may land just after the answer
            entries = c.get("/audit", params={"limit": 1000}).json()["entries"]
            mine = [e for e in entries if marker in json.dumps(e)]
            if mine:
                break
            time.sleep(0.1)
    assert mine, entries[:5]
    return {e["details"].get("client") for e in mine}


def test_forwarded_headers_are_believed_only_from_trusted_proxies(closed: LiveServer, opened: LiveServer) -> None:
    assert _audit_client(closed, "fwd-closed", "203.0.113.9") == {"127.0.0.1"}  # the real peer
    assert _audit_client(opened, "fwd-open", "203.0.113.9") == {"203.0.113.9"}  # the proxy on 127.0.0.1 is trusted


def _cli(server: LiveServer, *args: str, **env: str) -> CompletedProcess[str]:
    """``plinth ARGS`` with the server's settings but its port, in this process (tests/support/cli.py)."""
    port = int(server.url.rsplit(":", 1)[1])
    full = server_env(server.home, port, **env)
    full.pop("PLINTH_PORT")
    return cli.plinth(server.home, *args, **{k: v for k, v in full.items() if k.startswith("PLINTH_")})


def test_the_cli_fetches_through_the_same_rules(closed: LiveServer, opened: LiveServer, engine: Target) -> None:
    url = engine.url("/docs/dental.html")
    out = _cli(closed, "kb", "add", "web", "--url", url)
    assert out.returncode == 2 and "loopback: refused unless PLINTH_OUTBOUND_ALLOW lists it" in out.stderr, out.stderr
    out = _cli(closed, "datasets", "add", "--name", "cli-faq", "--url", engine.url("/data/faq.jsonl"))
    assert out.returncode == 2 and "loopback" in out.stderr, out.stderr
    out = _cli(closed, "models", "add", "--name", "cli-remote", "--url", "http://169.254.169.254/v1")
    assert out.returncode == 2 and "link-local (cloud metadata), never fetched" in out.stderr, out.stderr
    allow = {"PLINTH_OUTBOUND_ALLOW": '["127.0.0.1"]'}
    out = _cli(opened, "datasets", "add", "--name", "cli-faq", "--url", engine.url("/data/faq.jsonl"), **allow)
    assert out.returncode == 0 and "added cli-faq@1" in out.stdout, out.stdout + out.stderr
    out = _cli(opened, "kb", "create", "cli-web", **allow)
    assert out.returncode == 0, out.stderr
    out = _cli(opened, "kb", "add", "cli-web", "--url", url, "--json", **allow)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["files"][0]["outcome"] == "added"
