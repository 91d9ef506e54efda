"""API keys on a live server with PLINTH_AUTH=true: every route but health needs a key (401),
scopes (403), model patterns, revocation at once, requests-per-minute and token budgets
enforced exactly under concurrent requests (429 with Retry-After, no overspend), usage by key,
and the audit log naming the key that acted."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support import cli
from tests.support.live_server import MODEL, LiveServer, start_server, stop_server

MESSAGES = [{"role": "user", "content": "Is physiotherapy covered?"}]


def bootstrap_admin_key(home: Path, *extra: str) -> str:
    """The first key of a server with auth on is made with the CLI, on the server's store."""
    out = cli.plinth(home, *extra, "keys", "create", "root", "--scope", "admin", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["key"]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    home = tmp_path_factory.mktemp("auth-home")
    root = bootstrap_admin_key(home)
    server = start_server(
        home,
        PLINTH_AUTH="true",
        PLINTH_MAX_BATCH_SIZE="4",
        PLINTH_MAX_QUEUED_PER_MODEL="32",
        PLINTH_CONTEXT_LENGTH="1024",
        PLINTH_AUTH_CACHE_TTL_S="30",
        PLINTH_THREADS="1",
    )
    yield server, root
    stop_server(server)
    assert "Traceback" not in server.log_text(), server.log_text()[-5000:]


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _key(server: LiveServer, root: str, name: str, **body: Any) -> str:
    r = httpx.post(f"{server.url}/api/v1/keys", headers=_h(root), json={"name": name, **body}, timeout=30)
    assert r.status_code == 201, r.text
    assert r.json()["key"].startswith("pk-") and "secret_hash" not in r.json()
    return r.json()["key"]


def _client(server: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key=key, max_retries=0, timeout=120)


def test_every_route_but_health_needs_a_key(secured: tuple[LiveServer, str]) -> None:
    server, root = secured
    spec = httpx.get(f"{server.url}/openapi.json", headers=_h(root), timeout=30).json()
    calls = [(m.upper(), p) for p, ops in spec["paths"].items() for m in ops]
    calls += [("GET", "/metrics"), ("GET", "/docs"), ("GET", "/openapi.json"), ("GET", "/docs-assets/swagger-ui.css"), ("GET", "/")]
    assert len(calls) > 60
    open_paths = {"/healthz", "/readyz"}
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for method, path in calls:
            url = path.replace("{", "").replace("}", "")  # /api/v1/models/{name} -> /api/v1/models/name
            for headers in ({}, {"Authorization": "Bearer pk-000000000000-" + "A" * 40}, {"Authorization": "Basic abc"}):
                r = c.request(method, url, headers=headers, json={} if method in ("POST", "PUT", "PATCH") else None)
                if path in open_paths:
                    assert r.status_code == 200, (method, path)
                    continue
                if path == "/api/v1/auth/login":  # open by design: where a session starts (the body is checked)
                    assert r.status_code == 400, (method, path, r.status_code, r.text)
                    continue
                assert r.status_code == 401, (method, path, r.status_code, r.text)
                assert r.headers["www-authenticate"].startswith("Bearer")
                err = r.json()["error"]
                assert err["code"] == "unauthenticated" and "AAAA" not in err["message"]
                if path.startswith("/v1"):
                    assert err["type"] == "authentication_error"  # the OpenAI shape
                else:
                    assert set(err) <= {"code", "message", "param", "details"}
        # a caller without a key is refused before its body is read
        big = c.post("/v1/chat/completions", content=b"x" * 2_000_000, headers={"content-type": "application/json"})
        assert big.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        _client(server, "pk-nope").models.list()
    assert len(_client(server, root).models.list().data) >= 1


def test_scopes(secured: tuple[LiveServer, str]) -> None:
    server, root = secured
    inference, reader, manager = (
        _key(server, root, n, scopes=[s]) for n, s in (("app", "inference"), ("reader", "read"), ("operator", "manage"))
    )
    with httpx.Client(base_url=server.url, timeout=60) as c:
        chat = {"model": MODEL, "messages": MESSAGES, "max_tokens": 1}
        assert c.post("/v1/chat/completions", headers=_h(inference), json=chat).status_code == 200
        denied = c.get("/api/v1/models", headers=_h(inference))
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "permission_denied"
        assert "read" in denied.json()["error"]["message"]
        assert c.get("/api/v1/models", headers=_h(reader)).status_code == 200
        assert c.get("/metrics", headers=_h(reader)).status_code == 200
        r = c.post("/v1/chat/completions", headers=_h(reader), json=chat)
        assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
        assert c.post("/api/v1/deployments", headers=_h(reader), json={"name": "acme-r", "model": MODEL}).status_code == 403
        assert c.post("/api/v1/deployments", headers=_h(manager), json={"name": "acme-chat", "model": MODEL}).status_code == 201
        assert c.get("/api/v1/keys", headers=_h(manager)).status_code == 403
        assert c.get("/api/v1/audit", headers=_h(manager)).status_code == 403
        me = c.get("/api/v1/keys/self", headers=_h(reader)).json()
        assert me["auth"] is True and me["name"] == "reader" and me["scopes"] == ["read"]
        audit = c.get("/api/v1/audit", headers=_h(root), params={"limit": 50}).json()["entries"]
        created = [e for e in audit if e["action"] == "deployment.create" and e["target"] == "acme-chat"]
        assert created and created[0]["actor"] == "key:operator"
        refused = [e for e in audit if e["actor"] == "key:reader" and e["details"].get("status") == 403]
        assert refused and "manage" in refused[0]["details"]["denied"]
        assert any(e["action"] == "key.create" and e["actor"] == "key:root" and e["after"]["name"] == "reader" for e in audit)


def test_model_patterns_and_revocation(secured: tuple[LiveServer, str]) -> None:
    server, root = secured
    r = httpx.post(f"{server.url}/api/v1/deployments", headers=_h(root), json={"name": "acme-pattern", "model": MODEL}, timeout=30)
    assert r.status_code == 201, r.text
    key = _key(server, root, "acme-only", scopes=["inference"], models=["acme-*"])
    client = _client(server, key)
    assert client.chat.completions.create(model="acme-pattern", messages=MESSAGES, max_tokens=1).model == "acme-pattern"
    with pytest.raises(openai.PermissionDeniedError) as e:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=1)
    assert e.value.body["code"] == "permission_denied"
    key_id = key.split("-")[1]
    assert httpx.delete(f"{server.url}/api/v1/keys/{key_id}", headers=_h(root), timeout=30).json()["revoked_at"]
    with pytest.raises(openai.AuthenticationError):  # at once, though the server caches keys for 30 s
        client.chat.completions.create(model="acme-pattern", messages=MESSAGES, max_tokens=1)


def _together(n: int, fn: Any) -> list[Any]:
    barrier = threading.Barrier(n)
    out: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = fn(i)
        except Exception as e:  # collected and asserted on
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return out


def test_requests_per_minute_are_exact_under_concurrency(secured: tuple[LiveServer, str]) -> None:
    server, root = secured
    key = _key(server, root, "rpm-3", scopes=["inference"], requests_per_minute=3)
    if datetime.now(UTC).second > 45:  # all six requests must fall into one minute window
        time.sleep(61 - datetime.now(UTC).second)
    clients = [_client(server, key) for _ in range(6)]
    out = _together(6, lambda i: clients[i].chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=1))
    limited = [o for o in out if isinstance(o, openai.RateLimitError)]
    assert len([o for o in out if not isinstance(o, Exception)]) == 3 and len(limited) == 3, out
    for e in limited:
        assert e.body["code"] == "rate_limited" and 1 <= int(e.response.headers["retry-after"]) <= 60


def test_a_token_budget_is_never_overspent_under_concurrency(secured: tuple[LiveServer, str]) -> None:
    server, root = secured
    budget = 200  # each request reserves its prompt (~35 tokens) + 8: only some of the twelve fit
    key = _key(server, root, "budget-200", scopes=["inference"], budget_tokens=budget, budget_period="day")
    clients = [_client(server, key) for _ in range(12)]
    out = _together(12, lambda i: clients[i].chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8, temperature=1.0, seed=i))
    ok = [o for o in out if not isinstance(o, Exception)]
    limited = [o for o in out if isinstance(o, openai.RateLimitError)]
    assert len(ok) + len(limited) == 12 and ok and limited, out
    spent = sum(o.usage.total_tokens for o in ok)
    assert spent <= budget
    assert all(int(e.response.headers["retry-after"]) >= 1 and e.body["code"] == "rate_limited" for e in limited)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        deadline = time.monotonic() + 10
        while True:  # reservations are settled by the usage writer a moment after each response
            me = c.get("/api/v1/keys/self", headers=_h(key)).json()
            if me["usage"]["budget"]["used"] == spent or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert me["usage"]["budget"] == {**me["usage"]["budget"], "used": spent, "limit": budget, "remaining": budget - spent}
        rows = c.get("/api/v1/usage", headers=_h(root), params={"group_by": "key,outcome", "key": me["id"]}).json()["rows"]
        by_outcome = {r["outcome"]: r for r in rows}
        assert by_outcome["ok"]["requests"] == len(ok) and by_outcome["ok"]["total_tokens"] == spent
        assert by_outcome["refused"]["requests"] == len(limited) and by_outcome["refused"]["total_tokens"] == 0
