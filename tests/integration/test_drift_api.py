"""Drift through the live server (ADR 0091): ``POST /api/v1/deployments/{name}/drift`` against
a dataset uploaded through the API, the time series, one run by id, the anomaly scores the run
stores (``GET /api/v1/requests?flagged=true``), the gauges on ``/metrics``, and errors in the
documented shape. The request log entries are written into the server's store as its writer
writes them (30+ prompts through the model would take minutes), with real MiniLM vectors."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from plinth.config import Settings
from plinth.domain.projects import system_scope
from plinth.domain.requests import RequestLogEntry, TextMode
from plinth.embeddings import get_embedder
from plinth.store.sql import SqlStore
from tests.support.live_server import MODEL, LiveServer
from tests.unit.oversight.test_drift_methods import ACME, _users, drift_data

DEP = "drift-assistant"


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    return body["error"]


def _log(home: Path, texts: list[str], start: datetime, tag: int) -> None:
    vecs = get_embedder(Settings(), "minilm").embed(texts)
    store = SqlStore(f"sqlite:///{home / 'plinth.db'}")
    try:
        with system_scope():
            store.add_request_logs(
                [
                    RequestLogEntry(
                        response_id=f"chatcmpl-{tag:016x}{i:016x}",
                        kind="chat",
                        model=DEP,
                        served_model=MODEL,
                        outcome="ok",
                        at=start + timedelta(seconds=i),
                        deployment=DEP,
                        revision=1,
                        text_mode=TextMode.REDACTED,
                        prompt_text=t,
                        embedding=v.tobytes(),
                        project="default",
                    )
                    for i, (t, v) in enumerate(zip(texts, vecs, strict=True))
                ]
            )
    finally:
        store.close()


@pytest.fixture(scope="module")
def api(live_server: LiveServer) -> str:
    url = f"{live_server.url}/api/v1"
    r = httpx.post(
        f"{url}/datasets/drift-faq/versions",
        content=(ACME / "faq.jsonl").read_bytes(),
        params={"filename": "faq.jsonl"},
        headers={"content-type": "application/x-ndjson"},
        timeout=120,
    )
    assert r.status_code in (200, 201), r.text
    r = httpx.post(f"{url}/deployments", json={"name": DEP, "model": MODEL}, timeout=60)
    assert r.status_code == 201, r.text
    now = datetime.now(UTC)
    _log(live_server.home, drift_data().language("dev"), now - timedelta(hours=5), 1)  # 50 in other languages
    _log(live_server.home, _users(ACME / "faq-eval.jsonl"), now - timedelta(minutes=30), 2)  # the held-out FAQ questions
    return url


def test_a_quiet_run_one_that_fires_the_series_and_one_run(live_server: LiveServer, api: str) -> None:
    reference = {"reference": "dataset:drift-faq@1"}
    r = httpx.post(f"{api}/deployments/{DEP}/drift", json={"window": "1h", **reference}, timeout=120)
    assert r.status_code == 201, r.text
    quiet = r.json()
    assert quiet["drifted"] is False and quiet["n_recent"] == len(_users(ACME / "faq-eval.jsonl")) and quiet["score"] < 1.0
    assert quiet["reference"] == {"kind": "dataset", "dataset": "drift-faq@1", "split": "train", "items": quiet["n_reference"]}
    assert live_server.metric("plinth_drift_detected", deployment=DEP) == 0.0

    r = httpx.post(f"{api}/deployments/{DEP}/drift", json={"window": "6h", **reference}, timeout=120)
    assert r.status_code == 201, r.text
    loud = r.json()
    assert loud["drifted"] is True and loud["n_recent"] == quiet["n_recent"] + len(drift_data().language("dev")) and loud["score"] > 1.0
    methods = loud["results"]["methods"]
    assert methods["language"]["drifted"] and methods["language"]["p_value"] < 0.01
    assert {t["term"] for t in loud["results"]["changed"]["terms"]["recent"]} & {"el", "de", "la", "le", "du"}
    assert loud["results"]["anomalies"]["flagged"] >= 40
    assert live_server.metric("plinth_drift_score", deployment=DEP) == pytest.approx(loud["score"])
    assert live_server.metric("plinth_drift_detected", deployment=DEP) == 1.0
    assert live_server.metric("plinth_drift_p_value", deployment=DEP, test="language") == pytest.approx(methods["language"]["p_value"])

    series = httpx.get(f"{api}/deployments/{DEP}/drift", params={"since": "1h"}).json()
    assert series["deployment"] == DEP and [x["id"] for x in series["runs"]] == [quiet["id"], loud["id"]]  # oldest first
    assert series["runs"][0]["results"] is None and set(series["runs"][1]["p_values"]) == {"embedding", "length", "language", "oov"}
    full = httpx.get(f"{api}/deployments/{DEP}/drift", params={"full": "true"}).json()
    assert full["runs"][-1]["results"] == loud["results"]
    one = httpx.get(f"{api}/drift-runs/{loud['id']}")
    assert one.status_code == 200 and one.json() == loud and loud["p_values"] is None

    # the flagged prompts are the other-language ones (the request log's listing)
    flagged = httpx.get(f"{api}/requests", params={"deployment": DEP, "flagged": "true", "limit": 200}).json()["requests"]
    spanish = set(drift_data().language("dev"))
    assert len(flagged) >= 40 and sum(1 for x in flagged if x["prompt"] in spanish) >= 0.9 * len(flagged)


def test_errors_are_clear_and_in_the_documented_shape(api: str) -> None:
    e = _error(httpx.post(f"{api}/deployments/no-such/drift", json={}), 404, "not_found")
    assert "no-such" in e["message"]
    e = _error(httpx.post(f"{api}/deployments/{DEP}/drift", json={"window": "1h"}), 400, "invalid_request")
    assert e["param"] == "reference" and "lineage names no training dataset" in e["message"]
    e = _error(
        httpx.post(f"{api}/deployments/{DEP}/drift", json={"window": "1m", "reference": "dataset:drift-faq@1"}), 400, "invalid_request"
    )
    assert e["param"] == "window" and "at least 30" in e["message"]
    e = _error(httpx.post(f"{api}/deployments/{DEP}/drift", json={"reference": "dataset:drift-faq"}), 400, "invalid_request")
    assert e["param"] == "reference"
    _error(httpx.post(f"{api}/deployments/{DEP}/drift", json={"reference": "dataset:nope@1"}), 404, "not_found")
    _error(httpx.post(f"{api}/deployments/{DEP}/drift", json={"window": "soon"}), 400, "invalid_request")
    _error(httpx.post(f"{api}/deployments/{DEP}/drift", json={"surprise": 1}), 400, "invalid_request")
    _error(httpx.get(f"{api}/deployments/{DEP}/drift", params={"since": "yesterday"}), 400, "invalid_request")
    _error(httpx.get(f"{api}/drift-runs/987654"), 404, "not_found")
    _error(httpx.get(f"{api}/drift-runs/0"), 400, "invalid_request")


def test_a_drift_job_runs_in_a_job_process_and_stores_its_run(api: str) -> None:
    before = len(httpx.get(f"{api}/deployments/{DEP}/drift").json()["runs"])
    bad = httpx.post(f"{api}/jobs", json={"kind": "drift", "spec": {"window": "6h"}})
    assert _error(bad, 400, "invalid_request")["param"] == "deployment"  # refused at submit time
    spec = {"deployment": DEP, "window": "6h", "reference": "dataset:drift-faq@1"}
    r = httpx.post(f"{api}/jobs", json={"kind": "drift", "spec": spec}, timeout=60)
    assert r.status_code in (200, 201), r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + 300
    while (job := httpx.get(f"{api}/jobs/{job_id}").json())["state"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert job["state"] == "succeeded", job
    assert job["result"]["drifted"] is True and job["result"]["deployment"] == DEP
    runs = httpx.get(f"{api}/deployments/{DEP}/drift").json()["runs"]
    assert len(runs) == before + 1 and runs[-1]["id"] == job["result"]["id"]


def test_real_traffic_through_a_deployment_is_logged_and_measured(live_server: LiveServer, client: Any, api: str) -> None:
    """The README's path: members' questions through /v1 (a policy that redacts input, so the
    log keeps the prompts), the log's writer embeds them, drift stays quiet on in-distribution
    questions and fires on a batch in other languages."""
    policy = {"name": "drift-redact", "rules": [{"detector": "pii", "on": ["input"], "action": "redact"}]}
    r = httpx.post(f"{api}/guardrails/policies", json=policy, timeout=60)
    assert r.status_code in (200, 201), r.text
    live = "drift-live"
    r = httpx.post(f"{api}/deployments", json={"name": live, "model": MODEL, "guardrail_policy": "drift-redact"}, timeout=60)
    assert r.status_code == 201, r.text

    def ask(questions: list[str]) -> None:
        for q in questions:
            client.chat.completions.create(model=live, messages=[{"role": "user", "content": q}], max_tokens=1)

    def logged(n: int) -> None:
        deadline = time.monotonic() + 120
        while len(httpx.get(f"{api}/requests", params={"deployment": live, "limit": 500}).json()["requests"]) < n:
            assert time.monotonic() < deadline, "the request log writer did not catch up"
            time.sleep(0.5)

    held = _users(ACME / "faq-eval.jsonl")[:35]
    ask(held)
    logged(35)
    body = {"window": "1h", "reference": "dataset:drift-faq@1"}
    quiet = httpx.post(f"{api}/deployments/{live}/drift", json=body, timeout=120).json()
    assert quiet["drifted"] is False and quiet["n_recent"] == 35, quiet
    other = drift_data().language("heldout")[:35]
    ask(other)
    logged(70)
    loud = httpx.post(f"{api}/deployments/{live}/drift", json={**body, "limit": 35}, timeout=120).json()  # the newest 35
    assert loud["drifted"] is True and loud["n_recent"] == 35 and loud["results"]["methods"]["language"]["drifted"], loud
    entry = httpx.get(f"{api}/requests", params={"deployment": live, "limit": 1}).json()["requests"][0]
    assert entry["prompt"] in other and entry["anomaly_score"] is not None and entry["anomaly"]["reference"] == "dataset:drift-faq@1"
