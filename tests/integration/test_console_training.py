"""The console's training pages against a live server in a real headless Chromium: jobs (live
log over SSE, cancel, retry), a fine-tune submitted from the form with its live loss curve,
runs with a 100k-step curve downsampled on the server, comparing runs, the registry with
aliases and lineage, evaluations; hostile strings stay text; unknown ids are 404 pages."""

from __future__ import annotations

import math
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from plinth.domain.projects import DEFAULT_PROJECT, project_scope
from plinth.domain.tracking import EvalReport, MetricPoint, ModelVersion, Run, RunStatus
from plinth.store.sql import SqlStore
from tests.support.browser import console_errors, open_page, wait_for
from tests.support.live_server import MODEL, LiveServer

ROOT = Path(__file__).resolve().parents[2]
FAQ = ROOT / "examples" / "acme-health" / "faq.jsonl"
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
MD_IMG = "![x](http://evil/x.png)"


def _by():
    from selenium.webdriver.common.by import By

    return By


def _store(live_server: LiveServer) -> SqlStore:
    return SqlStore(f"sqlite:///{live_server.home / 'plinth.db'}")


def _page(live_server: LiveServer, path: str, status: int = 200) -> str:
    r = httpx.get(live_server.url + path, timeout=30)
    assert r.status_code == status, (path, r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("text/html")
    return r.text


def _no_injection(browser) -> None:
    By = _by()
    assert browser.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    assert browser.find_elements(By.CSS_SELECTOR, "img[src='http://evil/x.png']") == []
    assert browser.execute_script("return window.__pwned === undefined")


def _drawn(browser, selector: str) -> bool:
    return bool(browser.find_elements(_by().CSS_SELECTOR, f"{selector} .uplot canvas"))


@pytest.fixture(scope="module")
def runs(live_server: LiveServer) -> dict[str, str]:
    """Two runs made in the server's store: a hostile one with a 100k-step curve, a short one."""
    store = _store(live_server)
    try:
        with project_scope(DEFAULT_PROJECT):
            long = store.create_run(
                Run(
                    id=uuid4().hex,
                    name=f"long {SCRIPT}",
                    kind="lora",
                    status=RunStatus.FINISHED,
                    params={"learning_rate": 0.001, "note": IMG, "lora": {"rank": 8}},
                    summary={"train/loss": 0.42, "val/loss": 0.5},
                    base_model=MODEL,
                    dataset=f"ds-{MD_IMG}@1",
                )
            )
            n = 100_000
            points = [MetricPoint("train/loss", s, 3.0 * math.exp(-s / 20_000) + 0.01 * (s % 7)) for s in range(n)]
            points[60_000] = MetricPoint("train/loss", 60_000, 50.0)
            store.log_metrics(long.id, points)
            store.log_metrics(long.id, [MetricPoint("val/loss", s, 2.0 - s / 1e5) for s in range(0, n, 5_000)])
            store.log_metrics(long.id, [MetricPoint("train/lr", s, 1e-3) for s in range(0, n, 100)])
            short = store.create_run(
                Run(
                    id=uuid4().hex,
                    name="short run",
                    kind="lora",
                    status=RunStatus.FINISHED,
                    params={"learning_rate": 0.01, "note": "plain", "lora": {"rank": 8}},
                    summary={"train/loss": 0.9},
                )
            )
            store.log_metrics(short.id, [MetricPoint("train/loss", s, 2.0 - s / 10) for s in range(1, 11)])
            name = f"reg-{uuid4().hex[:8]}"
            store.create_registered_model(name, description=f"described {SCRIPT}")
            mv = store.add_model_version(
                ModelVersion(
                    name=name,
                    version=0,
                    kind="adapter",
                    base_model=MODEL,
                    base_digest="sha256:" + "a" * 64,
                    served_as=f"{MODEL}:{name}-v{{version}}",
                    artifact_digest="sha256:" + "b" * 64,
                    run_id=long.id,
                    dataset="faq@1",
                    metrics={"train/loss": 0.42},
                    model_card=f"# card\n{SCRIPT}\n{IMG}\n{MD_IMG}\n",
                )
            )
            store.add_model_version(
                ModelVersion(
                    name=name,
                    version=0,
                    kind="adapter",
                    base_model=MODEL,
                    base_digest=None,
                    served_as=f"{MODEL}:{name}-v{{version}}",
                    artifact_digest="sha256:" + "c" * 64,
                )
            )
            for version, acc in ((1, 0.5), (2, 0.75)):
                store.add_eval_report(
                    EvalReport(
                        id=uuid4().hex,
                        model=f"{name}@{version}",
                        dataset="faq@1",
                        split="validation",
                        metrics={"exact_match": acc, "token_f1": acc + 0.1},
                        registry_name=name,
                        registry_version=version,
                    )
                )
    finally:
        store.close()
    return {"long": long.id, "short": short.id, "model": name, "version": str(mv.version)}


def test_runs_pages_draw_a_downsampled_100k_curve_and_escape(live_server: LiveServer, browser, runs: dict[str, str]) -> None:
    By = _by()
    html = _page(live_server, "/console/runs")
    assert "long &lt;script&gt;alert(1)&lt;/script&gt;" in html and "short run" in html and SCRIPT not in html

    # (how fast: bench/console.py measures every page; no timed assertions here)
    series = httpx.get(f"{live_server.url}/console/runs/{runs['long']}/series.json", params={"key": "train/loss"}, timeout=30)
    assert series.status_code == 200, series.text
    spec = series.json()
    (loss,) = spec["series"]
    assert loss["label"] == "train/loss" and 500 <= len(spec["x"]) <= 1000 and len(loss["values"]) == len(spec["x"])
    assert max(v for v in loss["values"] if v is not None) == 50.0  # the one-step spike survives
    assert spec["x"][0] == 0 and spec["x"][-1] == 99_999
    _page(live_server, f"/console/runs/{runs['long']}")
    open_page(browser, f"{live_server.url}/console/runs/{runs['long']}")
    h1 = browser.find_element(By.TAG_NAME, "h1").text
    assert SCRIPT in h1
    wait_for(lambda: _drawn(browser, "#chart-loss"), 20, "the loss chart")
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".chart .uplot canvas")) >= 2, 20, "the other metric's chart")
    assert IMG in browser.find_element(By.TAG_NAME, "main").text
    _no_injection(browser)
    assert console_errors(browser) == []

    # the list: select both runs and compare them
    open_page(browser, f"{live_server.url}/console/runs")
    for run_id in (runs["long"], runs["short"]):
        browser.find_element(By.ID, f"cmp-{run_id}").click()
    browser.find_element(By.CSS_SELECTOR, "form[action='/console/runs/compare'] button[type=submit]").click()
    wait_for(lambda: "/console/runs/compare" in browser.current_url, 20, "the compare page")
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, ".chart .uplot canvas")) >= 2, 20, "the overlaid curves")
    differing = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#compare-params tr.differs td:first-child")]
    assert "learning_rate" in differing and "note" in differing and "lora.rank" not in differing
    assert IMG in browser.find_element(By.ID, "compare-params").text
    _no_injection(browser)
    assert console_errors(browser) == []

    _page(live_server, "/console/runs/0123456789abcdef0123456789abcdef", 404)
    _page(live_server, f"/console/runs/compare?ids={runs['long']}", 400)
    assert httpx.get(f"{live_server.url}/console/runs/nope/series.json").status_code == 404


def test_registry_aliases_lineage_and_evaluations(live_server: LiveServer, browser, runs: dict[str, str]) -> None:
    By = _by()
    name = runs["model"]
    assert name in _page(live_server, "/console/registry")
    open_page(browser, f"{live_server.url}/console/registry/{name}")
    assert f"described {SCRIPT}" in browser.find_element(By.TAG_NAME, "main").text
    assert console_errors(browser) == []
    # set an alias with the form, then delete it with its button
    browser.find_element(By.NAME, "alias").send_keys("production")
    version = browser.find_element(By.NAME, "version")
    version.clear()
    version.send_keys("1")
    browser.find_element(By.CSS_SELECTOR, "#alias-form button[type=submit]").click()
    wait_for(lambda: httpx.get(f"{live_server.url}/api/v1/registry/models/{name}").json()["aliases"] == {"production": 1}, 20, "the alias")
    wait_for(lambda: "production" in browser.find_element(By.ID, "aliases-table").text, 20, "the alias row")
    browser.find_element(By.CSS_SELECTOR, "#aliases-table button").click()
    browser.switch_to.alert.accept()
    wait_for(lambda: httpx.get(f"{live_server.url}/api/v1/registry/models/{name}").json()["aliases"] == {}, 20, "the alias deleted")
    wait_for(lambda: "No aliases" in browser.find_element(By.ID, "aliases-table").text, 20, "the page reloaded")
    assert console_errors(browser) == []
    httpx.put(f"{live_server.url}/api/v1/registry/models/{name}/aliases/staging", json={"version": 1}).raise_for_status()

    # the version: lineage from base model to alias, the card as text, its evaluations
    open_page(browser, f"{live_server.url}/console/registry/{name}/1")
    svg_text = browser.find_element(By.CSS_SELECTOR, ".dag svg").text
    for part in ("base model", MODEL, "dataset", "faq@1", "run", "version", f"{name}@1", "alias", f"{name}@staging"):
        assert part in svg_text, (part, svg_text)
    assert browser.find_elements(By.CSS_SELECTOR, f".dag svg a[href='/console/runs/{runs['long']}']")
    card = browser.find_element(By.ID, "model-card").text
    assert SCRIPT in card and IMG in card and MD_IMG in card
    assert "exact_match" in browser.find_element(By.TAG_NAME, "main").text
    _no_injection(browser)
    assert console_errors(browser) == []
    _page(live_server, f"/console/registry/{name}/99", 404)
    _page(live_server, f"/console/registry/{name}/x", 404)
    _page(live_server, "/console/registry/no-such-model", 404)

    # evaluations: the list and a comparison of the two versions with deltas and bars
    open_page(browser, f"{live_server.url}/console/evaluations?models={name}@1,{name}@2")
    table = browser.find_element(By.ID, "eval-compare").text
    assert "exact_match" in table and "(+0.25)" in table
    wait_for(lambda: _drawn(browser, "main"), 20, "the bar chart")
    assert f"{name}@2" in browser.find_element(By.ID, "eval-reports").text
    assert console_errors(browser) == []


def _job(live_server: LiveServer, job_id: str) -> dict:
    return httpx.get(f"{live_server.url}/api/v1/jobs/{job_id}", timeout=30).json()


def test_job_pages_cancel_and_retry(live_server: LiveServer, browser) -> None:
    By = _by()
    api = live_server.url + "/api/v1"
    name = f"slow {SCRIPT}"
    slow = httpx.post(f"{api}/jobs", json={"kind": "selftest", "spec": {"steps": 600, "sleep_s": 0.2}, "name": name}).json()
    failing = httpx.post(f"{api}/jobs", json={"kind": "selftest", "spec": {"steps": 3, "sleep_s": 0.01, "fail_at": 2}}).json()

    html = _page(live_server, "/console/jobs")
    assert slow["id"] in html and "slow &lt;script&gt;" in html
    open_page(browser, f"{live_server.url}/console/jobs")
    assert SCRIPT in browser.find_element(By.ID, "jobs-table").text
    assert browser.find_elements(By.CSS_SELECTOR, "#tune-form select[name=base_model]")
    assert console_errors(browser) == []
    # a refused fine-tune shows the API's message by the form, and creates no job
    dataset = browser.find_element(By.CSS_SELECTOR, "#tune-form input[name=dataset]")
    dataset.clear()
    dataset.send_keys("no-such-dataset@1")
    browser.find_element(By.CSS_SELECTOR, "#tune-form button[type=submit]").click()
    box = browser.find_element(By.ID, "tune-error")
    wait_for(lambda: box.is_displayed() and "no-such-dataset" in box.text, 20, "the error by the form")
    assert "/console/jobs" in browser.current_url
    assert all("status of 400" in e for e in console_errors(browser))  # the refused request, logged by the browser

    # the running job streams its log; Cancel stops it
    open_page(browser, f"{live_server.url}/console/jobs/{slow['id']}")
    wait_for(lambda: browser.find_element(By.ID, "job-state").text == "running", 60, "the job to run")
    wait_for(lambda: browser.find_element(By.ID, "job-log").text.strip(), 60, "log lines")
    assert SCRIPT in browser.find_element(By.TAG_NAME, "h1").text
    browser.find_element(By.ID, "cancel-job").click()
    browser.switch_to.alert.accept()
    wait_for(lambda: _job(live_server, slow["id"])["state"] == "cancelled", 60, "the job cancelled")
    wait_for(lambda: browser.find_element(By.ID, "job-state").text == "cancelled", 30, "the page to show it")
    _no_injection(browser)
    assert console_errors(browser) == []

    # the failed job shows its error; Retry queues it again
    wait_for(lambda: _job(live_server, failing["id"])["state"] == "failed", 60, "the job to fail")
    open_page(browser, f"{live_server.url}/console/jobs/{failing['id']}")
    assert browser.find_elements(By.CSS_SELECTOR, ".error-box")
    attempts = _job(live_server, failing["id"])["attempt"]
    browser.find_element(By.ID, "retry-job").click()
    retried = lambda: (j := _job(live_server, failing["id"]))["attempt"] > attempts or j["state"] != "failed"  # noqa: E731
    wait_for(retried, 30, "the retry")
    assert console_errors(browser) == []

    _page(live_server, "/console/jobs/job-00000000000000000000", 404)
    _page(live_server, "/console/jobs/not-a-job-id", 404)


@pytest.mark.slow
def test_fine_tune_from_the_form_with_a_live_loss_curve(live_server: LiveServer, browser, smol32_dir: Path) -> None:
    By = _by()
    from selenium.webdriver.support.ui import Select

    api = live_server.url + "/api/v1"
    # the job trains on the embedded model dequantised to float32: the session's copy (as test_tuning_api)
    cache = live_server.home / "cache" / "torch"
    cache.mkdir(parents=True, exist_ok=True)
    if not (cache / smol32_dir.name).exists():
        (cache / smol32_dir.name).symlink_to(smol32_dir, target_is_directory=True)
    dataset = f"console-tune-{uuid4().hex[:6]}"
    lines = FAQ.read_text(encoding="utf-8").splitlines()[:24]
    r = httpx.post(f"{api}/datasets/{dataset}/versions", content="\n".join(lines).encode(), params={"filename": "faq.jsonl"}, timeout=60)
    assert r.status_code in (200, 201), r.text

    open_page(browser, f"{live_server.url}/console/runs")
    form = browser.find_element(By.ID, "tune-form")
    Select(form.find_element(By.NAME, "base_model")).select_by_value(MODEL)
    fields = {"dataset": f"{dataset}@1", "name": dataset, "max_steps": "2", "eval_every": "2", "checkpoint_every": "2"}
    fields |= {"batch_size": "2", "max_seq_len": "128"}  # as little work as a real tune can be
    for field, value in fields.items():
        el = form.find_element(By.NAME, field)
        el.clear()
        el.send_keys(value)
    lr = form.find_element(By.NAME, "learning_rate")
    lr.clear()
    lr.send_keys("0.001")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: "/console/jobs/job-" in browser.current_url, 30, "the new job's page")
    job_id = browser.current_url.rsplit("/", 1)[-1]
    assert _job(live_server, job_id)["kind"] == "tune"
    wait_for(lambda: browser.find_element(By.ID, "job-log").text.strip(), 120, "live log lines")
    wait_for(lambda: _drawn(browser, "#loss-chart"), 240, "the loss curve")
    wait_for(lambda: browser.find_element(By.ID, "job-state").text in ("succeeded", "failed", "cancelled"), 300, "the job to end")
    job = _job(live_server, job_id)
    assert job["state"] == "succeeded", job
    assert browser.find_element(By.ID, "job-state").text == "succeeded"
    assert console_errors(browser) == []
    run_id = job["result"]["run_id"]
    open_page(browser, f"{live_server.url}/console/runs/{run_id}")
    wait_for(lambda: _drawn(browser, "#chart-loss"), 20, "the run's loss chart")
    assert console_errors(browser) == []


def test_every_page_renders_without_console_errors(live_server: LiveServer, browser, runs: dict[str, str]) -> None:
    for path in ("/console/jobs", "/console/runs", "/console/registry", "/console/evaluations", "/console/runs?page=2&status=finished"):
        open_page(browser, live_server.url + path)
        assert console_errors(browser) == [], path
