"""The request log on the live server (ADR 0090): chat completions through the official openai
client with a PII-redacting policy attached are logged with the policy's placeholders and never
the removed values — not in the entry, not anywhere in the store, not in /metrics; a request
no policy checked is logged without text; feedback shows on its entry; the listing's filters,
paging and errors; JSONL and Parquet exports; a deployment's quality signals; the CLI."""

from __future__ import annotations

import io
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import cli
from tests.support.live_server import MODEL, LiveServer

EMAIL = "ileana.vornicu@example.org"
PHONE = "(415) 555-0134"
SSN = "512-44-9087"
SECRETS = (EMAIL, PHONE, SSN, "ileana.vornicu", "555-0134", SSN.replace("-", ""))
UNGUARDED = "Zephyrine-quartz-7731 asks about vision coverage"  # text of a request no policy checks
POLICY = {"name": "reqlog-pii", "rules": [{"detector": "pii", "on": ["input", "output"], "action": "redact"}]}
#: redacts answers only: the member's message is not what a redaction left, so it is not kept
OUTPUT_ONLY = {"name": "reqlog-out", "rules": [{"detector": "pii", "on": ["output"], "action": "redact"}]}
ECHO = "You repeat the user's message exactly, nothing else."


def _attach(server: LiveServer, policy: str) -> None:
    r = httpx.patch(f"{server.url}/api/v1/models/{MODEL}/attachments", json={"guardrail_policy": policy})
    assert r.status_code == 200, r.text


def _error(resp: httpx.Response, status: int, code: str, param: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code, err
    if param is not None:
        assert err["param"] == param, err


def _entry(server: LiveServer, response_id: str, until: Any = None) -> dict[str, Any]:
    """The entry of a response; the writer thread may still hold it for a moment (the server
    waits for its own queue before answering 404), ``until`` waits for a later change."""
    deadline = time.monotonic() + 30
    while True:
        r = httpx.get(f"{server.url}/api/v1/requests/{response_id}", timeout=30)
        if r.status_code == 200 and (until is None or until(r.json())):
            return dict(r.json())
        assert time.monotonic() < deadline, r.text
        time.sleep(0.1)


@pytest.fixture(scope="module")
def guarded(live_server: LiveServer, client: Any) -> Iterator[dict[str, str]]:
    """Two chats through a PII-redacting policy (one streamed), one through a policy that
    redacts only answers, and one with no policy."""
    for policy in (POLICY, OUTPUT_ONLY):
        r = httpx.post(f"{live_server.url}/api/v1/guardrails/policies", json=policy, timeout=60)
        assert r.status_code in (200, 201), r.text
    _attach(live_server, POLICY["name"])
    try:
        text = f"My email is {EMAIL}, call me at {PHONE}; my SSN is {SSN}. Is my dental cleaning covered?"
        plain = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "system", "content": ECHO}, {"role": "user", "content": text}],
            max_tokens=40,
            temperature=0,
        )
        chunks = list(
            client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": f"Write to {EMAIL} about SSN {SSN}"}],
                max_tokens=8,
                temperature=0,
                stream=True,
            )
        )
        _attach(live_server, OUTPUT_ONLY["name"])
        output_only = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"Is {EMAIL} my login?"}], max_tokens=8, temperature=0
        )
    finally:
        _attach(live_server, "")
    unguarded = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": UNGUARDED}], max_tokens=4)
    yield {"plain": plain.id, "streamed": chunks[0].id, "output_only": output_only.id, "unguarded": unguarded.id}


def test_a_guarded_request_keeps_only_what_the_redaction_left(live_server: LiveServer, guarded: dict[str, str]) -> None:
    e = _entry(live_server, guarded["plain"])
    assert e["text_mode"] == "redacted" and e["policy"] is not None and e["policy"].startswith("reqlog-pii@")
    assert e["prompt"] is not None and "<EMAIL>" in e["prompt"] and "<US_SSN>" in e["prompt"] and "<PHONE>" in e["prompt"]
    assert "dental cleaning" in e["prompt"]  # the rest of the member's message is kept
    assert e["response"] is not None and e["outcome"] == "ok" and e["kind"] == "chat"
    assert e["served_model"] == MODEL and e["deployment"] is None and e["completion_tokens"] > 0
    labels = {(f["direction"], f["label"], f["action"]): f["count"] for f in e["findings"]}
    assert {("input", "EMAIL", "redact"), ("input", "PHONE", "redact"), ("input", "US_SSN", "redact")} <= set(labels)
    assert e["finding_count"] >= 3 and e["has_embedding"] is True and e["latency_s"] > 0
    s = _entry(live_server, guarded["streamed"])
    assert s["prompt"] is not None and "<EMAIL>" in s["prompt"] and "<US_SSN>" in s["prompt"] and s["ttft_s"] is not None
    for entry in (e, s):
        dumped = json.dumps(entry)
        for secret in SECRETS:
            assert secret not in dumped, f"{secret!r} is in the logged entry"


def test_a_request_no_policy_checked_is_logged_without_text(live_server: LiveServer, guarded: dict[str, str]) -> None:
    u = _entry(live_server, guarded["unguarded"])
    assert u["text_mode"] == "none" and u["prompt"] is None and u["response"] is None
    assert u["policy"] is None and u["has_embedding"] is False and u["outcome"] == "ok" and u["completion_tokens"] > 0


def test_a_policy_that_does_not_redact_input_keeps_no_prompt(live_server: LiveServer, guarded: dict[str, str]) -> None:
    o = _entry(live_server, guarded["output_only"])
    assert o["policy"] is not None and o["policy"].startswith("reqlog-out@")
    assert o["prompt"] is None and o["has_embedding"] is False  # neither the text nor its vector
    assert o["response"] is not None and o["text_mode"] == "redacted"  # the answer went through output redaction
    assert EMAIL not in json.dumps(o)


def test_removed_values_are_nowhere_in_the_store_or_metrics(live_server: LiveServer, guarded: dict[str, str]) -> None:
    for rid in guarded.values():
        _entry(live_server, rid)  # written
    metrics = httpx.get(f"{live_server.url}/metrics").text
    assert "plinth_request_log_records_total" in metrics and "plinth_request_log_queue_depth" in metrics
    with sqlite3.connect(live_server.home / "plinth.db") as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert "request_log" in tables
        dump = "\n".join(str(row) for t in tables for row in conn.execute(f'SELECT * FROM "{t}"'))
    assert guarded["plain"] in dump and "<EMAIL>" in dump  # the scan reads the log's rows
    for secret in SECRETS:
        assert secret not in dump, f"{secret!r} is in the database"
        assert secret not in metrics, f"{secret!r} is in /metrics"
    assert "Zephyrine-quartz-7731" not in dump  # no policy checked it: no text kept


def test_feedback_shows_on_the_entry(live_server: LiveServer, guarded: dict[str, str]) -> None:
    rid = guarded["plain"]
    r = httpx.post(f"{live_server.url}/api/v1/feedback", json={"response_id": rid, "rating": "negative", "comment": "wrong"})
    assert r.status_code == 201, r.text
    assert _entry(live_server, rid, until=lambda e: e["feedback"] == -1)["feedback"] == -1
    listed = httpx.get(f"{live_server.url}/api/v1/requests", params={"limit": 100}).json()["requests"]
    assert next(e for e in listed if e["response_id"] == rid)["feedback"] == -1


def test_listing_filters_paging_and_errors(live_server: LiveServer, guarded: dict[str, str]) -> None:
    base = f"{live_server.url}/api/v1/requests"
    for rid in guarded.values():
        _entry(live_server, rid)
    body = httpx.get(base, params={"model": MODEL, "limit": 1000}).json()
    ids = [e["response_id"] for e in body["requests"]]
    assert set(guarded.values()) <= set(ids) and body["enabled"] is True
    assert [e["id"] for e in body["requests"]] == sorted((e["id"] for e in body["requests"]), reverse=True)  # newest first
    page1 = httpx.get(base, params={"limit": 1}).json()
    page2 = httpx.get(base, params={"limit": 1, "before_id": page1["next_before_id"]}).json()
    assert page1["next_before_id"] == page1["requests"][0]["id"] and page2["requests"][0]["id"] < page1["requests"][0]["id"]
    found = httpx.get(base, params={"has_findings": "true", "limit": 1000}).json()["requests"]
    assert guarded["plain"] in [e["response_id"] for e in found] and guarded["unguarded"] not in [e["response_id"] for e in found]
    assert httpx.get(base, params={"deployment": "no-such-deployment"}).json()["requests"] == []
    assert httpx.get(base, params={"since": "2999-01-01T00:00:00Z"}).json()["requests"] == []
    assert httpx.get(base, params={"outcome": "ok", "since": "1h"}).status_code == 200
    _error(httpx.get(base, params={"outcome": "fine"}), 400, "invalid_request", "outcome")
    _error(httpx.get(base, params={"since": "last tuesday"}), 400, "invalid_request", "since")
    _error(httpx.get(base, params={"limit": 0}), 400, "invalid_request")
    _error(httpx.get(f"{base}/chatcmpl-{'0' * 32}"), 404, "not_found", "response_id")
    # another project sees nothing of the default project's log
    other = httpx.get(base, headers={"X-Plinth-Project": "no-such-project"})
    assert other.status_code == 404 or other.json()["requests"] == []


def test_exports_stream_jsonl_and_parquet(live_server: LiveServer, guarded: dict[str, str]) -> None:
    base = f"{live_server.url}/api/v1/requests/export"
    for rid in guarded.values():
        _entry(live_server, rid)
    r = httpx.get(base, params={"format": "jsonl"}, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert set(guarded.values()) <= {row["response_id"] for row in rows}
    assert all(secret not in r.text for secret in SECRETS)
    pq = pytest.importorskip("pyarrow.parquet")
    p = httpx.get(base, params={"format": "parquet", "model": MODEL}, timeout=60)
    assert p.status_code == 200 and p.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(p.content))
    assert set(guarded.values()) <= set(table.column("response_id").to_pylist())
    one = next(x for x in table.to_pylist() if x["response_id"] == guarded["plain"])
    assert "<EMAIL>" in one["prompt"] and json.loads(one["findings"])[0]["count"] >= 1
    _error(httpx.get(base, params={"format": "csv"}), 400, "invalid_request")


def test_quality_signals_of_a_deployment(live_server: LiveServer, client: Any) -> None:
    api = f"{live_server.url}/api/v1/deployments"
    r = httpx.post(api, json={"name": "reqlog-quality", "model": MODEL}, timeout=60)
    assert r.status_code == 201, r.text
    try:
        resp = client.chat.completions.create(model="reqlog-quality", messages=[{"role": "user", "content": "Hello"}], max_tokens=4)
        e = _entry(live_server, resp.id)
        assert e["deployment"] == "reqlog-quality" and e["revision"] == 1 and e["model_version"] is not None
        q = httpx.get(f"{api}/reqlog-quality/quality", params={"window": "1h", "buckets": 4}).json()
        (rev,) = q["revisions"]
        assert rev["revision"] == 1 and rev["requests"] == 1 and rev["error_rate"] == 0.0 and rev["block_rate"] == 0.0
        assert rev["latency_p50_s"] is not None and rev["latency_p50_s"] == rev["latency_p95_s"]
        assert rev["negative_feedback_rate"] is None  # nothing rated: nothing to judge
        assert len(q["series"]) == 4 and sum(b["requests"] for b in q["series"]) == 1
        filtered = httpx.get(f"{live_server.url}/api/v1/requests", params={"deployment": "reqlog-quality", "revision": 1}).json()
        assert [x["response_id"] for x in filtered["requests"]] == [resp.id]
        _error(httpx.get(f"{api}/reqlog-quality/quality", params={"window": "2s"}), 400, "invalid_request", "window")
        _error(httpx.get(f"{api}/no-such-deployment/quality"), 404, "not_found")
        # the CLI reads the same log from the server's store
        out = cli.plinth(live_server.home, "requests", "quality", "reqlog-quality", "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["overall"]["requests"] == 1
    finally:
        httpx.delete(f"{api}/reqlog-quality", timeout=60)


def test_the_cli_lists_shows_and_exports(live_server: LiveServer, guarded: dict[str, str], tmp_path: Any) -> None:
    home = live_server.home
    for rid in guarded.values():
        _entry(live_server, rid)
    out = cli.plinth(home, "requests", "list", "--model", MODEL, "-n", "200", "--json")
    assert out.returncode == 0, out.stderr
    assert set(guarded.values()) <= {e["response_id"] for e in json.loads(out.stdout)["requests"]}
    table = cli.plinth(home, "requests", "list", "-n", "5", COLUMNS="200")
    assert table.returncode == 0 and "request log" in table.stdout
    shown = cli.plinth(home, "requests", "show", guarded["plain"], COLUMNS="200")
    assert shown.returncode == 0 and "<EMAIL>" in shown.stdout and "reqlog-pii@" in shown.stdout
    target = tmp_path / "log.jsonl"
    exported = cli.plinth(home, "requests", "export", "--format", "jsonl", "-o", str(target))
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(x) for x in target.read_text().splitlines()]
    assert guarded["plain"] in {x["response_id"] for x in lines}
    bad = cli.plinth(home, "requests", "show", "chatcmpl-nothing")
    assert bad.returncode != 0 and "not in the request log" in bad.stderr
