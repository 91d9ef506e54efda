"""Issue 14's "Done when", as a user runs it: ``examples/acme-health/monitoring_walkthrough.py``
as a real subprocess against live servers. First against a server that refuses outbound calls to
this machine (the script says exactly what to set and fails), then, in the same home, against one
started with ``PLINTH_OUTBOUND_ALLOW`` (everything made before is reused): requests logged
redacted, drift quiet on the FAQ's held-out questions and firing on the Spanish/German batch, the
alert delivered to the script's webhook receiver, a bias report, an explanation."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.live_server import LiveServer, start_server, stop_server

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "acme-health" / "monitoring_walkthrough.py"


def _walk(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    """The script's run; its output also goes to ``walkthrough.txt`` in the server's home as it runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"})
    out = server.home / "walkthrough.txt"
    with open(out, "w") as fh:
        proc = subprocess.run(
            [sys.executable, str(SCRIPT), "--base-url", server.url, *args],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=1500,
            check=False,
        )
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.read_text(), "")


def _stop(server: LiveServer) -> None:
    stop_server(server)
    log = server.log_text()
    assert "Traceback" not in log, f"the server logged a traceback:\n{log[-5000:]}"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, smol_dir: Path) -> Path:
    home = tmp_path_factory.mktemp("walkthrough-home")
    # the dequantised copy the torch runtime explains with, made once per test session
    torch_cache = home / "cache" / "torch"
    torch_cache.mkdir(parents=True)
    (torch_cache / smol_dir.name).symlink_to(smol_dir, target_is_directory=True)
    return home


@pytest.fixture(scope="module")
def refused(home: Path) -> subprocess.CompletedProcess[str]:
    server = start_server(home, log=home / "refusing.log")
    try:
        return _walk(server)
    finally:
        _stop(server)


@pytest.fixture(scope="module")
def walked(home: Path, refused: subprocess.CompletedProcess[str]) -> Iterator[tuple[LiveServer, subprocess.CompletedProcess[str]]]:
    # two passages per prompt instead of four: the 75 answers' prefill and the explanation's
    # forward passes are about half as long, and the explanation still ranks passages
    server = start_server(home, PLINTH_OUTBOUND_ALLOW='["127.0.0.1"]', PLINTH_KB_TOP_K="2")
    try:
        yield server, _walk(server, "--bias-questions", "1", "--max-tokens", "6")
    finally:
        _stop(server)


@pytest.mark.timeout(600)  # a server started, the knowledge base embedded
def test_a_server_that_refuses_the_webhook_is_told_what_to_set(refused: subprocess.CompletedProcess[str]) -> None:
    out = refused.stdout
    assert refused.returncode == 1, out + refused.stderr
    assert "knowledge base acme-policies created" in out and "deployment acme-assistant created" in out
    assert "the server refuses the webhook" in out and "loopback" in out
    assert "PLINTH_OUTBOUND_ALLOW='[\"127.0.0.1\"]' make demo" in out


@pytest.mark.timeout(1800)  # 64 questions through the guardrails and retrieval, a bias suite, an explanation on 2 shared cores
def test_the_walkthrough_end_to_end(walked: tuple[LiveServer, subprocess.CompletedProcess[str]]) -> None:
    server, run = walked
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    api = f"{server.url}/api/v1"

    # what was made in the first run is reused
    for line in ("knowledge base acme-policies reused", "guardrail policy acme-health reused", "dataset acme-faq reused"):
        assert line in out
    assert "deployment acme-assistant reused" in out

    # the request log keeps only redacted text: the member's email and phone are nowhere
    assert "logged with the PII redacted: I'm <EMAIL>, phone <PHONE>." in out
    logged = httpx.get(f"{api}/requests", params={"deployment": "acme-assistant", "limit": 500}).json()["requests"]
    assert len(logged) >= 64  # 32 in distribution, 32 shifted (and the bias suite's prompts)
    text = json.dumps(logged)
    assert "jane.doe@example.com" not in text and "415-555-0134" not in text and "<EMAIL>" in text

    # drift: quiet on the held-out FAQ questions, then fires on the shifted batch
    quiet = re.search(r"drift run (\d+): quiet", out)
    loud = re.search(r"drift run (\d+): DRIFT", out)
    assert quiet and loud and quiet.start() < loud.start(), out
    runs = {r["id"]: r for r in httpx.get(f"{api}/deployments/acme-assistant/drift").json()["runs"]}
    assert runs[int(quiet.group(1))]["drifted"] is False and runs[int(quiet.group(1))]["n_recent"] == 32
    assert runs[int(loud.group(1))]["drifted"] is True and runs[int(loud.group(1))]["n_recent"] == 32

    # the alert fired and the script's receiver got Alertmanager's payload
    assert "rule acme-walkthrough-drift evaluated: value 0.0, state inactive" in out
    assert "rule acme-walkthrough-drift evaluated: value 1.0, state firing" in out
    assert "webhook received (Alertmanager payload version 4): status firing, alertname acme-walkthrough-drift" in out
    events = httpx.get(f"{api}/alerts/events", params={"rule": "acme-walkthrough-drift"}).json()["events"]
    firing = [e for e in events if e["to_state"] == "firing"]
    assert len(firing) == 1 and firing[0]["delivered"][0]["kind"] == "webhook" and firing[0]["delivered"][0]["ok"] is True

    # a stored bias report of the deployment
    report_id = re.search(r"bias report ([0-9a-f]{32}): (PASSED|FAILED)", out)
    assert report_id, out
    report = httpx.get(f"{api}/bias/reports/{report_id.group(1)}").json()
    assert report["target"] == "acme-assistant" and report["generation"]["prompts"] == 11
    assert set(report["attributes"]) >= {"age", "gender", "ethnicity", "region", "plan"}

    # an explanation of one logged answer: its passages ranked, the question's words that mattered
    explained = re.search(r"plinth explain (chatcmpl-[0-9a-f]+)", out)
    assert explained and "question words that mattered most: '" in out and "drop (nats)" in out
    entry = httpx.get(f"{api}/requests/{explained.group(1)}").json()
    assert entry["deployment"] == "acme-assistant" and entry["citations"]
