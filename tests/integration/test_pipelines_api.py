"""Pipelines and triggers over HTTP on live servers: the API round trip on the shared server (its
runner thread and worker run a selftest job step), errors in the documented shape, and a run
that survives a SIGKILLed server: a new server on the same home picks the unfinished run up and
finishes it without submitting its job twice."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.live_server import LiveServer, start_server, stop_server

PIPELINE = {
    "name": "api-demo",
    "params": {"adapter": "acme-lora"},
    "steps": [
        {"name": "tune", "job": "selftest", "spec": {"steps": 2, "sleep_s": 0, "result": {"adapter": "${params.adapter}"}}, "retries": 1},
        {"name": "register", "action": "set", "spec": {"ref": "${steps.tune.outputs.adapter}"}},
        {"name": "gate", "action": "check", "spec": {"that": "${steps.register.outputs.ref}"}, "when": "${params.adapter} != 'skip'"},
    ],
}


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code, err
    return err


def _wait_run(api: httpx.Client, run_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = api.get(f"/pipeline-runs/{run_id}").json()
        if detail["run"]["state"] in ("succeeded", "failed", "cancelled"):
            return detail
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} did not finish: {detail}")


@pytest.fixture(scope="module")
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url + "/api/v1", timeout=60) as c:
        yield c


def test_pipeline_api_round_trip(api: httpx.Client) -> None:
    created = api.post("/pipelines", json=PIPELINE)
    assert created.status_code == 201, created.text
    assert created.json()["pipeline"]["version"] == 1 and created.json()["created"]
    same = api.post("/pipelines", json=PIPELINE)
    assert same.status_code == 200 and not same.json()["created"]
    assert [p["name"] for p in api.get("/pipelines").json()["pipelines"]] == ["api-demo"]

    run = api.post("/pipelines/api-demo/runs", json={"params": {"adapter": "v2"}, "reason": "api test"})
    assert run.status_code == 201, run.text
    detail = _wait_run(api, run.json()["id"])
    assert detail["run"]["state"] == "succeeded", detail
    steps = {s["name"]: s for s in detail["steps"]}
    assert [s["state"] for s in detail["steps"]] == ["succeeded", "succeeded", "succeeded"]
    assert steps["register"]["outputs"] == {"ref": "v2"} and steps["tune"]["job_id"]
    logs = api.get(f"/pipeline-runs/{run.json()['id']}/steps/tune/logs").json()["lines"]
    assert "counted 2 steps" in logs
    lineage = api.get(f"/pipeline-runs/{run.json()['id']}/lineage").json()
    assert lineage["reason"] == "api test" and lineage["steps"][0]["job_id"] == steps["tune"]["job_id"]
    runs = api.get("/pipeline-runs", params={"pipeline": "api-demo", "state": "succeeded"}).json()["runs"]
    assert [r["id"] for r in runs] == [run.json()["id"]]

    # a second run with the same inputs: every step cached, no new job
    again = _wait_run(api, api.post("/pipelines/api-demo/runs", json={"params": {"adapter": "v2"}}).json()["id"])
    assert [s["state"] for s in again["steps"]] == ["cached", "cached", "cached"]

    # triggers: a manual one fired by hand, then its cooldown
    trig = api.post("/triggers", json={"name": "api-by-hand", "pipeline": "api-demo", "kind": "manual", "cooldown_s": 3600})
    assert trig.status_code == 201, trig.text
    fired = api.post("/triggers/api-by-hand/fire").json()
    assert fired["fired"] and fired["run_id"]
    assert not api.post("/triggers/api-by-hand/fire").json()["fired"]
    events = api.get("/triggers/events", params={"trigger": "api-by-hand"}).json()["events"]
    assert [e["fired"] for e in events] == [False, True] and events[0]["reason"].startswith("cooldown")
    _wait_run(api, fired["run_id"])


def test_pipeline_api_errors(api: httpx.Client) -> None:
    bad = {
        "name": "api-bad",
        "steps": [{"name": "a", "job": "nope"}, {"name": "b", "action": "set", "spec": {"x": "${steps.a.outputs.y}"}, "needs": ["b"]}],
    }
    err = _error(api.post("/pipelines", json=bad), 400, "invalid_request")
    assert {p["param"] for p in err["details"]["problems"]} == {"steps.a.job", "steps.b.needs"}
    _error(api.get("/pipelines/ghost"), 404, "not_found")
    _error(api.get("/pipeline-runs/run-00000000000000000000"), 404, "not_found")
    _error(api.post("/pipelines/ghost/runs", json={}), 404, "not_found")
    api.post("/pipelines", json=PIPELINE)
    err = _error(api.post("/pipelines/api-demo/runs", json={"params": {"nope": 1}}), 400, "invalid_request")
    assert err["param"] == "params.nope"
    err = _error(
        api.post("/triggers", json={"name": "t", "pipeline": "api-demo", "kind": "schedule", "spec": {"cron": "* *"}}),
        400,
        "invalid_request",
    )
    assert err["param"] == "spec.cron"
    _error(api.get("/triggers/events", params={"trigger": "ghost"}), 404, "not_found")


@pytest.mark.slow
def test_a_run_survives_a_killed_server(tmp_path: Path) -> None:
    """SIGKILL the server while a job step runs; a new server on the same home finishes the run:
    the step keeps its one attempt and its one job (the queue requeued it), the next step runs."""
    home = tmp_path / "home"
    env = {
        "PLINTH_PRELOAD_DEFAULT_MODEL": "false",
        "PLINTH_PIPELINES_INTERVAL_S": "0.3",
        "PLINTH_PIPELINES_LEASE_S": "2",
        "PLINTH_JOBS_LEASE_S": "3",
        "PLINTH_JOBS_POLL_INTERVAL_S": "0.2",
    }
    first = start_server(home, **env)
    try:
        with httpx.Client(base_url=first.url + "/api/v1", timeout=60) as api:
            doc = {
                "name": "survivor",
                "steps": [
                    {"name": "long", "job": "selftest", "spec": {"steps": 40, "sleep_s": 0.25}},
                    {"name": "after", "action": "set", "spec": {"steps": "${steps.long.outputs.steps}"}},
                ],
            }
            assert api.post("/pipelines", json=doc).status_code == 201
            run_id = api.post("/pipelines/survivor/runs", json={}).json()["id"]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                detail = api.get(f"/pipeline-runs/{run_id}").json()
                long = detail["steps"][0]
                if long["state"] == "running" and long["job_id"]:
                    job = api.get(f"/jobs/{long['job_id']}").json()
                    if job["state"] == "running" and (job.get("progress") or {}).get("done", 0) >= 2:
                        break
                time.sleep(0.2)
            else:
                raise AssertionError(f"the job step never ran: {detail}")
            job_id = long["job_id"]
    finally:
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=30)

    second = start_server(home, **env)
    try:
        with httpx.Client(base_url=second.url + "/api/v1", timeout=60) as api:
            detail = _wait_run(api, run_id, timeout=240)
            assert detail["run"]["state"] == "succeeded", detail
            long, after = detail["steps"]
            assert long["job_id"] == job_id and long["attempt"] == 1  # the same job, not submitted again
            assert after["outputs"] == {"steps": 40}
            jobs = api.get("/jobs", params={"label": f"plinth.run={run_id}"}).json()
            listed = jobs.get("jobs", jobs) if isinstance(jobs, dict) else jobs
            assert [j["id"] for j in listed] == [job_id]
    finally:
        stop_server(second)
    assert "Traceback" not in second.log_text(), second.log_text()[-3000:]
