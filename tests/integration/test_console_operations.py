"""The console's operations pages against a live server: deployments (the live split, canary,
traffic, promote, rollback), monitoring (request log, drift, anomalies, bias reports, alerts,
one request) and pipelines (a run drawn as a DAG) — over HTTP and in a real headless Chromium
(tests/support/browser.py).

Everything is made through the real API in a project of this module's own (the live server is
shared by every test of the worker, and other modules list pipelines and deployments of the
default project): a redacting guardrail policy, a deployment of the embedded model behind it, a
chat through the deployment with hostile strings in the prompt, a pipeline with three steps and
a manual trigger. The browser works in that project through the console's project cookie,
removed again when the module ends.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
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
from tests.support.browser import console_errors, open_page, wait_for
from tests.support.live_server import MODEL, LiveServer
from tests.unit.oversight.test_drift_methods import ACME, _users, drift_data

IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(1)</script>"
TAG = uuid.uuid4().hex[:8]
PROJECT = f"console-ops-{TAG}"
DEPLOYMENT = f"ops-assistant-{TAG}"
DRIFT_DEPLOYMENT = f"ops-drift-{TAG}"
POLICY = {"name": "ops-redact", "rules": [{"detector": "pii", "on": ["input", "output"], "action": "redact"}]}
PIPELINE = {
    "name": "ops-demo",
    "params": {"adapter": "acme-lora"},
    "steps": [
        {"name": "tune", "job": "selftest", "spec": {"steps": 2, "sleep_s": 0, "result": {"adapter": "${params.adapter}"}}},
        {"name": "register", "action": "set", "spec": {"ref": "${steps.tune.outputs.adapter}"}},
        {"name": "gate", "action": "check", "spec": {"that": "${steps.register.outputs.ref}"}},
    ],
}
HEADERS = {"X-Plinth-Project": PROJECT}


def _ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def _wait_run(api: httpx.Client, run_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        detail = _ok(api.get(f"/pipeline-runs/{run_id}"))
        if detail["run"]["state"] in ("succeeded", "failed", "cancelled"):
            return dict(detail)
        assert time.monotonic() < deadline, detail
        time.sleep(0.3)


@pytest.fixture(scope="module")
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url + "/api/v1", timeout=60, headers=HEADERS) as c:
        yield c


@pytest.fixture(scope="module")
def ops(live_server: LiveServer, api: httpx.Client) -> dict[str, Any]:
    """The project, its policy and deployment, a hostile chat through it, and a finished
    pipeline run with a manual trigger."""
    from openai import OpenAI

    _ok(httpx.post(live_server.url + "/api/v1/projects", json={"name": PROJECT, "description": "console operations tests"}), 201)
    _ok(api.post("/guardrails/policies", json=POLICY), 201)
    created = _ok(api.post("/deployments", json={"name": DEPLOYMENT, "model": MODEL, "guardrail_policy": "ops-redact"}), 201)
    assert created["traffic"] == {"1": 100.0}

    client = OpenAI(base_url=live_server.v1, api_key="x", max_retries=0, timeout=120, default_headers=HEADERS)
    answer = client.chat.completions.create(
        model=DEPLOYMENT, messages=[{"role": "user", "content": f"Hello {SCRIPT} and {IMG} there"}], max_tokens=4
    )
    deadline = time.monotonic() + 30
    while True:  # the request log's writer thread may hold the entry for a moment
        r = api.get(f"/requests/{answer.id}")
        if r.status_code == 200:
            break
        assert time.monotonic() < deadline, r.text
        time.sleep(0.2)
    assert SCRIPT in r.json()["prompt"], r.json()

    _ok(api.post("/pipelines", json=PIPELINE), 201)
    run = _ok(api.post("/pipelines/ops-demo/runs", json={"reason": "console test"}), 201)
    detail = _wait_run(api, run["id"])
    assert detail["run"]["state"] == "succeeded", detail
    _ok(api.post("/triggers", json={"name": "ops-by-hand", "pipeline": "ops-demo", "kind": "manual", "cooldown_s": 3600}), 201)
    rule = {"name": "ops-traffic", "signal": "requests", "deployment": DEPLOYMENT, "comparison": ">", "threshold": 0, "window": "5m"}
    _ok(api.post("/alerts/rules", json={**rule, "runbook": f"see {SCRIPT}"}), 201)
    return {"response_id": answer.id, "run_id": run["id"]}


def _log(home: Path, texts: list[str], start: datetime, tag: int) -> None:
    """Request log entries of the drift deployment as the server's writer writes them (with
    real MiniLM vectors): prompts through the model would take minutes (as test_drift_api.py)."""
    vecs = get_embedder(Settings(), "minilm").embed(texts)
    store = SqlStore(f"sqlite:///{home / 'plinth.db'}")
    try:
        with system_scope():
            store.add_request_logs(
                [
                    RequestLogEntry(
                        response_id=f"chatcmpl-{TAG}{tag:08x}{i:016x}",
                        kind="chat",
                        model=DRIFT_DEPLOYMENT,
                        served_model=MODEL,
                        outcome="ok",
                        at=start + timedelta(seconds=i),
                        deployment=DRIFT_DEPLOYMENT,
                        revision=1,
                        text_mode=TextMode.REDACTED,
                        prompt_text=t,
                        embedding=v.tobytes(),
                        project=PROJECT,
                    )
                    for i, (t, v) in enumerate(zip(texts, vecs, strict=True))
                ]
            )
    finally:
        store.close()


@pytest.fixture(scope="module")
def drift(live_server: LiveServer, api: httpx.Client, ops: dict[str, Any]) -> dict[str, Any]:
    """Two drift runs of a second deployment against an uploaded dataset: a quiet one (the
    held-out FAQ questions) and one that fires (50 prompts in other languages, one hostile),
    which also flags anomalous requests."""
    r = api.post(
        "/datasets/ops-faq/versions",
        content=(ACME / "faq.jsonl").read_bytes(),
        params={"filename": "faq.jsonl"},
        headers={"content-type": "application/x-ndjson"},
        timeout=120,
    )
    assert r.status_code in (200, 201), r.text
    _ok(api.post("/deployments", json={"name": DRIFT_DEPLOYMENT, "model": MODEL}), 201)
    now = datetime.now(UTC)
    _log(live_server.home, [*drift_data().language("dev"), f"Hola {SCRIPT} {IMG} ¿dónde está mi reclamación?"], now - timedelta(hours=5), 1)
    _log(live_server.home, _users(ACME / "faq-eval.jsonl"), now - timedelta(minutes=30), 2)
    quiet = _ok(
        api.post(f"/deployments/{DRIFT_DEPLOYMENT}/drift", json={"window": "1h", "reference": "dataset:ops-faq@1"}, timeout=120), 201
    )
    loud = _ok(
        api.post(f"/deployments/{DRIFT_DEPLOYMENT}/drift", json={"window": "6h", "reference": "dataset:ops-faq@1"}, timeout=120), 201
    )
    assert not quiet["drifted"] and loud["drifted"]
    return {"quiet": quiet, "loud": loud}


@pytest.fixture(scope="module")
def in_project(live_server: LiveServer, browser: Any, ops: dict[str, Any]) -> Iterator[Any]:
    """The browser working in this module's project (the console's project cookie)."""
    open_page(browser, f"{live_server.url}/console/project?name={PROJECT}")
    try:
        yield browser
    finally:
        browser.delete_cookie("plinth_project")


def _page(live_server: LiveServer, path: str) -> httpx.Response:
    return httpx.get(live_server.url + path, headers=HEADERS, timeout=60)


def test_pages_answer_over_http(live_server: LiveServer, ops: dict[str, Any]) -> None:
    run_id, rid = ops["run_id"], ops["response_id"]
    pages = {
        "/console/deployments": ["Deployments", DEPLOYMENT, 'class="split"', "New deployment"],
        f"/console/deployments/{DEPLOYMENT}": ["Live traffic", "Start a canary", "Revisions", "ops-redact", "History", "created"],
        f"/console/deployments/{DEPLOYMENT}/live": ['class="split"', "Requests (last hour)"],
        f"/console/deployments/{DEPLOYMENT}/quality": ["Error rate", "Latency p95"],
        "/console/monitoring": ["Request log", rid[:24], "&lt;script&gt;alert(1)&lt;/script&gt;"],
        f"/console/monitoring?tab=requests&deployment={DEPLOYMENT}&outcome=ok": [rid[:24]],
        "/console/monitoring?tab=requests&flagged=true": ["No logged requests match."],
        "/console/monitoring?tab=drift": ["Drift", DEPLOYMENT, "No drift runs"],
        "/console/monitoring?tab=anomalies": ["Anomalies", "No flagged requests."],
        "/console/monitoring?tab=bias": ["Bias reports"],
        "/console/monitoring?tab=alerts": ["Alert rules", "ops-traffic", "requests", "Recent alert events"],
        f"/console/monitoring/requests/{rid}": [rid, "Guardrail findings", "ops-redact", "&lt;img src=x onerror=alert(1)&gt;"],
        "/console/pipelines": ["Pipelines", "ops-demo", run_id, "ops-by-hand", "tune → register → gate"],
        f"/console/pipelines/runs/{run_id}": ["<svg", 'data-step="tune"', 'data-state="succeeded"', "Steps", "register"],
        f"/console/pipelines/runs/{run_id}/steps/tune/logs": ["counted 2 steps"],
    }
    for path, expected in pages.items():
        r = _page(live_server, path)
        assert r.status_code == 200, (path, r.text[:2000])
        assert r.headers["content-type"].startswith("text/html")
        for text in expected:
            assert text in r.text, (path, text)
        assert SCRIPT not in r.text and IMG not in r.text, path
    # the quality fragment counts the chat made through the deployment
    assert ">1<" in _page(live_server, f"/console/deployments/{DEPLOYMENT}/quality").text


def test_unknown_things_are_404_pages(live_server: LiveServer, ops: dict[str, Any]) -> None:
    for path in (
        "/console/deployments/no-such-deployment",
        "/console/deployments/no-such-deployment/live",
        "/console/monitoring/requests/chatcmpl-nosuchrequest",
        "/console/pipelines/runs/run-00000000000000000000",
        "/console/pipelines/runs/not-a-run-id",
        f"/console/pipelines/runs/{ops['run_id']}/steps/ghost/logs",
    ):
        r = _page(live_server, path)
        assert r.status_code == 404, (path, r.text[:500])
        assert r.headers["content-type"].startswith("text/html") and "not_found" in r.text, path
    assert _page(live_server, "/console/monitoring?tab=nope").status_code == 400
    # another project sees none of this one's deployments
    assert httpx.get(f"{live_server.url}/console/deployments/{DEPLOYMENT}", timeout=60).status_code == 404


def test_pages_render_without_console_errors(live_server: LiveServer, in_project: Any, ops: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    b = in_project
    console_errors(b)
    for path in (
        "/console/deployments",
        f"/console/deployments/{DEPLOYMENT}",
        "/console/monitoring?tab=drift",
        "/console/monitoring?tab=anomalies",
        "/console/monitoring?tab=bias",
        "/console/monitoring?tab=alerts",
        "/console/pipelines",
        f"/console/pipelines/runs/{ops['run_id']}",
        f"/console/pipelines/runs/{ops['run_id']}/steps/tune/logs",
    ):
        open_page(b, live_server.url + path)
        assert b.find_element(By.TAG_NAME, "h1").text, path
        assert console_errors(b) == [], path
    # the quality section is loaded after the page, by htmx
    open_page(b, f"{live_server.url}/console/deployments/{DEPLOYMENT}")
    wait_for(lambda: "Latency p95" in b.find_element(By.ID, "quality").text, what="the quality table")
    assert console_errors(b) == []


def test_drift_chart_verdicts_and_anomalies(live_server: LiveServer, in_project: Any, drift: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    b = in_project
    console_errors(b)
    open_page(b, f"{live_server.url}/console/monitoring?tab=drift")
    section = b.find_element(By.XPATH, f"//section[.//h3[normalize-space()='{DRIFT_DEPLOYMENT}']]")
    wait_for(lambda: section.find_elements(By.CSS_SELECTOR, ".chart canvas"), what="the drift chart")  # drawn by uPlot
    text = section.text
    assert "2 runs in 30 days" in text and "drifted" in text
    language = section.find_element(By.XPATH, ".//tr[td[starts-with(normalize-space(), 'language')]]")
    assert "drifted" in language.text
    quiet = b.find_element(By.XPATH, f"//section[.//h3[normalize-space()='{DEPLOYMENT}']]")
    assert "No drift runs" in quiet.text
    assert console_errors(b) == []

    open_page(b, f"{live_server.url}/console/monitoring?tab=anomalies&deployment={DRIFT_DEPLOYMENT}")
    rows = b.find_elements(By.CSS_SELECTOR, "table.requests tbody tr")
    assert len(rows) >= min(50, drift["loud"]["results"]["anomalies"]["flagged"]) > 0
    assert all(DRIFT_DEPLOYMENT in r.text for r in rows)
    assert b.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    assert console_errors(b) == []


def test_request_log_shows_hostile_prompts_as_text(live_server: LiveServer, in_project: Any, ops: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    b = in_project
    console_errors(b)
    open_page(b, f"{live_server.url}/console/monitoring?tab=requests&deployment={DEPLOYMENT}")
    prompt = b.find_element(By.CSS_SELECTOR, "table.requests td.prompt")
    assert SCRIPT in prompt.text and IMG in prompt.text
    assert b.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    assert b.find_elements(By.CSS_SELECTOR, "main script") == []
    assert console_errors(b) == []

    b.find_element(By.LINK_TEXT, ops["response_id"][:24]).click()
    wait_for(lambda: ops["response_id"] in b.find_element(By.TAG_NAME, "h1").text, what="the request's page")
    assert SCRIPT in b.find_element(By.ID, "prompt-text").text and IMG in b.find_element(By.ID, "prompt-text").text
    assert b.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    assert b.find_elements(By.CSS_SELECTOR, "main script") == []
    assert console_errors(b) == []


def _split_text(b: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(b.find_element(By.CSS_SELECTOR, "#live .split").text)


def test_canary_traffic_promote_and_rollback_from_the_page(live_server: LiveServer, in_project: Any, api: httpx.Client) -> None:
    from selenium.webdriver.common.by import By

    b = in_project
    console_errors(b)
    url = f"{live_server.url}/console/deployments/{DEPLOYMENT}"
    open_page(b, url)
    assert "r1 stable 100%" in _split_text(b)

    # a canary: the same model with another system prompt, on 25% of the traffic
    form = b.find_element(By.ID, "canary-form")
    percent = form.find_element(By.NAME, "percent")
    percent.clear()
    percent.send_keys("25")
    system = form.find_element(By.NAME, "system_prompt")
    system.clear()
    system.send_keys("Answer in one short sentence.")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: "r2 canary 25%" in _split_text(b), what="the canary in the split")
    dep = _ok(api.get(f"/deployments/{DEPLOYMENT}"))
    assert dep["traffic"] == {"1": 75.0, "2": 25.0}
    assert dep["canary"]["targets"][0]["system_prompt"] == "Answer in one short sentence."
    assert dep["canary"]["targets"][0]["guardrail_policy"] == "ops-redact"  # prefilled from the stable revision
    assert console_errors(b) == []

    # the canary's share
    form = b.find_element(By.ID, "traffic-form")
    field = form.find_element(By.NAME, "percent")
    field.clear()
    field.send_keys("40")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: _ok(api.get(f"/deployments/{DEPLOYMENT}"))["traffic"] == {"1": 60.0, "2": 40.0}, what="traffic 60/40")
    open_page(b, url)
    assert "r2 canary 40%" in _split_text(b) and "r1 stable 60%" in _split_text(b)

    # promote: all traffic on revision 2
    b.find_element(By.ID, "promote").click()
    wait_for(lambda: "r2 stable 100%" in _split_text(b), what="the promoted revision in the split")
    assert _ok(api.get(f"/deployments/{DEPLOYMENT}"))["traffic"] == {"2": 100.0}
    assert b.find_element(By.ID, "canary-form")  # no canary any more: the form is back

    # roll back to a chosen revision: revision 1 is stable again
    assert b.find_elements(By.ID, "rollback") == []  # the button is for a running canary
    form = b.find_element(By.ID, "rollback-form")
    form.find_element(By.NAME, "to_revision").send_keys("1")
    form.find_element(By.NAME, "reason").send_keys(f"back {SCRIPT}")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: "r1 stable 100%" in _split_text(b), what="revision 1 stable again")
    assert _ok(api.get(f"/deployments/{DEPLOYMENT}"))["traffic"] == {"1": 100.0}
    history = [e["kind"] for e in _ok(api.get(f"/deployments/{DEPLOYMENT}/history"))["events"]]
    assert history[:4] == ["rolled_back", "promoted", "traffic", "canary"]
    wait_for(lambda: f"back {SCRIPT}" in b.find_element(By.TAG_NAME, "main").text, what="the reason in the history")
    assert b.find_elements(By.CSS_SELECTOR, "main script") == []

    # a canary rolled back with the button (confirmed in the browser's dialog)
    # (made through the API while the page is open: htmx refreshes the split within seconds)
    _ok(api.post(f"/deployments/{DEPLOYMENT}/canary", json={"model": MODEL, "percent": 10, "system_prompt": "Be brief."}), 201)
    wait_for(lambda: "r3 canary 10%" in _split_text(b), timeout=15, what="the split refreshed by htmx")
    open_page(b, url)
    b.find_element(By.ID, "rollback").click()
    wait_for(lambda: b.switch_to.alert, what="the confirmation").accept()
    wait_for(lambda: "r1 stable 100%" in _split_text(b), what="the canary rolled back")
    assert _ok(api.get(f"/deployments/{DEPLOYMENT}"))["traffic"] == {"1": 100.0}
    assert console_errors(b) == []


def test_pipeline_run_is_drawn_as_a_dag(live_server: LiveServer, in_project: Any, api: httpx.Client, ops: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    b = in_project
    console_errors(b)
    open_page(b, f"{live_server.url}/console/pipelines")
    assert ops["run_id"] in b.find_element(By.TAG_NAME, "main").text

    # fire the manual trigger: it starts a run, which the API lists
    b.find_element(By.XPATH, "//button[normalize-space()='Fire ops-by-hand']").click()
    wait_for(lambda: '"fired": true' in b.find_element(By.ID, "fire-result").text, what="the trigger's answer")
    fired = _ok(api.get("/triggers/events", params={"trigger": "ops-by-hand"}))["events"][0]
    assert fired["fired"] and fired["run_id"]
    _wait_run(api, fired["run_id"])

    # a run with other parameters from the Run form: the page goes to the new run
    params = b.find_element(By.CSS_SELECTOR, "form.run-form input[name=params]")
    params.clear()
    params.send_keys('{"adapter": "v9"}')
    b.find_element(By.CSS_SELECTOR, "form.run-form button[type=submit]").click()
    wait_for(lambda: "/console/pipelines/runs/run-" in b.current_url, what="the new run's page")
    run_id = b.current_url.rsplit("/", 1)[1]
    assert _ok(api.get(f"/pipeline-runs/{run_id}"))["run"]["params"] == {"adapter": "v9"}
    _wait_run(api, run_id)
    open_page(b, b.current_url)
    steps = b.find_elements(By.CSS_SELECTOR, ".dag svg g.step")
    assert [s.get_attribute("data-step") for s in steps] == ["tune", "register", "gate"]
    assert {s.get_attribute("data-state") for s in steps} == {"succeeded"}
    edges = {(e.get_attribute("data-from"), e.get_attribute("data-to")) for e in b.find_elements(By.CSS_SELECTOR, ".dag svg path.edge")}
    assert edges == {("tune", "register"), ("register", "gate")}
    assert "v9" in b.find_element(By.TAG_NAME, "main").text
    assert b.find_elements(By.ID, "cancel") == []  # a finished run cannot be cancelled
    b.find_element(By.LINK_TEXT, "logs").click()
    wait_for(lambda: "counted 2 steps" in b.find_element(By.CSS_SELECTOR, "pre.log").text, what="the tune step's log")
    assert console_errors(b) == []


def test_create_a_deployment_from_the_form(live_server: LiveServer, in_project: Any, api: httpx.Client) -> None:
    from selenium.webdriver.common.by import By

    b = in_project
    console_errors(b)
    open_page(b, f"{live_server.url}/console/deployments")
    name = f"ops-formed-{TAG}"
    b.find_element(By.ID, "dep-name").send_keys(name)
    b.find_element(By.ID, "dep-model").send_keys(MODEL)
    b.find_element(By.ID, "dep-description").send_keys(f"made in the form {IMG}")
    b.find_element(By.ID, "dep-system").send_keys("Be kind.")
    b.find_element(By.CSS_SELECTOR, "form[data-api='POST /api/v1/deployments'] button[type=submit]").click()
    wait_for(lambda: b.current_url.endswith(f"/console/deployments/{name}"), what="the new deployment's page")
    dep = _ok(api.get(f"/deployments/{name}"))
    assert dep["traffic"] == {"1": 100.0} and dep["description"] == f"made in the form {IMG}" and dep["auto_rollback"] is True
    assert dep["stable"]["targets"][0]["system_prompt"] == "Be kind."
    assert f"made in the form {IMG}" in b.find_element(By.TAG_NAME, "main").text
    assert b.find_elements(By.CSS_SELECTOR, "img[src='x']") == []

    # a refused one says why, and stays on the page
    open_page(b, f"{live_server.url}/console/deployments")
    b.find_element(By.ID, "dep-name").send_keys(name)
    b.find_element(By.ID, "dep-model").send_keys(MODEL)
    b.find_element(By.CSS_SELECTOR, "form[data-api='POST /api/v1/deployments'] button[type=submit]").click()
    wait_for(lambda: "exists" in b.find_element(By.ID, "create-error").text, what="the conflict shown")
    assert b.current_url.endswith("/console/deployments")
    console_errors(b)  # the refused request (409) is logged by the browser as a failed load


def test_cancel_and_resume_a_run(live_server: LiveServer, in_project: Any, api: httpx.Client, ops: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    b = in_project
    slow = {"name": "ops-slow", "steps": [{"name": "wait", "job": "selftest", "spec": {"steps": 150, "sleep_s": 0.1}}]}
    _ok(api.post("/pipelines", json=slow), 201)
    run_id = _ok(api.post("/pipelines/ops-slow/runs", json={}), 201)["id"]
    url = f"{live_server.url}/console/pipelines/runs/{run_id}"
    console_errors(b)

    # an unfinished run's page follows it: cancelled through the API, the page shows it by itself
    open_page(b, url)
    assert b.find_elements(By.ID, "cancel") and not b.find_elements(By.ID, "resume")
    _ok(api.post(f"/pipeline-runs/{run_id}/cancel"))
    wait_for(lambda: b.find_elements(By.ID, "resume"), timeout=15, what="the page refreshed by htmx")
    assert b.find_element(By.ID, "run-state").text == "cancelled"
    assert b.find_element(By.CSS_SELECTOR, ".dag g.step").get_attribute("data-state") == "cancelled"

    # resume and cancel with the buttons
    b.find_element(By.ID, "resume").click()
    wait_for(lambda: b.find_elements(By.ID, "cancel"), what="the run resumed and the page reloaded")
    assert _ok(api.get(f"/pipeline-runs/{run_id}"))["run"]["state"] in ("pending", "running")
    b.find_element(By.ID, "cancel").click()
    wait_for(lambda: b.switch_to.alert, what="the confirmation").accept()
    wait_for(lambda: b.find_elements(By.ID, "resume"), what="the run cancelled and the page reloaded")
    assert _ok(api.get(f"/pipeline-runs/{run_id}"))["run"]["state"] == "cancelled"
    b.find_element(By.ID, "resume").click()
    wait_for(lambda: b.find_elements(By.ID, "cancel"), what="the run resumed again")

    # the step's log page follows the running step until its job ends
    open_page(b, f"{live_server.url}/console/pipelines/runs/{run_id}/steps/wait/logs")
    wait_for(lambda: "counted 150 steps" in b.find_element(By.ID, "step-log").text, timeout=90, what="the log refreshed to the end")
    assert "succeeded" in b.find_element(By.ID, "step-log").text
    assert _wait_run(api, run_id)["run"]["state"] == "succeeded"
    assert console_errors(b) == []


def test_explain_a_logged_answer(live_server: LiveServer, in_project: Any, ops: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    b = in_project
    console_errors(b)
    open_page(b, f"{live_server.url}/console/monitoring/requests/{ops['response_id']}")
    b.find_element(By.ID, "explain").click()
    box = b.find_element(By.ID, "explanation")
    wait_for(lambda: "Answer log-likelihood" in box.text, timeout=300, what="the explanation")
    assert "The answer cited no passages." in box.text
    spans = [td.text for td in box.find_elements(By.CSS_SELECTOR, "table td:first-child")]
    assert any("<script>" in t or "<img" in t for t in spans), spans  # the question's words, as text
    assert b.find_elements(By.CSS_SELECTOR, "img[src='x']") == [] and b.find_elements(By.CSS_SELECTOR, "main script") == []
    assert console_errors(b) == []
