"""Team mode: two `plinth up` servers on one Postgres database. A key's requests-per-minute and
token budget hold exactly across both under concurrent requests, a deployment made on one is
served by the other, and when a canary fails on both, exactly one of them rolls it back."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import openai
import pytest

from plinth.deployments.routing import unit
from tests.integration.test_deployments_auth import _client, _h, _together, bootstrap_admin_key
from tests.support.live_server import MODEL, LiveServer, start_server, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
MESSAGES = [{"role": "user", "content": "Is physiotherapy covered?"}]


@pytest.fixture
def team(postgres_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer, str]]:
    root = bootstrap_admin_key(tmp_path / "a", "--database-url", postgres_url)
    env = {
        "PLINTH_DATABASE_URL": postgres_url,
        "PLINTH_AUTH": "true",
        "PLINTH_MAX_BATCH_SIZE": "4",
        "PLINTH_MAX_QUEUED_PER_MODEL": "32",
        "PLINTH_CONTEXT_LENGTH": "1024",
        "PLINTH_THREADS": "1",
        "PLINTH_JOBS_LOCAL_WORKER": "false",
        "PLINTH_OUTBOUND_ALLOW": '["127.0.0.1"]',  # a remote model on loopback is registered (ADR 0080)
    }
    a = start_server(tmp_path / "a", **env)
    try:
        b = start_server(tmp_path / "b", **env)
    except BaseException:
        stop_server(a)
        raise
    yield a, b, root
    for s in (a, b):
        stop_server(s)
        assert "Traceback" not in s.log_text(), s.log_text()[-5000:]


def _key(server: LiveServer, root: str, name: str, **body: object) -> str:
    r = httpx.post(f"{server.url}/api/v1/keys", headers=_h(root), json={"name": name, "scopes": ["inference"], **body}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["key"]


def test_limits_hold_across_servers_and_one_server_rolls_back(team: tuple[LiveServer, LiveServer, str]) -> None:
    a, b, root = team
    servers = (a, b)
    # requests per minute: 12 concurrent requests, half on each server, limit 6
    rpm_key = _key(a, root, "team-rpm", requests_per_minute=6)
    if datetime.now(UTC).second > 40:
        time.sleep(61 - datetime.now(UTC).second)
    clients = [_client(servers[i % 2], rpm_key) for i in range(12)]
    out = _together(12, lambda i: clients[i].chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=1))
    assert sum(1 for o in out if not isinstance(o, Exception)) == 6, out
    assert sum(1 for o in out if isinstance(o, openai.RateLimitError)) == 6

    # a token budget: never overspent, whichever server answers
    budget_key = _key(b, root, "team-budget", budget_tokens=250, budget_period="day")
    clients = [_client(servers[i % 2], budget_key) for i in range(12)]
    out = _together(12, lambda i: clients[i].chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=20, seed=i))
    ok = [o for o in out if not isinstance(o, Exception)]
    assert ok and len(ok) < 12 and all(isinstance(o, openai.RateLimitError) for o in out if isinstance(o, Exception))
    spent = sum(o.usage.total_tokens for o in ok)
    assert spent <= 250
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        used = httpx.get(f"{a.url}/api/v1/keys/self", headers=_h(budget_key), timeout=30).json()["usage"]["budget"]["used"]
        if used == spent:
            break
        time.sleep(0.2)
    assert used == spent

    # a deployment made on A is served by B; its failing canary is rolled back exactly once
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    ha = httpx.Client(base_url=a.url + "/api/v1", headers=_h(root), timeout=60)
    assert ha.post("/models", json={"name": "team-gone", "base_url": f"http://127.0.0.1:{closed}/v1"}).status_code == 201
    rules = [{"metric": "error_rate", "comparison": "delta", "threshold": 0.2, "min_samples": 4}]
    assert ha.post("/deployments", json={"name": "team-bot", "model": MODEL, "rules": rules}).status_code == 201
    assert ha.post("/deployments/team-bot/canary", json={"model": "team-gone", "percent": 50}).status_code == 201
    time.sleep(2.5)  # B's deployment cache
    admin = [_client(s, root) for s in servers]
    # members whose sticky hash puts them on the canary, sent to A and B in turn
    members = [m for m in (f"member-{i}" for i in range(200)) if unit("team-bot", m) < 0.5][:12]
    errors = {0: 0, 1: 0}
    for i, member in enumerate(members):
        try:
            admin[i % 2].chat.completions.create(model="team-bot", messages=MESSAGES, max_tokens=1, user=member)
        except openai.APIStatusError as e:
            assert e.status_code == 502, e
            errors[i % 2] += 1
        if ha.get("/deployments/team-bot").json()["canary_revision"] is None:
            break
    assert errors[0] >= 2 and errors[1] >= 2, errors  # both servers saw the canary fail
    deadline = time.monotonic() + 20
    while ha.get("/deployments/team-bot").json()["canary_revision"] is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # give the other server's watcher time to try too
    kinds = [e["kind"] for e in ha.get("/deployments/team-bot/history").json()["events"]]
    assert kinds.count("auto_rollback") == 1, kinds
