"""The whole console in a real Chromium (issue 16): every page reachable from the navigation,
and the pages they link to, load without a browser console error and without a server error
(a link to something other tests deleted since may answer the 404 page),
over whatever the shared live server holds by now; and a dataset uploaded through the
datasets page's form becomes a version the API lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urlparse

import httpx

from tests.support.browser import console_errors, open_page, wait_for
from tests.support.live_server import LiveServer

MAX_PAGES = 80


def _links(browser: Any, base: str) -> list[str]:
    hrefs = browser.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    out = []
    for href in hrefs:
        url = urldefrag(href)[0]
        parsed = urlparse(url)
        inside = url.startswith(base + "/console") and not parsed.path.startswith(("/console/static", "/console/login", "/console/project"))
        if inside and not parsed.path.endswith((".json", ".svg")) and "/logs" not in parsed.path:
            out.append(url)
    return out


def test_every_reachable_console_page_loads_without_errors(live_server: LiveServer, browser: Any) -> None:
    base = live_server.url
    browser.delete_all_cookies()
    start = [base + "/console/"]
    open_page(browser, start[0])
    start += _links(browser, base)
    seen: set[str] = set()
    queue = list(dict.fromkeys(start))
    failures = []
    while queue and len(seen) < MAX_PAGES:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        answer = httpx.get(url, timeout=60)
        if answer.status_code == 404 and answer.headers["content-type"].startswith("text/html"):
            continue  # a link kept in history (a request log row, the audit log) to something since deleted
        if answer.status_code != 200:
            failures.append(f"{url}: HTTP {answer.status_code}")
            continue
        open_page(browser, url)
        errors = console_errors(browser)
        if errors:
            failures.append(f"{url}: {errors}")
        if url.count("/") <= len(base.split("/")) + 2:  # follow links one level below the sections
            queue += [u for u in _links(browser, base) if u not in seen]
    assert len(seen) >= 16, f"the crawl reached only {sorted(seen)}"
    assert not failures, "\n".join(failures)


def test_a_dataset_uploaded_through_the_form_becomes_a_version(live_server: LiveServer, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    rows = tmp_path / "crawl-faq.jsonl"
    rows.write_text(
        "".join(
            f'{{"messages": [{{"role": "user", "content": "Question {i}?"}}, {{"role": "assistant", "content": "Answer {i}."}}]}}\n'
            for i in range(12)
        )
    )
    open_page(browser, live_server.url + "/console/datasets")
    browser.find_element(By.ID, "ds-name").send_keys("crawl-upload")
    browser.find_element(By.ID, "ds-file").send_keys(str(rows))
    browser.find_element(By.ID, "ds-note").send_keys("<img src=x onerror=alert(1)> uploaded in the browser")
    browser.find_element(By.CSS_SELECTOR, "#dataset-upload button[type=submit]").click()
    wait_for(lambda: browser.current_url.endswith("/console/datasets/crawl-upload"), what="the dataset's page")
    version = httpx.get(live_server.url + "/api/v1/datasets/crawl-upload", timeout=30).json()
    assert version["latest_version"] == 1, version
    page_text = browser.find_element(By.TAG_NAME, "main").text
    assert "<img src=x onerror=alert(1)> uploaded in the browser" in page_text
    assert browser.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    assert console_errors(browser) == []
    # a refused upload (an empty file) shows the API's message in the form
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    open_page(browser, live_server.url + "/console/datasets")
    browser.find_element(By.ID, "ds-name").send_keys("crawl-empty")
    browser.find_element(By.ID, "ds-file").send_keys(str(empty))
    browser.find_element(By.CSS_SELECTOR, "#dataset-upload button[type=submit]").click()
    box = wait_for(lambda: browser.find_element(By.ID, "dataset-upload-error").text, what="the upload's error")
    assert "empty" in box


def test_a_policy_saved_through_the_guardrails_form_is_versioned(live_server: LiveServer, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    console_errors(browser)  # drain what earlier tests left (a refused upload logs its 400)
    open_page(browser, live_server.url + "/console/guardrails")
    browser.find_element(By.CSS_SELECTOR, "#policy-apply summary").click()
    area = browser.find_element(By.ID, "policy-yaml")
    area.clear()
    area.send_keys(
        "name: crawl-policy\ndescription: <script>alert(1)</script> from the console\n"
        "rules:\n  - detector: pii\n    on: [input, output]\n    action: redact\n"
    )
    browser.find_element(By.CSS_SELECTOR, "#policy-apply button[type=submit]").click()
    wait_for(lambda: browser.current_url.endswith("/console/guardrails/crawl-policy"), what="the new policy's page")
    policy = httpx.get(live_server.url + "/api/v1/guardrails/policies/crawl-policy", timeout=30).json()
    assert policy["name"] == "crawl-policy" and policy["version"] == 1, policy
    assert "<script>alert(1)</script> from the console" in browser.find_element(By.TAG_NAME, "main").text
    assert console_errors(browser) == []
    # an invalid policy shows the API's message in the form and stores nothing
    open_page(browser, live_server.url + "/console/guardrails")
    browser.find_element(By.CSS_SELECTOR, "#policy-apply summary").click()
    area = browser.find_element(By.ID, "policy-yaml")
    area.clear()
    area.send_keys("name: crawl-bad\nrules:\n  - detector: no-such-detector\n")
    browser.find_element(By.CSS_SELECTOR, "#policy-apply button[type=submit]").click()
    box = wait_for(lambda: browser.find_element(By.ID, "policy-apply-error").text, what="the form's error")
    assert "no-such-detector" in box
    assert httpx.get(live_server.url + "/api/v1/guardrails/policies/crawl-bad", timeout=30).status_code == 404
    # the refused request is the one error the browser logged; read it here, so the session's
    # browser does not carry it into the next test's check
    logged = console_errors(browser)
    assert logged and all("/api/v1/guardrails/policies" in e and "400" in e for e in logged), logged
