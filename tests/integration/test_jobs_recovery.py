"""`plinth up` is SIGKILLed while its own worker runs a job: the job's process dies with it, and
the restarted server requeues the job at once and finishes it from its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.live_server import start_server, stop_server

pytestmark = pytest.mark.slow


def test_killed_server_restarts_and_resumes_its_job(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"PLINTH_PRELOAD_DEFAULT_MODEL": "false", "PLINTH_JOBS_POLL_INTERVAL_S": "0.2", "PLINTH_JOBS_LEASE_S": "30"}
    server = start_server(home, **env)
    try:
        api = server.url + "/api/v1"
        job = httpx.post(f"{api}/jobs", json={"kind": "selftest", "spec": {"steps": 40, "sleep_s": 0.1}}).json()
        deadline = time.monotonic() + 60
        while True:
            j = httpx.get(f"{api}/jobs/{job['id']}").json()
            if j["progress"]["done"] >= 4 and j["process_id"]:
                break
            assert time.monotonic() < deadline, j
            time.sleep(0.1)
        child = psutil.Process(j["process_id"])
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)
        child.wait(timeout=10)  # the job's process does not outlive its server
    finally:
        stop_server(server)
    # The lease (30 s) has not expired: the new server finds the old one dead on this host instead.
    server = start_server(home, **env)
    try:
        api = server.url + "/api/v1"
        deadline = time.monotonic() + 90
        while True:
            j = httpx.get(f"{api}/jobs/{job['id']}").json()
            if j["state"] in ("succeeded", "failed", "cancelled"):
                break
            assert time.monotonic() < deadline, j
            time.sleep(0.2)
        assert j["state"] == "succeeded" and j["attempt"] == 2 and j["restarts"] == 1
        assert j["result"]["resumed_from"] >= 4
        lines = [ln["line"] for ln in httpx.get(f"{api}/jobs/{job['id']}/logs").json()["lines"]]
        # Found dead on this host, not waited out: the 30 s lease never expired.
        assert any("requeued (worker_lost)" in ln and "is gone (its process exited)" in ln for ln in lines), lines
        steps = [json.loads(s) for s in (home / "jobs" / job["id"] / "checkpoint" / "trace.jsonl").read_text().splitlines()]
        first = [s["t"] for s in steps if s["attempt"] == 1]
        second = [s["t"] for s in steps if s["attempt"] == 2]
        assert first and second and max(first) < min(second)
        assert sorted({s["step"] for s in steps}) == list(range(1, 41))
    finally:
        stop_server(server)
    assert "Traceback" not in server.log_text()
