"""Alert rules through the live server and the CLI: a rule on a real deployment fires on real
traffic and its webhook reaches a local receiver (a small http.server standing in for
Alertmanager) with Alertmanager's payload; errors in the documented shape; the CLI round trip
(create -f, list, show, evaluate, events, export, delete); and the shipped Acme rules: their
Prometheus export is the one shipped, ``promtool check rules`` accepts it and ``promtool test
rules`` passes its cases (promtool from the Debian package ``prometheus``; skipped without it
unless PLINTH_REQUIRE_PROMTOOL is set)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import yaml

from tests.support import cli
from tests.support.live_server import MODEL, LiveServer

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "acme-health" / "alerts"
DEP = "acme-alerted"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("PLINTH_REQUIRE_PROMTOOL"):
            pytest.fail("PLINTH_REQUIRE_PROMTOOL is set but promtool is not installed (apt-get install prometheus)")
        pytest.skip("promtool is not installed (Debian package prometheus); the rules checks are skipped")
    return path


def _promtool(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, cwd=cwd)
    assert proc.returncode == 0, f"promtool {' '.join(args)} (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def _error(resp: httpx.Response, status: int, code: str, param: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    if param is not None:
        assert body["error"]["param"] == param, body
    return dict(body["error"])


class _Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        n = int(self.headers.get("content-length", "0"))
        type(self).bodies.append(json.loads(self.rfile.read(n)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alertmanager", handler
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url + "/api/v1", timeout=60) as c:
        r = c.post("/deployments", json={"name": DEP, "model": MODEL, "description": "alerts walkthrough"})
        assert r.status_code == 201, r.text
        yield c


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli.plinth(home, *args, COLUMNS="200", PLINTH_OUTBOUND_ALLOW='["127.0.0.1"]')


def test_a_rule_fires_on_real_traffic_and_notifies_a_webhook(
    live_server: LiveServer, client: Any, api: httpx.Client, receiver: tuple[str, type[_Receiver]]
) -> None:
    url, handler = receiver
    body = {
        "name": "alerted-traffic",
        "signal": "requests",
        "deployment": DEP,
        "comparison": ">",
        "threshold": 0,
        "window": "5m",
        "severity": "info",
        "runbook": "someone is asking",
        "actions": [{"kind": "webhook", "url": url}],
    }
    r = api.post("/alerts/rules", json=body)
    assert r.status_code == 201, r.text
    rule = r.json()
    assert (rule["state"], rule["window_s"], rule["for_s"], rule["actions"]) == (
        "inactive",
        300,
        0,
        [{"kind": "webhook", "url": url, "attempts": 3, "on": ["firing", "resolved"]}],
    )
    assert rule["description"] == f"requests of {DEP} > 0 over 5m"
    _error(api.post("/alerts/rules", json=body), 409, "already_exists", "name")
    first = api.post("/alerts/rules/alerted-traffic/evaluate")
    assert first.status_code == 200, first.text
    assert (first.json()["value"], first.json()["holds"], first.json()["rule"]["state"]) == (0.0, False, "inactive")
    client.chat.completions.create(model=DEP, messages=[{"role": "user", "content": "Hello"}], max_tokens=1)
    deadline = time.monotonic() + 30  # the usage record is written off the request's path
    while True:
        ev = api.post("/alerts/rules/alerted-traffic/evaluate").json()
        if ev["rule"]["state"] == "firing" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert ev["value"] == 1.0 and ev["rule"]["state"] == "firing", ev
    events = api.get("/alerts/events", params={"rule": "alerted-traffic"}).json()["events"]
    assert [(e["from_state"], e["to_state"]) for e in events] == [("inactive", "firing")]
    (delivered,) = events[0]["delivered"]
    assert delivered["ok"] and delivered["status"] == 200
    (payload,) = handler.bodies
    assert payload["version"] == "4" and payload["status"] == "firing"
    assert payload["alerts"][0]["labels"] == {
        "alertname": "alerted-traffic",
        "severity": "info",
        "deployment": DEP,
        "signal": "requests",
        "project": "default",
    }
    assert payload["alerts"][0]["annotations"]["description"] == "someone is asking"
    listed = api.get("/alerts/rules", params={"deployment": DEP}).json()["rules"]
    assert [(x["name"], x["state"], x["last_value"]) for x in listed] == [("alerted-traffic", "firing", 1.0)]
    # the export: a rules file promtool accepts
    exported = api.get("/alerts/rules/export")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("application/yaml")
    doc = yaml.safe_load(exported.text)
    names = [x["alert"] for x in doc["groups"][0]["rules"]]
    assert "alerted-traffic" in names
    as_json = api.get("/alerts/rules/export", params={"format": "json"}).json()
    assert as_json["rules_file"] == exported.text and isinstance(as_json["skipped"], list)
    tmp = live_server.home / "exported-rules.yml"
    tmp.write_text(exported.text)
    assert "SUCCESS" in _promtool("check", "rules", str(tmp))
    # replacing the rule keeps its state; deleting it takes its history
    changed = api.put("/alerts/rules/alerted-traffic", json={**body, "threshold": 5, "name": "alerted-traffic"})
    assert changed.status_code == 200 and changed.json()["threshold"] == 5 and changed.json()["state"] == "firing"
    gone = api.delete("/alerts/rules/alerted-traffic")
    assert gone.status_code == 200 and gone.json()["name"] == "alerted-traffic"
    _error(api.get("/alerts/rules/alerted-traffic"), 404, "not_found")
    _error(api.get("/alerts/events", params={"rule": "alerted-traffic"}), 404, "not_found")


def test_errors_are_clear_and_in_the_documented_shape(api: httpx.Client) -> None:
    base = {"name": "bad", "signal": "error_rate", "deployment": DEP, "threshold": 0.1}
    _error(api.post("/alerts/rules", json={**base, "signal": "vibes"}), 400, "invalid_request", "signal")
    _error(api.post("/alerts/rules", json={**base, "deployment": "nowhere"}), 404, "not_found", "deployment")
    _error(api.post("/alerts/rules", json={**base, "window": "5 parsecs"}), 400, "invalid_request", "window")
    _error(api.post("/alerts/rules", json={**base, "revision": "blue"}), 400, "invalid_request")
    _error(api.post("/alerts/rules", json={**base, "actions": [{"kind": "email"}]}), 400, "invalid_request", "actions[0].kind")
    refused = _error(
        api.post("/alerts/rules", json={**base, "actions": [{"kind": "webhook", "url": "http://10.1.2.3/hook"}]}), 400, "invalid_request"
    )
    assert refused["param"] == "actions[0].url"
    _error(api.post("/alerts/rules", json={k: v for k, v in base.items() if k != "name"}), 400, "invalid_request", "name")
    _error(api.post("/alerts/rules/nothing/evaluate"), 404, "not_found")
    _error(api.get("/alerts/events", params={"since": "yesterday-ish"}), 400, "invalid_request", "since")
    _error(api.get("/alerts/rules/export", params={"format": "pdf"}), 400, "invalid_request")
    signals = api.get("/alerts/signals").json()
    assert {"error_rate", "latency_p95", "drift_score", "anomaly_count"} <= {s["name"] for s in signals["signals"]}
    assert [a["kind"] for a in signals["actions"]] == ["pipeline", "rollback", "webhook"]


def test_the_cli_round_trip_with_the_shipped_rules(live_server: LiveServer, api: httpx.Client, tmp_path: Path) -> None:
    # the shipped Acme rules, aimed at this test's deployment
    text = (EXAMPLE / "rules.yaml").read_text().replace("deployment: acme-assistant", f"deployment: {DEP}")
    (tmp_path / "rules.yaml").write_text(text)
    made = _cli(live_server.home, "alerts", "create", "-f", str(tmp_path / "rules.yaml"))
    assert made.returncode == 0, made.stderr
    assert made.stdout.count("created alert rule") == 5
    again = _cli(live_server.home, "alerts", "create", "-f", str(tmp_path / "rules.yaml"))
    assert again.returncode == 1 and "rule 1 ('acme-canary-errors')" in again.stderr and "already exists" in again.stderr
    assert _cli(live_server.home, "alerts", "create", "-f", str(tmp_path / "rules.yaml"), "--replace").stdout.count("replaced") == 5
    listed = _cli(live_server.home, "alerts", "list", "-d", DEP)
    assert listed.returncode == 0 and "acme-canary-errors" in listed.stdout and "acme-no-traffic" in listed.stdout
    by_api = {r["name"] for r in api.get("/alerts/rules", params={"deployment": DEP}).json()["rules"]}
    assert by_api == {"acme-canary-errors", "acme-slow-answers", "acme-no-traffic", "acme-unhappy-members", "acme-questions-drifted"}
    # flags: a rule of its own
    flags = _cli(
        live_server.home,
        "alerts",
        "create",
        "cli-canary",
        "--signal",
        "error_rate",
        "-d",
        DEP,
        "--revision",
        "canary",
        "--threshold",
        "0.1",
        "--for",
        "1m",
        "--rollback",
    )
    assert flags.returncode == 0 and f"error_rate of {DEP} revision canary > 0.1 over 5m for 1m" in flags.stdout
    # evaluate: no canary, so the canary rule has no value and stays inactive
    ev = _cli(live_server.home, "alerts", "evaluate", "cli-canary", "--json")
    assert ev.returncode == 0, ev.stderr
    (result,) = json.loads(ev.stdout)
    assert result["value"] is None and result["rule"]["state"] == "inactive" and "no canary" in result["details"]["reason"]
    shown = _cli(live_server.home, "alerts", "show", "cli-canary", "--json")
    assert json.loads(shown.stdout)["actions"] == [{"kind": "rollback", "on": ["firing"]}]
    assert json.loads(_cli(live_server.home, "alerts", "events", "-r", "cli-canary", "--json").stdout) == []
    bad = _cli(live_server.home, "alerts", "create", "x", "--signal", "nope", "-d", DEP, "--threshold", "1")
    assert bad.returncode == 2 and "unknown alert signal 'nope'" in bad.stderr
    # the export: the rules with a Prometheus equivalent; promtool accepts it
    out = tmp_path / "rules.yml"
    exported = _cli(live_server.home, "alerts", "export", "--prometheus", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "not exported: acme-unhappy-members: feedback is stored, not counted in a metric" in exported.stderr
    assert "SUCCESS" in _promtool("check", "rules", str(out))
    assert _cli(live_server.home, "alerts", "export").stdout == out.read_text()  # printed as it is, never wrapped
    exported_names = [r["alert"] for r in yaml.safe_load(out.read_text())["groups"][0]["rules"]]
    assert {"acme-canary-errors", "acme-slow-answers", "acme-no-traffic", "cli-canary"} <= set(exported_names)
    for name in ("acme-canary-errors", "acme-slow-answers", "acme-no-traffic", "acme-unhappy-members", "acme-questions-drifted"):
        assert _cli(live_server.home, "alerts", "delete", name).returncode == 0
    assert _cli(live_server.home, "alerts", "delete", "cli-canary").returncode == 0
    assert api.get("/alerts/rules", params={"deployment": DEP}).json()["rules"] == []


def test_the_shipped_prometheus_rules_pass_promtool() -> None:
    assert "SUCCESS" in _promtool("check", "rules", "prometheus-rules.yml", cwd=EXAMPLE)
    assert "SUCCESS" in _promtool("test", "rules", "tests.yml", cwd=EXAMPLE)


def test_the_compliance_report_by_api_and_cli(live_server: LiveServer, client: Any, api: httpx.Client, tmp_path: Path) -> None:
    client.chat.completions.create(model=DEP, messages=[{"role": "user", "content": "What does Gold cover?"}], max_tokens=1)
    deadline = time.monotonic() + 30  # the usage record is written off the request's path
    while True:
        data = api.get(f"/deployments/{DEP}/report", params={"since": "1h", "format": "json"})
        assert data.status_code == 200, data.text
        if data.json()["usage"]["totals"]["requests"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    report = data.json()
    assert report["deployment"]["name"] == DEP and report["usage"]["totals"]["requests"] >= 1
    assert report["model_versions"] == [MODEL] and report["revisions"][0]["targets"][0]["model"] == MODEL
    page = api.get(f"/deployments/{DEP}/report", params={"since": "1h"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f"Compliance report: {DEP}" in page.text and "<svg" in page.text and "@media print" in page.text
    _error(api.get(f"/deployments/{DEP}/report", params={"since": "last week"}), 400, "invalid_request", "since")
    _error(api.get(f"/deployments/{DEP}/report", params={"since": "1h", "until": "2h"}), 400, "invalid_request", "until")
    _error(api.get("/deployments/nowhere/report"), 404, "not_found")
    out = tmp_path / "report.html"
    made = _cli(live_server.home, "monitor", "report", DEP, "--since", "1h", "-o", str(out))
    assert made.returncode == 0, made.stderr
    assert f"wrote {out}" in made.stderr.replace("\n", "")
    html_text = out.read_text()
    assert html_text.startswith("<!doctype html>") and f"Compliance report: {DEP}" in html_text
    printed = _cli(live_server.home, "monitor", "report", DEP, "--since", "1h", "--json")
    assert printed.returncode == 0 and json.loads(printed.stdout)["deployment"]["name"] == DEP
