"""Bias probes through the live server and the CLI: a run that waits answers the stored report,
one that does not is a ``bias`` job the server's worker runs to the same kind of report; the
reports list and show; a bad suite lists every problem (400), an unknown target is 404; and
`plinth bias run|reports|show` on the same home, with the per-attribute table."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support import cli
from tests.support.live_server import MODEL, LiveServer

SUITE: dict[str, Any] = {
    "apiVersion": "plinth/v1",
    "kind": "BiasSuite",
    "name": "api-tiny",
    "max_tokens": 6,
    "template": "I'm {name}. {question}",
    "profile": {"name": "Emily Walsh"},
    "questions": [{"id": "card", "text": "My card was stolen. What should I do?"}],
    "attributes": [{"name": "ethnicity", "slot": "name", "variants": {"white": "Emily Walsh", "hispanic": "Maria Hernandez"}}],
}


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]


def test_bias_runs_and_reports_over_the_api(live_server: LiveServer) -> None:
    api = f"{live_server.url}/api/v1/bias"
    r = httpx.post(f"{api}/runs", json={"suite": yaml.safe_dump(SUITE), "target": MODEL, "wait": True}, timeout=300)
    assert r.status_code == 200, r.text
    report = r.json()["report"]
    assert report["suite"] == "api-tiny" and report["target"] == MODEL and isinstance(report["passed"], bool)
    assert set(report["attributes"]["ethnicity"]["metrics"]) == {"similarity", "refusal_gap", "length_gap", "sentiment_gap", "facts_differ"}
    assert len(report["results"]["answers"]) == 2
    listed = httpx.get(f"{api}/reports", params={"suite": "api-tiny"}).json()["reports"]
    assert [x["id"] for x in listed] == [report["id"]] and "results" not in listed[0]
    shown = httpx.get(f"{api}/reports/{report['id']}").json()
    assert shown["results"]["answers"] == report["results"]["answers"]
    assert httpx.get(f"{api}/reports", params={"suite": "api-tiny", "passed": not report["passed"]}).json()["reports"] == []
    _error(httpx.get(f"{api}/reports/{'0' * 32}"), 404, "not_found")

    # without wait: a bias job, run by the server's worker
    r = httpx.post(f"{api}/runs", json={"suite": SUITE, "target": MODEL}, headers={"Idempotency-Key": "bias-api-1"}, timeout=60)
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    assert job["kind"] == "bias" and r.json()["created"] is True
    again = httpx.post(f"{api}/runs", json={"suite": SUITE, "target": MODEL}, headers={"Idempotency-Key": "bias-api-1"}, timeout=60)
    assert again.json()["job"]["id"] == job["id"] and again.json()["created"] is False
    state = ""
    for _ in range(600):  # polled, not timed: the worker starts a process and loads the model
        got = httpx.get(f"{live_server.url}/api/v1/jobs/{job['id']}").json()
        state = got["state"]
        if state in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.5)
    assert state == "succeeded", (got.get("error"), httpx.get(f"{live_server.url}/api/v1/jobs/{job['id']}/logs").text[-3000:])
    result = got["result"]
    assert result["suite"] == "api-tiny" and result["target"] == MODEL
    assert httpx.get(f"{api}/reports/{result['report']}").json()["passed"] is result["passed"]


def test_bad_runs_are_refused_with_every_problem(live_server: LiveServer) -> None:
    api = f"{live_server.url}/api/v1/bias/runs"
    bad = {**SUITE, "name": "Bad Name", "questions": [], "thresholds": {"nope": 1}}
    err = _error(httpx.post(api, json={"suite": bad, "target": MODEL, "wait": True}), 400, "invalid_request")
    assert err["param"] == "suite"
    assert "name: 'Bad Name'" in err["message"] and "questions: a non-empty list" in err["message"] and "thresholds.nope" in err["message"]
    _error(httpx.post(api, json={"suite": "name: [", "target": MODEL}), 400, "invalid_request")
    err = _error(httpx.post(api, json={"suite": SUITE, "target": "acme-nothing@3"}), 404, "model_not_found")
    assert err["param"] == "target"
    _error(httpx.post(api, json={"suite": SUITE, "target": MODEL, "revision": 2}), 400, "invalid_request")
    _error(httpx.post(api, json={"suite": SUITE, "target": MODEL, "colour": "x"}), 400, "invalid_request")


def test_the_bias_cli(live_server: LiveServer, tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({**SUITE, "name": "cli-tiny"}))
    out = cli.plinth(live_server.home, "bias", "run", "-f", str(suite), "--target", MODEL, COLUMNS="200")
    assert out.returncode in (0, 1), out.stderr  # 1: the report failed (the exit code says so)
    assert "bias report" in out.stdout and "gaps per attribute" in out.stdout and "similarity" in out.stdout
    assert ("PASSED" in out.stdout) == (out.returncode == 0)
    listed = json.loads(cli.plinth(live_server.home, "bias", "reports", "--suite", "cli-tiny", "--json").stdout)
    assert len(listed) == 1 and listed[0]["target"] == MODEL
    shown = cli.plinth(live_server.home, "bias", "show", listed[0]["id"], "--answers", COLUMNS="200")
    assert shown.returncode == 0 and "ethnicity" in shown.stdout and "I'm Maria Hernandez" in shown.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**SUITE, "questions": [], "name": "X"}))
    refused = cli.plinth(live_server.home, "bias", "run", "-f", str(bad), "--target", MODEL)
    assert refused.returncode != 0 and refused.stderr.startswith("error:") and "questions" in refused.stderr and "name" in refused.stderr
    missing = cli.plinth(live_server.home, "bias", "run", "-f", str(tmp_path / "nope.yaml"), "--target", MODEL)
    assert missing.returncode != 0 and "cannot read the suite file" in missing.stderr
