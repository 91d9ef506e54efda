"""Deployments through the live server and the official openai client (auth off, as for
`make demo`): the README walkthrough — deploy the base model as acme-assistant, a fine-tuned
registry version on a canary behind its evaluation gate, the split in usage, sticky users,
promote, roll back — then an automatic rollback of a canary whose runtime fails, feedback and
the rollback it can trigger, the CLI's view, and error shapes."""

from __future__ import annotations

import math
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import httpx
import openai
import pytest

from plinth.config import load_settings
from plinth.domain.tracking import EvalReport
from plinth.services import build_services
from tests.support import cli
from tests.support.adapters import LLAMA_ATTN, random_peft_llama_tensors, write_peft_dir
from tests.support.live_server import MODEL, LiveServer

MESSAGES = [{"role": "user", "content": "What does the Gold plan cover?"}]


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]


@pytest.fixture(scope="module")
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url + "/api/v1", timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def faq(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Two registered versions of a fine-tune (as `plinth tune` registers them), on the live
    server's store; version 2 has an evaluation report that passes the gate, version 1 not."""
    tmp = tmp_path_factory.mktemp("deploy-faq")
    s = build_services(load_settings(home=live_server.home, threads=1))
    try:
        refs = []
        for seed in (1, 2):
            tensors = random_peft_llama_tensors(
                n_layers=30, hidden=576, n_head=9, n_head_kv=3, ffn=1536, r=4, modules=LLAMA_ATTN, seed=seed, scale=0.3
            )
            d = write_peft_dir(tmp / f"v{seed}", tensors, r=4, alpha=8.0, target_modules=list(LLAMA_ATTN))
            mv = s.registry.register_adapter("deploy-faq", base_model=MODEL, adapter_dir=d, dataset="acme-faq@1")
            s.registry.attach_report(
                EvalReport(
                    id=f"deployfaq{seed}",
                    model=mv.ref,
                    dataset="acme-faq@1",
                    split="validation",
                    metrics={"rouge_l": 0.2 * seed + 0.05},
                    registry_name=mv.name,
                    registry_version=mv.version,
                )
            )
            refs.append(mv.ref)
        return refs
    finally:
        s.close()


def _ask(client: Any, model: str, **kw: Any) -> tuple[Any, dict[str, str]]:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, **{"max_tokens": 1, **kw})
    return raw.parse(), {k.lower(): v for k, v in raw.headers.items()}


def _usage_by_revision(api: httpx.Client, name: str, expected_total: int) -> dict[int, int]:
    deadline = time.monotonic() + 10
    while True:
        r = api.get("/usage", params={"group_by": "revision", "deployment": name, "since": "1h"})
        assert r.status_code == 200, r.text
        rows = {row["revision"]: row["requests"] for row in r.json()["rows"]}
        if sum(rows.values()) >= expected_total or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def _cli(home: Path, *args: str) -> CompletedProcess[str]:
    return cli.plinth(home, *args, COLUMNS="160")


def test_readme_walkthrough(live_server: LiveServer, client: Any, api: httpx.Client, faq: list[str]) -> None:
    r = api.post("/deployments", json={"name": "acme-assistant", "model": MODEL})
    assert r.status_code == 201, r.text
    assert r.json()["traffic"] == {"1": 100.0}
    assert "acme-assistant" in {m.id for m in client.models.list().data}
    assert client.models.retrieve("acme-assistant").id == "acme-assistant"
    resp, headers = _ask(client, "acme-assistant")
    assert resp.model == "acme-assistant" and headers["x-plinth-revision"] == "1" and headers["x-plinth-model-version"] == MODEL

    # the evaluation gate: version 1 (rouge_l 0.25) is refused, version 2 (0.45) gets 10%
    assert (
        api.patch("/deployments/acme-assistant", json={"gate": [{"metric": "rouge_l", "min": 0.3, "dataset": "acme-faq"}]}).status_code
        == 200
    )
    refused = _error(api.post("/deployments/acme-assistant/canary", json={"model": faq[0], "percent": 10}), 409, "conflict")
    assert "rouge_l 0.25" in refused["message"]
    r = api.post("/deployments/acme-assistant/canary", json={"model": faq[1], "percent": 10})
    assert r.status_code == 201, r.text
    assert r.json()["traffic"] == {"1": 90.0, "2": 10.0} and r.json()["canary"]["targets"][0]["version"] == faq[1]

    # the split, as the headers show it and as usage counts it (at 50%, so a few requests tell;
    # the accuracy of the split is measured on many draws in tests/unit/deployments)
    assert api.put("/deployments/acme-assistant/traffic", json={"percent": 50}).status_code == 200
    n = 24
    revisions = Counter(_ask(client, "acme-assistant")[1]["x-plinth-revision"] for _ in range(n))
    assert abs(revisions["2"] - n / 2) <= 4.5 * math.sqrt(n / 4), revisions  # binomial, 4.5 sigma
    usage = _usage_by_revision(api, "acme-assistant", n + 1)
    assert usage == {1: revisions["1"] + 1, 2: revisions["2"]}  # +1: the first request above
    canary_ok = live_server.metric(
        "plinth_deployment_requests_total", deployment="acme-assistant", revision="2", role="canary", outcome="ok"
    )
    assert canary_ok == revisions["2"]

    # sticky: one member keeps one revision, by the user field or by the header
    by_user = {_ask(client, "acme-assistant", user="member-42")[1]["x-plinth-revision"] for _ in range(4)}
    assert len(by_user) == 1
    sticky = {
        httpx.post(
            f"{live_server.v1}/chat/completions",
            headers={"X-Plinth-User": "member-7"},
            json={"model": "acme-assistant", "messages": MESSAGES, "max_tokens": 1},
            timeout=60,
        ).headers["x-plinth-revision"]
        for _ in range(4)
    }
    assert len(sticky) == 1

    # the CLI sees the same deployment: the split and the rule windows
    out = _cli(live_server.home, "deploy", "status", "acme-assistant")
    assert out.returncode == 0, out.stderr
    assert "r2 canary" in out.stdout and "50%" in out.stdout and "rollout rules" in out.stdout
    usage_cli = _cli(live_server.home, "usage", "--by", "revision", "--deployment", "acme-assistant", "--since", "1h")
    assert usage_cli.returncode == 0 and "50" not in usage_cli.stderr

    # promote: all traffic on the fine-tune; roll back: all on the base again
    r = api.post("/deployments/acme-assistant/promote")
    assert r.status_code == 200 and r.json()["traffic"] == {"2": 100.0}
    assert {_ask(client, "acme-assistant")[1]["x-plinth-model-version"] for _ in range(2)} == {faq[1]}
    r = api.post("/deployments/acme-assistant/rollback", json={"reason": "members report wrong answers"})
    assert r.status_code == 200 and r.json()["traffic"] == {"1": 100.0}
    assert {_ask(client, "acme-assistant")[1]["x-plinth-revision"] for _ in range(2)} == {"1"}

    events = api.get("/deployments/acme-assistant/history").json()["events"]
    kinds = [e["kind"] for e in events]
    assert kinds[:6] == ["rolled_back", "promoted", "traffic", "canary", "gate_refused", "rules"] and kinds[-1] == "created"
    assert events[0]["reason"] == "members report wrong answers" and events[0]["details"]["previous_stable"] == 2
    audit = api.get("/audit", params={"target": "acme-assistant"}).json()["entries"]
    actions = [e["action"] for e in audit]
    assert actions == [
        "deployment.rolled_back",
        "deployment.promote",
        "deployment.traffic",
        "deployment.canary",
        "deployment.configure",
        "deployment.create",
    ]  # one entry per action, none doubled by the HTTP layer
    assert audit[0]["before"]["stable_revision"] == 2 and audit[0]["after"]["stable_revision"] == 1
    assert audit[0]["actor"] == "anonymous" and audit[0]["details"]["request"] == "POST /api/v1/deployments/acme-assistant/rollback"
    http_level = api.get("/audit", params={"action": "http", "limit": 1000}).json()["entries"]
    # ...only the refused canary, which no service recorded, is in the log as an HTTP call
    refused_calls = [e for e in http_level if e["target"].startswith("/api/v1/deployments/acme-assistant")]
    assert [(e["action"], e["details"]["status"]) for e in refused_calls] == [("http POST /api/v1/deployments/{name}/canary", 409)]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_no_canary(api: httpx.Client, name: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = api.get(f"/deployments/{name}").json()
        if d["canary_revision"] is None:
            return d
        time.sleep(0.2)
    raise AssertionError(api.get(f"/deployments/{name}/status").json())


def test_a_canary_whose_runtime_fails_is_rolled_back(live_server: LiveServer, client: Any, api: httpx.Client) -> None:
    r = api.post("/models", json={"name": "gone-upstream", "base_url": f"http://127.0.0.1:{_closed_port()}/v1", "upstream_model": "x"})
    assert r.status_code == 201, r.text
    rules = [{"metric": "error_rate", "comparison": "delta", "threshold": 0.2, "min_samples": 4}]
    assert api.post("/deployments", json={"name": "acme-risky", "model": MODEL, "rules": rules}).status_code == 201
    assert api.post("/deployments/acme-risky/canary", json={"model": "gone-upstream", "percent": 50}).status_code == 201
    before = live_server.metric("plinth_deployment_rollbacks_total", deployment="acme-risky", trigger="auto", rule="error_rate")
    failures = 0
    for i in range(40):
        try:
            client.chat.completions.create(model="acme-risky", messages=MESSAGES, max_tokens=1, user=f"u{i}")
        except openai.APIStatusError as e:
            assert e.status_code == 502 and e.body["code"] == "upstream_error"  # the OpenAI error shape
            failures += 1
            if failures == 6:
                break
    assert failures == 6
    dep = _wait_no_canary(api, "acme-risky")
    assert dep["traffic"] == {"1": 100.0}
    event = api.get("/deployments/acme-risky/history").json()["events"][0]
    assert event["kind"] == "auto_rollback" and event["actor"] == "system:rollout-watcher"
    assert event["reason"].startswith("error_rate: canary 1 vs stable")
    assert event["details"]["breaches"][0]["canary"] == 1.0
    assert live_server.metric("plinth_deployment_rollbacks_total", deployment="acme-risky", trigger="auto", rule="error_rate") == before + 1
    for _ in range(3):  # every request answers again
        client.chat.completions.create(model="acme-risky", messages=MESSAGES, max_tokens=1)
    # management calls of other areas are audited by the HTTP layer (method, route, status)
    entries = api.get("/audit", params={"action": "http POST /api/v1/models"}).json()["entries"]
    assert any(e["target"] == "/api/v1/models" and e["details"]["status"] == 201 for e in entries)
    rollback = api.get("/audit", params={"target": "acme-risky", "action": "deployment.auto_rollback"}).json()["entries"]
    assert len(rollback) == 1 and rollback[0]["actor"] == "system:rollout-watcher"


def test_feedback_is_stored_against_the_revision_and_can_roll_back(live_server: LiveServer, client: Any, api: httpx.Client) -> None:
    rules = [{"metric": "negative_feedback_rate", "comparison": "absolute", "threshold": 0.5, "min_samples": 3}]
    assert api.post("/deployments", json={"name": "acme-rated", "model": MODEL, "rules": rules}).status_code == 201
    assert (
        api.post("/deployments/acme-rated/canary", json={"model": MODEL, "percent": 50, "defaults": {"temperature": 0}}).status_code == 201
    )
    canary_ids = []
    for i in range(40):
        resp, headers = _ask(client, "acme-rated", user=f"member-{i}")
        if headers["x-plinth-role"] == "canary":
            canary_ids.append(resp.id)
        else:
            fb = api.post("/feedback", json={"response_id": resp.id, "rating": "positive"})
            assert fb.status_code == 201 and fb.json()["revision"] == 1
        if len(canary_ids) == 3:
            break
    assert len(canary_ids) == 3
    for rid in canary_ids:
        fb = api.post("/feedback", json={"response_id": rid, "rating": -1, "comment": "wrong plan"})
        assert fb.status_code == 201, fb.text
        assert (fb.json()["deployment"], fb.json()["revision"], fb.json()["model_version"]) == ("acme-rated", 2, MODEL)
    assert _wait_no_canary(api, "acme-rated")["stable_revision"] == 1
    assert "negative_feedback_rate" in api.get("/deployments/acme-rated/history").json()["events"][0]["reason"]
    listed = api.get("/feedback", params={"deployment": "acme-rated", "revision": 2}).json()["feedback"]
    assert [f["comment"] for f in listed] == ["wrong plan"] * 3
    # a streamed answer carries the same headers and is accounted the same way
    raw = client.chat.completions.with_raw_response.create(model="acme-rated", messages=MESSAGES, max_tokens=2, stream=True)
    assert raw.headers["x-plinth-deployment"] == "acme-rated" and raw.headers["x-plinth-revision"] == "1"
    stream_id = {chunk.id for chunk in raw.parse()}.pop()
    fb = api.post("/feedback", json={"response_id": stream_id, "rating": "neutral"})
    assert fb.status_code == 201 and fb.json()["revision"] == 1 and fb.json()["rating"] == 0
    _error(api.post("/feedback", json={"response_id": "chatcmpl-" + "0" * 32, "rating": 1}), 404, "not_found")
    _error(api.post("/feedback", json={"response_id": "nonsense", "rating": 1}), 400, "invalid_request")
    _error(api.post("/feedback", json={"response_id": canary_ids[0], "rating": "meh"}), 400, "invalid_request")


def test_errors_are_clear_and_in_the_documented_shape(live_server: LiveServer, client: Any, api: httpx.Client) -> None:
    assert _error(api.get("/deployments/nope"), 404, "not_found")["message"] == "deployment 'nope' does not exist"
    e = _error(api.post("/deployments", json={"name": "acme-x", "model": "no-such-model"}), 404, "model_not_found")
    assert e["param"] == "targets.0.model"
    _error(api.post("/deployments", json={"name": MODEL, "model": MODEL}), 409, "conflict")
    _error(api.post("/deployments", json={"name": "bad name!", "model": MODEL}), 400, "invalid_request")
    _error(
        api.post("/deployments", json={"name": "acme-x", "model": MODEL, "rules": [{"metric": "vibes", "threshold": 1}]}),
        400,
        "invalid_request",
    )
    _error(api.post("/deployments", json={"name": "acme-x", "model": MODEL, "defaults": {"temperature": 9}}), 400, "invalid_request")
    assert api.post("/deployments", json={"name": "acme-x", "model": MODEL}).status_code == 201
    _error(api.post("/deployments", json={"name": "acme-x", "model": MODEL}), 409, "already_exists")
    _error(api.post("/deployments/acme-x/canary", json={"model": MODEL, "percent": 150}), 400, "invalid_request")
    _error(api.post("/deployments/acme-x/promote"), 409, "conflict")
    _error(api.put("/deployments/acme-x/traffic", json={"percent": 20}), 409, "conflict")
    _error(api.post("/deployments/acme-x/rollback"), 409, "conflict")
    assert api.post("/deployments/acme-x/canary", json={"model": MODEL, "percent": 5}).status_code == 201
    _error(api.post("/deployments/acme-x/canary", json={"model": MODEL, "percent": 5}), 409, "conflict")
    _error(api.post("/deployments/acme-x/canary", json={"model": "acme-x"}), 409, "conflict")
    assert api.get("/deployments/acme-x/revisions").json()["revisions"][1]["number"] == 2
    _error(api.get("/usage", params={"group_by": "colour"}), 400, "invalid_request")
    _error(api.get("/usage", params={"since": "yesterday-ish"}), 400, "invalid_request")
    assert api.delete("/deployments/acme-x").status_code == 204
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="acme-x", messages=MESSAGES, max_tokens=1)
