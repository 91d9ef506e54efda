"""The job queue through the live server: its own worker runs jobs submitted over /api/v1/jobs;
idempotency, errors in the canonical shape, logs followed as server-sent events, cancel,
preemption, queues and priority classes; /v1 keeps answering while jobs run."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.support.live_server import MODEL, LiveServer


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert {"code", "message"} <= set(body["error"]) <= {"code", "message", "param", "details"}
    return body["error"]


def _wait(api: str, job_id: str, timeout: float = 90, until: Any = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{api}/jobs/{job_id}", timeout=10).json()
        if (until and until(job)) or (not until and job["state"] in ("succeeded", "failed", "cancelled")):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not get there: {job}")


@pytest.fixture(scope="module")
def api(live_server: LiveServer) -> str:
    return live_server.url + "/api/v1"


def test_submit_run_and_idempotency(api: str) -> None:
    key = f"key-{uuid.uuid4()}"
    body = {"kind": "selftest", "spec": {"steps": 4, "sleep_s": 0.05}, "name": "api test", "labels": {"suite": "integration"}}
    r = httpx.post(f"{api}/jobs", json=body, headers={"Idempotency-Key": key})
    assert r.status_code == 201, r.text
    job = r.json()
    assert r.headers["location"] == f"/api/v1/jobs/{job['id']}" and job["state"] in ("queued", "running")
    again = httpx.post(f"{api}/jobs", json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true" and again.json()["id"] == job["id"]
    err = _error(httpx.post(f"{api}/jobs", json={**body, "spec": {"steps": 5}}, headers={"Idempotency-Key": key}), 409, "conflict")
    assert job["id"] in err["message"]
    done = _wait(api, job["id"])
    assert done["state"] == "succeeded" and done["result"]["steps"] == 4 and done["attempt"] == 1
    assert done["progress"]["done"] == 4 and done["progress"]["fraction"] == 1.0
    listed = httpx.get(f"{api}/jobs", params={"label": "suite=integration", "state": "succeeded"}).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    logs = httpx.get(f"{api}/jobs/{job['id']}/logs").json()
    assert [ln["line"] for ln in logs["lines"]][-1] == "attempt 1 succeeded"
    tail = httpx.get(f"{api}/jobs/{job['id']}/logs", params={"tail": 1}).json()["lines"]
    assert len(tail) == 1 and tail[0]["seq"] == logs["last_seq"]


def test_bad_requests_are_refused_in_the_canonical_shape(api: str) -> None:
    assert _error(httpx.post(f"{api}/jobs", json={"kind": "nope"}), 400, "invalid_request")["param"] == "kind"
    e = _error(httpx.post(f"{api}/jobs", json={"kind": "selftest", "spec": {"steps": -1}}), 400, "invalid_request")
    assert e["param"] == "spec.steps"
    e = _error(httpx.post(f"{api}/jobs", json={"kind": "selftest", "resources": {"cpu": 512}}), 400, "invalid_request")
    assert e["param"] == "resources" and "could never run" in e["message"]
    e = _error(httpx.post(f"{api}/jobs", json={"kind": "selftest", "resources": {"memory": "lots"}}), 400, "invalid_request")
    assert e["param"] == "resources.memory"
    _error(httpx.post(f"{api}/jobs", json={"kind": "selftest", "surprise": 1}), 400, "invalid_request")
    _error(httpx.post(f"{api}/jobs", content=b"{not json", headers={"content-type": "application/json"}), 400, "invalid_json")
    _error(httpx.post(f"{api}/jobs", json={"kind": "selftest"}, headers={"Idempotency-Key": "k" * 300}), 400, "invalid_request")
    _error(httpx.get(f"{api}/jobs/job-00000000000000000000"), 404, "not_found")
    _error(httpx.get(f"{api}/jobs/..%2F..%2Fetc"), 404, "not_found")
    _error(httpx.get(f"{api}/jobs", params={"state": "sleeping"}), 400, "invalid_request")
    _error(httpx.post(f"{api}/queues", json={"name": "huge", "quota": {"cpu": 4096, "memory": "1GiB"}}), 400, "invalid_request")
    _error(httpx.delete(f"{api}/queues/default"), 400, "invalid_request")


def test_follow_logs_as_server_sent_events(api: str) -> None:
    job = httpx.post(f"{api}/jobs", json={"kind": "selftest", "spec": {"steps": 6, "sleep_s": 0.1}}).json()
    events: list[tuple[str, dict[str, Any]]] = []
    with httpx.stream("GET", f"{api}/jobs/{job['id']}/logs", params={"follow": "true"}, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event or "", json.loads(line[6:])))
    kinds = [k for k, _ in events]
    assert kinds[0] == "job" and kinds[-1] == "end" and events[-1][1]["state"] == "succeeded"
    lines = [d["line"] for k, d in events if k == "log"]
    assert lines[0].startswith("submitted") and "counted 6 steps" in lines and lines[-1] == "attempt 1 succeeded"
    progress = [d["progress"]["done"] for k, d in events if k == "job"]
    assert progress == sorted(progress) and progress[-1] == 6
    _error(httpx.get(f"{api}/jobs/job-00000000000000000000/logs", params={"follow": "true"}), 404, "not_found")


def test_cancel_retry_delete(api: str) -> None:
    job = httpx.post(f"{api}/jobs", json={"kind": "selftest", "spec": {"steps": 600, "sleep_s": 0.05}}).json()
    _wait(api, job["id"], until=lambda j: j["progress"]["done"] >= 1)
    _error(httpx.delete(f"{api}/jobs/{job['id']}"), 409, "conflict")
    assert httpx.post(f"{api}/jobs/{job['id']}/cancel").status_code == 200
    done = _wait(api, job["id"])
    assert done["state"] == "cancelled" and done["progress"]["done"] < 600
    _error(httpx.post(f"{api}/jobs/{job['id']}/cancel"), 409, "conflict")
    retried = httpx.post(f"{api}/jobs/{job['id']}/retry").json()
    assert retried["state"] == "queued" and retried["reason"] == "retried"
    httpx.post(f"{api}/jobs/{job['id']}/cancel")
    _wait(api, job["id"])
    assert httpx.delete(f"{api}/jobs/{job['id']}").status_code == 204
    _error(httpx.get(f"{api}/jobs/{job['id']}"), 404, "not_found")


def test_preemption_over_the_api_while_v1_answers(api: str, live_server: LiveServer, client: Any) -> None:
    r = httpx.post(f"{api}/queues", json={"name": "one-cpu", "quota": {"cpu": 1, "memory": "1GiB"}})
    assert r.status_code == 201, r.text
    common = {"queue": "one-cpu", "resources": {"cpu": 1, "memory": "256MiB"}}
    low = httpx.post(
        f"{api}/jobs", json={"kind": "selftest", "spec": {"steps": 15, "sleep_s": 0.1}, "priority_class": "low", **common}
    ).json()
    _wait(api, low["id"], until=lambda j: j["progress"]["done"] >= 2)
    high = httpx.post(
        f"{api}/jobs", json={"kind": "selftest", "spec": {"steps": 2, "sleep_s": 0.05}, "priority_class": "high", **common}
    ).json()
    # The API and /v1 keep answering while jobs run and yield.
    answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=8)
    assert answer.choices[0].message.content
    assert _wait(api, high["id"])["state"] == "succeeded"
    lo = _wait(api, low["id"])
    assert lo["state"] == "succeeded" and lo["preemptions"] == 1 and lo["result"]["resumed_from"] >= 2
    queues = {q["name"]: q for q in httpx.get(f"{api}/queues").json()["queues"]}
    assert queues["one-cpu"]["quota"]["cpu"] == 1 and queues["one-cpu"]["running"] == 0
    assert queues["default"]["quota"]["cpu"] >= 1
    assert httpx.delete(f"{api}/queues/one-cpu").status_code == 204


def test_kinds_classes_and_workers(api: str, live_server: LiveServer) -> None:
    kinds = {k["kind"]: k for k in httpx.get(f"{api}/job-kinds").json()["kinds"]}
    assert "selftest" in kinds and kinds["selftest"]["default_resources"]["cpu"] == 1
    r = httpx.post(f"{api}/priority-classes", json={"name": "batch", "value": 50})
    assert r.status_code == 201
    classes = [p["name"] for p in httpx.get(f"{api}/priority-classes").json()["priority_classes"]]
    assert classes == ["high", "normal", "low", "batch"]
    _error(httpx.post(f"{api}/priority-classes", json={"name": "batch", "value": 1}), 409, "already_exists")
    assert httpx.delete(f"{api}/priority-classes/batch").status_code == 204
    workers = httpx.get(f"{api}/workers").json()["workers"]
    assert len(workers) == 1 and workers[0]["pid"] == live_server.proc.pid
    assert live_server.metric("plinth_jobs_submitted_total", kind="selftest") >= 1
