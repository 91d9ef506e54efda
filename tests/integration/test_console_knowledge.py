"""The console's knowledge-base, guardrail and chat pages in a real headless Chromium against the
live server: forms change the state (checked through the API), the search playground and the
policy test box mark what they found, the chat streams token by token with citations and
guardrail findings beside the answer, and hostile strings stay text."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.browser import console_errors, open_page, wait_for
from tests.support.live_server import MODEL, LiveServer

HOSTILE = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(1)</script>"
MD_IMAGE = "![x](http://evil/x.png)"
SSN = "387-21-6650"
EMAIL = "mirela.dobos@example.net"
GOLD = (
    "# Gold plan\n\nThe Gold plan deductible is $500 per member each year. "
    f"Markup in a document stays text: {HOSTILE} {SCRIPT} {MD_IMAGE}\n"
)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _by() -> Any:
    from selenium.webdriver.common.by import By

    return By


def _no_hostile_elements(browser: Any) -> None:
    by = _by()
    assert browser.find_elements(by.CSS_SELECTOR, "img[src='x']") == []
    assert browser.find_elements(by.CSS_SELECTOR, "img[src*='evil']") == []
    assert all(s.get_attribute("src") for s in browser.find_elements(by.TAG_NAME, "script"))  # no inline script was added


@pytest.fixture(scope="module")
def kb(live_server: LiveServer) -> str:
    """A knowledge base with one document (hostile markup inside), made through the API."""
    name = _name("console-kb")
    r = httpx.post(f"{live_server.url}/api/v1/knowledge-bases", json={"name": name, "description": f"desc {HOSTILE}"}, timeout=120)
    assert r.status_code == 201, r.text
    r = httpx.post(
        f"{live_server.url}/api/v1/knowledge-bases/{name}/documents",
        json={"documents": [{"name": "gold-plan.md", "text": GOLD}]},
        timeout=300,
    )
    assert r.status_code == 200 and r.json()["changed"], r.text
    return name


@pytest.fixture(scope="module")
def policy(live_server: LiveServer) -> str:
    name = _name("console-pii")
    doc = {
        "name": name,
        "description": "personal data redacted",
        "rules": [{"detector": "pii", "on": ["input", "output"], "action": "redact"}],
    }
    r = httpx.post(f"{live_server.url}/api/v1/guardrails/policies", json=doc, timeout=60)
    assert r.status_code == 201, r.text
    return name


@pytest.fixture
def attached(live_server: LiveServer, kb: str, policy: str) -> Iterator[None]:
    """The knowledge base and the policy attached to the embedded model; the old attachments back afterwards."""
    url = f"{live_server.url}/api/v1/models/{MODEL}/attachments"
    before = httpx.get(url, timeout=60).json()
    r = httpx.patch(url, json={"knowledge_base": kb, "guardrail_policy": policy}, timeout=60)
    assert r.status_code == 200, r.text
    try:
        yield
    finally:
        restore = {k: before.get(k) or "" for k in ("knowledge_base", "guardrail_policy")}
        assert httpx.patch(url, json=restore, timeout=60).status_code == 200


def test_pages_answer_and_unknown_names_are_404_pages(live_server: LiveServer, kb: str, policy: str) -> None:
    base = live_server.url + "/console"
    for path, expect in (
        ("/knowledge", kb),
        (f"/knowledge/{kb}", "gold-plan.md"),
        (f"/knowledge/{kb}?version=1", "gold-plan.md"),
        ("/guardrails", policy),
        (f"/guardrails/{policy}", "Test the policy"),
        ("/guardrails/default", "injection"),
        ("/chat", MODEL),
    ):
        r = httpx.get(base + path, timeout=30)
        assert r.status_code == 200, (path, r.text[:500])
        assert r.headers["content-type"].startswith("text/html") and expect in r.text, path
        assert HOSTILE not in r.text  # escaped wherever it appears (the KB's description)
    assert "&lt;img src=x onerror=alert(1)&gt;" in httpx.get(base + "/knowledge", timeout=30).text
    for path in ("/knowledge/no-such-kb", "/guardrails/no-such-policy", f"/knowledge/{kb}?version=99"):
        r = httpx.get(base + path, timeout=30)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert "not_found" in r.text


def test_create_upload_search_and_remove_through_the_console(live_server: LiveServer, browser: Any, tmp_path: Path) -> None:
    by = _by()
    name = _name("made-in-console")
    open_page(browser, live_server.url + "/console/knowledge")
    assert console_errors(browser) == []
    browser.find_element(by.ID, "kb-name").send_keys(name)
    browser.find_element(by.ID, "kb-description").send_keys("made by the browser test")
    browser.find_element(by.CSS_SELECTOR, "#kb-create button[type=submit]").click()
    wait_for(lambda: browser.current_url.endswith(f"/console/knowledge/{name}"), what="the new knowledge base's page")
    wait_for(lambda: browser.execute_script("return document.readyState") == "complete")
    assert httpx.get(f"{live_server.url}/api/v1/knowledge-bases/{name}", timeout=30).json()["description"] == "made by the browser test"
    assert console_errors(browser) == []

    # pasted text
    browser.find_element(by.ID, "doc-name").send_keys("gold-plan.md")
    browser.find_element(by.ID, "doc-text").send_keys(GOLD)
    browser.find_element(by.CSS_SELECTOR, "#kb-upload button[type=submit]").click()
    wait_for(lambda: "gold-plan.md" in browser.find_element(by.ID, "kb-documents").text, 120, "the uploaded document in the table")
    wait_for(lambda: browser.execute_script("return document.readyState") == "complete")
    # a file
    notes = tmp_path / "claims.txt"
    notes.write_text("Claims must be appealed within 180 days of the denial letter.\n")
    browser.find_element(by.ID, "doc-file").send_keys(str(notes))
    browser.find_element(by.CSS_SELECTOR, "#kb-upload button[type=submit]").click()
    wait_for(lambda: "claims.txt" in browser.find_element(by.ID, "kb-documents").text, 120, "the uploaded file in the table")
    wait_for(lambda: browser.execute_script("return document.readyState") == "complete")
    shown = httpx.get(f"{live_server.url}/api/v1/knowledge-bases/{name}", timeout=30).json()
    assert {d["name"] for d in shown["documents"]} == {"gold-plan.md", "claims.txt"} and shown["version"] == 2
    assert console_errors(browser) == []

    # the search playground marks the query's terms; the document's markup stays text
    browser.find_element(by.ID, "kb-query").send_keys("Gold deductible")
    browser.find_element(by.CSS_SELECTOR, "#kb-search button[type=submit]").click()
    first = wait_for(lambda: browser.find_elements(by.CSS_SELECTOR, "#kb-search-results li.passage"), 60, "search results")[0]
    assert "gold-plan.md" in first.text and HOSTILE in first.text and SCRIPT in first.text and MD_IMAGE in first.text
    marked = {m.text.lower() for m in first.find_elements(by.TAG_NAME, "mark")}
    assert {"gold", "deductible"} <= marked
    _no_hostile_elements(browser)
    assert console_errors(browser) == []

    # remove a document (the button asks first)
    row = next(r for r in browser.find_elements(by.CSS_SELECTOR, "#kb-documents tbody tr") if "claims.txt" in r.text)
    row.find_element(by.TAG_NAME, "button").click()
    browser.switch_to.alert.accept()
    wait_for(lambda: "claims.txt" not in browser.find_element(by.ID, "kb-documents").text, 60, "the document to go")
    wait_for(lambda: browser.execute_script("return document.readyState") == "complete")
    shown = httpx.get(f"{live_server.url}/api/v1/knowledge-bases/{name}", timeout=30).json()
    assert [d["name"] for d in shown["documents"]] == ["gold-plan.md"] and shown["version"] == 3
    assert console_errors(browser) == []


def test_guardrail_pages_and_the_test_box(live_server: LiveServer, browser: Any, policy: str) -> None:
    by = _by()
    open_page(browser, live_server.url + "/console/guardrails")
    assert policy in browser.find_element(by.TAG_NAME, "main").text
    assert console_errors(browser) == []
    open_page(browser, f"{live_server.url}/console/guardrails/{policy}")
    text = f"I am Mirela, SSN {SSN}, mail {EMAIL}. {HOSTILE}"
    browser.find_element(by.ID, "gr-text").send_keys(text)
    browser.find_element(by.CSS_SELECTOR, "#gr-test button[type=submit]").click()
    wait_for(lambda: browser.find_element(by.ID, "gr-result").is_displayed(), 60, "the test result")
    findings = browser.find_element(by.ID, "gr-findings").text
    assert "US_SSN" in findings and "EMAIL" in findings.upper() and "redact" in findings
    marks = [m.text for m in browser.find_elements(by.CSS_SELECTOR, "#gr-marked mark")]
    assert SSN in marks and EMAIL in marks
    assert HOSTILE in browser.find_element(by.ID, "gr-marked").text
    redacted = browser.find_element(by.ID, "gr-redacted").text
    assert SSN not in redacted and EMAIL not in redacted and HOSTILE in redacted
    _no_hostile_elements(browser)
    assert console_errors(browser) == []


def _chat(browser: Any, message: str, max_tokens: int = 24) -> None:
    by = _by()
    tokens = browser.find_element(by.ID, "chat-max-tokens")
    tokens.clear()
    tokens.send_keys(str(max_tokens))
    temperature = browser.find_element(by.ID, "chat-temperature")
    temperature.clear()
    temperature.send_keys("0")
    browser.find_element(by.ID, "chat-input").send_keys(message)
    browser.find_element(by.ID, "chat-send").click()


def test_chat_streams_keeps_the_conversation_and_shows_markup_as_text(live_server: LiveServer, browser: Any) -> None:
    by = _by()
    open_page(browser, f"{live_server.url}/console/chat?model={MODEL}")
    assert browser.find_element(by.ID, "chat-model").get_attribute("value") == MODEL
    # watch the answer's text as the browser changes it
    browser.execute_script(
        "window.__lengths = [];"
        "new MutationObserver(function () {"
        "  var a = document.querySelectorAll('#chat-log .msg.assistant .body');"
        "  if (a.length) window.__lengths.push(a[a.length - 1].textContent.length);"
        "}).observe(document.getElementById('chat-log'), {subtree: true, childList: true, characterData: true});"
    )
    _chat(browser, f"Write a short poem about the sea. {HOSTILE} {MD_IMAGE}")
    wait_for(lambda: browser.execute_script("return window.plinthChat.done"), 120, "the answer to finish")
    probe = browser.execute_script("return window.plinthChat")
    lengths = [n for n in browser.execute_script("return window.__lengths") if n > 0]
    assert probe["error"] is None and probe["chunks"] >= 2
    assert len(set(lengths)) >= 2 and lengths == sorted(lengths), lengths  # it grew, a piece at a time
    last_answer = "var a = document.querySelectorAll('#chat-log .msg.assistant .body'); return a[a.length - 1].textContent"
    answer = browser.execute_script(last_answer)
    assert answer.strip() and len(answer) == max(lengths)
    user = browser.find_element(by.CSS_SELECTOR, "#chat-log .msg.user").text
    assert HOSTILE in user and MD_IMAGE in user
    assert probe["responseId"] and probe["responseId"] in browser.find_element(by.ID, "chat-meta").text
    _no_hostile_elements(browser)
    assert console_errors(browser) == []

    # a second turn sends the whole conversation
    _chat(browser, "Now say it in one line.")
    wait_for(lambda: browser.execute_script("return window.plinthChat.done"), 120, "the second answer")
    assert len(browser.find_elements(by.CSS_SELECTOR, "#chat-log .msg")) == 4
    assert browser.find_elements(by.CSS_SELECTOR, "#chat-log .msg.assistant .body")[-1].text.strip()
    assert console_errors(browser) == []


def test_chat_stop_button_aborts(live_server: LiveServer, browser: Any) -> None:
    by = _by()
    open_page(browser, f"{live_server.url}/console/chat?model={MODEL}")
    _chat(browser, "Count from one to five hundred, one number per line.", max_tokens=600)
    wait_for(lambda: browser.execute_script("return window.plinthChat.chunks") >= 2, 120, "the answer to start")
    browser.find_element(by.ID, "chat-stop").click()
    wait_for(lambda: browser.execute_script("return window.plinthChat.done"), 30, "the stop")
    assert "(stopped)" in browser.find_element(by.CSS_SELECTOR, "#chat-log .msg.assistant").text
    assert browser.find_element(by.ID, "chat-send").is_enabled()
    console_errors(browser)  # an aborted fetch may log its cancellation; nothing else is asserted here


def test_chat_with_an_attached_knowledge_base_shows_citations_and_findings(
    live_server: LiveServer, browser: Any, kb: str, policy: str, attached: None
) -> None:
    by = _by()
    open_page(browser, f"{live_server.url}/console/chat?model={MODEL}")
    _chat(browser, f"What is the Gold plan deductible? My SSN is {SSN}.", max_tokens=24)
    wait_for(lambda: browser.execute_script("return window.plinthChat.done"), 120, "the answer")
    assert browser.execute_script("return window.plinthChat.error") is None
    cites = wait_for(lambda: browser.find_elements(by.CSS_SELECTOR, "#chat-citations li"), 30, "citations")
    assert "gold-plan.md" in cites[0].text and HOSTILE in browser.find_element(by.ID, "chat-citations").text
    wait_for(lambda: kb in browser.find_element(by.ID, "chat-meta").text, 30, "the stored citations' knowledge base")
    assert policy in browser.find_element(by.ID, "chat-guard-summary").text
    assert "US_SSN" in browser.find_element(by.ID, "chat-findings").text
    assert browser.find_elements(by.CSS_SELECTOR, "#chat-log .msg.assistant .body")[-1].text.strip()
    _no_hostile_elements(browser)
    assert console_errors(browser) == []

    # the finding was recorded: the guardrails page charts and lists it
    wait_for(
        lambda: httpx.get(f"{live_server.url}/api/v1/guardrails/events", params={"policy": policy}, timeout=30).json()["events"],
        30,
        "the event",
    )
    open_page(browser, live_server.url + "/console/guardrails")
    wait_for(lambda: browser.find_elements(by.CSS_SELECTOR, ".chart canvas"), 20, "the findings chart")
    assert "US_SSN" in browser.find_element(by.TAG_NAME, "main").text
    assert console_errors(browser) == []
