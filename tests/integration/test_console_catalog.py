"""The console's catalog-side pages against a live server: overview, models, datasets, usage,
API keys and the audit log — over HTTP and in a real headless Chromium (tests/support/browser.py).

Data is made through the real API with names unique to this module (the live server is shared
by every test of the worker); hostile strings go into free-text fields (a dataset version's
note and rows, a feedback comment, a request path the audit log records) and must show as text.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.support.browser import console_errors, open_page, wait_for
from tests.support.live_server import MODEL, LiveServer, start_server, stop_server

IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(1)</script>"
TAG = "cc1"  # fixed: parametrized ids must be the same in every pytest-xdist worker
DATASET = f"console-ds-{TAG}"


def _rows(n: int, extra: str = "") -> bytes:
    rows = [{"prompt": f"question {i} {extra}".strip(), "completion": f"answer {i}"} for i in range(n)]
    return "\n".join(json.dumps(r) for r in rows).encode()


@pytest.fixture(scope="module")
def data(live_server: LiveServer, client: Any) -> Iterator[dict[str, Any]]:
    """A dataset with two versions (a hostile note and row), a rated response with a hostile
    comment, and an audited request whose path holds a hostile string."""
    api = live_server.url + "/api/v1"
    r = httpx.post(f"{api}/datasets/{DATASET}/versions", content=_rows(30), params={"filename": "a.jsonl"}, timeout=60)
    assert r.status_code == 201, r.text
    r = httpx.post(
        f"{api}/datasets/{DATASET}/versions",
        content=_rows(25) + b"\n" + json.dumps({"prompt": SCRIPT, "completion": IMG}).encode(),
        params={"filename": "b.jsonl", "note": IMG},
        timeout=60,
    )
    assert r.status_code == 201, r.text
    answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hi"}], max_tokens=4)
    r = httpx.post(f"{api}/feedback", json={"response_id": answer.id, "rating": -1, "comment": f"bad {IMG} {SCRIPT}"}, timeout=30)
    assert r.status_code == 201, r.text
    other = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say bye"}], max_tokens=4)
    r = httpx.post(f"{api}/feedback", json={"response_id": other.id, "rating": 1, "comment": "fine"}, timeout=30)
    assert r.status_code == 201, r.text
    dep = f"console-dep-{TAG}"
    r = httpx.post(f"{api}/deployments", json={"name": dep, "model": MODEL, "description": IMG}, timeout=30)
    assert r.status_code == 201, r.text
    r = httpx.post(f"{api}/deployments/{dep}/canary", json={"model": MODEL, "system_prompt": "Be brief.", "percent": 25}, timeout=30)
    assert r.status_code == 201, r.text
    rule = {"name": f"console-alert-{TAG}", "signal": "requests", "deployment": dep, "comparison": ">", "threshold": 0, "window": "5m"}
    r = httpx.post(f"{api}/alerts/rules", json=rule, timeout=30)
    assert r.status_code == 201, r.text
    client.chat.completions.create(model=dep, messages=[{"role": "user", "content": "Hello"}], max_tokens=1)
    wait_for(  # the usage record is written off the request's path
        lambda: httpx.post(f"{api}/alerts/rules/{rule['name']}/evaluate", timeout=30).json()["rule"]["state"] == "firing",
        timeout=30,
        what="the alert rule to fire",
    )
    # refused (not a dataset name) but audited, with the path as its target
    r = httpx.post(f"{api}/datasets/{IMG}/versions", content=b"{}", timeout=30)
    assert r.status_code == 400
    wait_for(
        lambda: any(IMG in e["target"] for e in httpx.get(f"{api}/audit", params={"target_type": "http"}, timeout=30).json()["entries"]),
        what="the audit entry of the refused request",
    )
    yield {"api": api, "response_id": answer.id}
    # what other tests of the shared server list stays as they expect it
    httpx.delete(f"{api}/alerts/rules/{rule['name']}", timeout=30)
    httpx.delete(f"{api}/deployments/{dep}", timeout=30)
    httpx.delete(f"{api}/datasets/{DATASET}", timeout=30)


PAGES = {
    "/console/": [
        "Overview",
        "Traffic, last hour",
        "Models loaded",
        MODEL,
        "Latest jobs",
        f"console-dep-{TAG}",
        "r1 stable 75%",
        f"console-alert-{TAG}",
        "Latest alert changes",
        "r2 canary 25%",
    ],
    "/console/models": ["Models", MODEL, "Runtimes", "llamacpp", "Import or register a model"],
    f"/console/models/{MODEL}": [MODEL, "Metadata", "Attachments", "Adapters", "gguf"],
    "/console/datasets": ["Datasets", DATASET],
    f"/console/datasets/{DATASET}": [DATASET, "Versions", "Statistics of version 2", "Rows 1 to 20 of 26", "Compare versions"],
    f"/console/datasets/{DATASET}?from=1&to=2": ["Samples added", "Moved split"],
    f"/console/datasets/{DATASET}?diff=1..2": ["Samples added"],
    f"/console/datasets/{DATASET}?version=1&split=train&offset=20": ["Rows 21 to 27 of 27"],
    "/console/usage": ["Usage", "Requests per 1h", "By model", "By API key", "By day", "Feedback", "negative", "fine"],
    "/console/usage?since=7d": ["Requests per 1d", "last 7d"],
    "/console/usage?since=30d&feedback_limit=1": ["Show more"],
    "/console/keys": ["API keys", "Create a key"],
    "/console/audit": ["Audit log", "Actor"],
}


@pytest.mark.parametrize("path", list(PAGES))
def test_pages_answer_with_their_content(live_server: LiveServer, data: dict[str, Any], path: str) -> None:
    r = httpx.get(live_server.url + path, timeout=30)
    assert r.status_code == 200, r.text[:2000]
    assert r.headers["content-type"].startswith("text/html")
    assert "Content-Security-Policy" in r.headers
    for text in PAGES[path]:
        assert text in r.text, f"{text!r} is not on {path}"
    # hostile strings never reach a page unescaped
    assert IMG not in r.text and SCRIPT not in r.text


@pytest.mark.parametrize("since", ["24h", "7d", "30d"])
def test_the_usage_tables_and_series(live_server: LiveServer, data: dict[str, Any], since: str) -> None:
    today = datetime.now(UTC).date().isoformat()
    for by, text in (("model", MODEL), ("key", "no key"), ("day", today)):
        r = httpx.get(live_server.url + "/console/usage/table", params={"by": by, "since": since}, timeout=30)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert f'data-usage="{by}"' in r.text and text in r.text, (by, r.text)
    spec = httpx.get(live_server.url + "/console/usage/series.json", params={"since": since}, timeout=30).json()
    assert spec["time"] is True and len(spec["x"]) >= 1 and sum(spec["series"][0]["values"]) >= 2
    assert httpx.get(live_server.url + "/console/usage/table", params={"by": "nope"}, timeout=30).status_code == 400


def test_the_overview_draws_the_traffic_split(live_server: LiveServer, data: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    html = httpx.get(live_server.url + "/console/", timeout=30).text
    block = re.search(r'<script type="application/json" id="traffic-data">(.*?)</script>', html, re.S)
    assert block is not None
    traffic = json.loads(block.group(1))
    assert len(traffic["x"]) == 60 and sum(traffic["series"][0]["values"]) >= 3  # this module's requests of the last hour
    open_page(browser, live_server.url + "/console/")
    bar = browser.find_element(By.CSS_SELECTOR, f".split[aria-label^='traffic split of console-dep-{TAG}']")
    widths = [s.size["width"] for s in bar.find_elements(By.TAG_NAME, "span")]
    assert len(widths) == 2 and widths[0] > 2 * widths[1] > 0  # 75% and 25%
    assert console_errors(browser) == []


def test_hostile_strings_are_escaped_in_the_html(live_server: LiveServer, data: dict[str, Any]) -> None:
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    for path in (f"/console/datasets/{DATASET}", "/console/usage", "/console/audit"):
        body = httpx.get(live_server.url + path, timeout=30).text
        assert escaped in body, path


def test_filters_and_paging_of_the_audit_log(live_server: LiveServer, data: dict[str, Any]) -> None:
    for i in range(3):
        httpx.post(f"{data['api']}/datasets/bad%20name-{TAG}-{i}/versions", content=b"{}", timeout=30)
    # the HTTP side of the audit log is written just after the answer: wait for it to land
    wait_for(
        lambda: f"bad name-{TAG}-2" in httpx.get(live_server.url + "/console/audit", params={"action": "http POST"}, timeout=30).text,
        what="the audit entry",
    )
    target = f"/api/v1/datasets/bad name-{TAG}-1/versions"
    only = httpx.get(live_server.url + "/console/audit", params={"target": target}, timeout=30).text
    assert f"bad name-{TAG}-1" in only and f"bad name-{TAG}-2" not in only
    # before_id pages back: the newest entry is not on the page of older ones
    first = httpx.get(f"{data['api']}/audit", params={"limit": 1}, timeout=30).json()["entries"][0]
    older = httpx.get(live_server.url + "/console/audit", params={"before_id": first["id"]}, timeout=30)
    assert older.status_code == 200 and f">{first['id']}</td>" not in older.text and "Newest" in older.text


@pytest.mark.parametrize("path", ["/console/models/no-such-model", f"/console/datasets/no-such-{TAG}"])
def test_unknown_names_are_404_pages(live_server: LiveServer, path: str) -> None:
    r = httpx.get(live_server.url + path, timeout=30)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "no-such" in r.text and "<html" in r.text


def test_every_page_renders_in_the_browser_without_errors(live_server: LiveServer, data: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    console_errors(browser)  # what earlier tests left
    for path in PAGES:
        open_page(browser, live_server.url + path)
        assert browser.find_element(By.TAG_NAME, "h1").text, path
        assert console_errors(browser) == [], path
    # the charts drew (uPlot made a canvas)
    for path in ("/console/", "/console/usage"):
        open_page(browser, live_server.url + path)
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".chart canvas"), what=f"the chart on {path}")
        assert console_errors(browser) == [], path
    # the usage tables came in (htmx)
    tables = ", ".join(f"#usage-by-{by} table[data-usage='{by}']" for by in ("model", "key", "day"))
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, tables)) == 3, what="the three usage tables")
    assert MODEL in browser.find_element(By.ID, "usage-by-model").text
    assert console_errors(browser) == []


def test_hostile_strings_show_as_text_in_the_browser(live_server: LiveServer, data: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    for path in (f"/console/datasets/{DATASET}?split=all&offset=20", "/console/usage", "/console/audit"):
        open_page(browser, live_server.url + path)
        assert browser.find_elements(By.CSS_SELECTOR, "img[src='x']") == [], path
        assert browser.find_elements(By.XPATH, "//script[contains(., 'alert(1)')]") == [], path
        assert IMG in browser.find_element(By.TAG_NAME, "main").text, path
        assert console_errors(browser) == [], path


def _loaded(api: str, name: str) -> bool:
    return bool(httpx.get(f"{api}/models/{name}", timeout=30).json()["loaded"])


def test_unload_and_load_buttons(live_server: LiveServer, data: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    api = data["api"]
    assert _loaded(api, MODEL)
    try:
        open_page(browser, live_server.url + "/console/models")
        browser.find_element(By.CSS_SELECTOR, f"tr[data-model='{MODEL}'] button[aria-label='Unload {MODEL}']").click()
        wait_for(lambda: not _loaded(api, MODEL), what="the model to be unloaded")
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f"tr[data-model='{MODEL}'] button[aria-label='Load {MODEL}']"), what="Load")
        assert console_errors(browser) == []
        browser.find_element(By.CSS_SELECTOR, f"tr[data-model='{MODEL}'] button[aria-label='Load {MODEL}']").click()
        wait_for(lambda: _loaded(api, MODEL), timeout=120, what="the model to be loaded")
        open_page(browser, live_server.url + f"/console/models/{MODEL}")
        assert browser.find_element(By.ID, "model-state").text == "loaded"
        assert console_errors(browser) == []
    finally:
        if not _loaded(api, MODEL):  # later tests need the default model
            httpx.post(f"{api}/models/{MODEL}/load", timeout=120)


def test_the_import_form_registers_a_remote_model(live_server: LiveServer, data: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    api, name = data["api"], f"console-remote-{TAG}"
    open_page(browser, live_server.url + "/console/models")
    browser.find_element(By.ID, "imp-name").send_keys(name)
    browser.find_element(By.ID, "imp-base").send_keys(live_server.v1)
    browser.find_element(By.ID, "imp-upstream").send_keys(MODEL)
    browser.find_element(By.CSS_SELECTOR, "form[data-api='POST /api/v1/models'] button[type=submit]").click()
    try:
        wait_for(lambda: browser.current_url.endswith(f"/console/models/{name}"), what="the new model's page")
        wait_for(lambda: browser.find_element(By.TAG_NAME, "h1").text == name, what="the page to load")
        assert "openai" in browser.find_element(By.CSS_SELECTOR, "dl.kv").text
        assert console_errors(browser) == []
        model = httpx.get(f"{api}/models/{name}", timeout=30).json()
        assert model["format"] == "remote" and model["parameters"]["upstream_model"] == MODEL
    finally:
        httpx.delete(f"{api}/models/{name}", timeout=30)


def test_create_a_key_shows_its_secret_once_and_revoke(live_server: LiveServer, data: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    api, name = data["api"], f"console-key-{TAG}"
    open_page(browser, live_server.url + "/console/keys")
    browser.find_element(By.ID, "key-name").send_keys(name)
    scopes = Select(browser.find_element(By.ID, "key-scopes"))
    scopes.select_by_value("read")  # inference stays selected
    browser.find_element(By.ID, "key-rpm").send_keys("30")
    browser.find_element(By.CSS_SELECTOR, "#key-create button[type=submit]").click()
    secret = wait_for(lambda: browser.find_element(By.ID, "new-key-secret").text, what="the new key's secret")
    assert secret.startswith("pk-")
    assert browser.find_element(By.ID, "new-key").is_displayed()
    assert console_errors(browser) == []
    keys = {k["name"]: k for k in httpx.get(f"{api}/keys", timeout=30).json()["keys"]}
    key = keys[name]
    assert key["scopes"] == ["inference", "read"] and key["limits"]["requests_per_minute"] == 30
    assert secret.startswith(key["prefix"])
    # shown once: the list after a reload has the key, never its secret
    open_page(browser, live_server.url + "/console/keys")
    assert secret not in browser.page_source
    assert not browser.find_element(By.ID, "new-key").is_displayed()
    row = browser.find_element(By.CSS_SELECTOR, f"tr[data-key='{key['id']}']")
    assert name in row.text and "active" in row.text
    browser.execute_script("window.confirm = function () { return true; };")
    row.find_element(By.CSS_SELECTOR, "button.danger").click()
    wait_for(
        lambda: httpx.get(f"{api}/keys/{key['id']}", timeout=30).json()["revoked_at"] is not None,
        what="the key to be revoked",
    )
    open_page(browser, live_server.url + "/console/keys?revoked=true")
    assert "revoked" in browser.find_element(By.CSS_SELECTOR, f"tr[data-key='{key['id']}']").text
    assert console_errors(browser) == []
    # and the audit log shows who created and revoked it
    audit = httpx.get(live_server.url + "/console/audit", params={"target": key["id"]}, timeout=30).text
    assert "key.create" in audit and "key.revoke" in audit


def test_the_key_create_form_shows_the_apis_refusal(live_server: LiveServer, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, live_server.url + "/console/keys")
    browser.find_element(By.ID, "key-name").send_keys("self")
    browser.find_element(By.CSS_SELECTOR, "#key-create button[type=submit]").click()
    wait_for(lambda: "invalid key name" in browser.find_element(By.ID, "key-error").text, what="the API's error")
    assert not browser.find_element(By.ID, "new-key").is_displayed()
    console_errors(browser)  # the refused fetch is logged as a failed load; that is expected here


# -- with sign-in on: the keys and the audit log are the admin scope's, as in the API -----------------
@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    home = tmp_path_factory.mktemp("console-catalog-auth")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update({"PLINTH_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    out = subprocess.run(
        [sys.executable, "-m", "plinth", "keys", "create", "root", "--scope", "admin", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    srv = start_server(home, PLINTH_AUTH="true", PLINTH_PRELOAD_DEFAULT_MODEL="false", PLINTH_JOBS_LOCAL_WORKER="false")
    try:
        yield srv, str(json.loads(out.stdout)["key"])
    finally:
        stop_server(srv)


def test_a_read_key_sees_the_catalog_but_not_the_keys_or_the_audit_log(auth_server: tuple[LiveServer, str]) -> None:
    srv, root = auth_server
    admin = {"Authorization": f"Bearer {root}"}
    made = httpx.post(srv.url + "/api/v1/keys", headers=admin, json={"name": f"reader-{TAG}", "scopes": ["read"]}, timeout=30)
    assert made.status_code == 201, made.text
    reader = {"Authorization": f"Bearer {made.json()['key']}"}
    for path in ("/console/", "/console/models", f"/console/models/{MODEL}", "/console/datasets", "/console/usage"):
        r = httpx.get(srv.url + path, headers=reader, timeout=30)
        assert r.status_code == 200, (path, r.text[:500])
    for path in ("/console/keys", "/console/audit"):
        r = httpx.get(srv.url + path, headers=reader, timeout=30)
        assert r.status_code == 403 and r.headers["content-type"].startswith("text/html"), path
        assert "admin scope" in r.text and f"reader-{TAG}" not in r.text
        ok = httpx.get(srv.url + path, headers=admin, timeout=30)
        assert ok.status_code == 200, path
    assert f"reader-{TAG}" in httpx.get(srv.url + "/console/keys", headers=admin, timeout=30).text
    # no credentials: a person is sent to the sign-in page
    anon = httpx.get(srv.url + "/console/models", timeout=30)
    assert anon.status_code == 303 and anon.headers["location"].startswith("/console/login")
