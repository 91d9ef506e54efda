"""The shipped Acme Health policy through the live server and the official openai client:
Acme's own published numbers and service names (its allow list) pass through requests and
answers, streamed or not, recorded as ``allow`` findings; the management API shows the list
as part of the policy version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.live_server import MODEL, LiveServer

REPO = Path(__file__).resolve().parents[2]
NURSE_LINE = "1-800-555-0177"
ECHO = "You repeat the user's message exactly, nothing else."
SAY = f"The 24-hour Nurse Line at {NURSE_LINE} is open every day."


def _attach(server: LiveServer, policy: str) -> None:
    r = httpx.patch(f"{server.url}/api/v1/models/{MODEL}/attachments", json={"guardrail_policy": policy})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def acme(live_server: LiveServer) -> Iterator[str]:
    text = (REPO / "examples" / "guardrails" / "acme-health.yaml").read_text()
    r = httpx.post(f"{live_server.url}/api/v1/guardrails/policies", json={"yaml": text}, timeout=60)
    assert r.status_code in (200, 201), r.text
    _attach(live_server, "acme-health")
    try:
        yield r.json()["ref"]
    finally:
        _attach(live_server, "")


def test_the_api_shows_the_allow_list_as_part_of_the_version(live_server: LiveServer, acme: str) -> None:
    shown = httpx.get(f"{live_server.url}/api/v1/guardrails/policies/{acme}").json()
    allow = shown["spec"]["allow"]
    assert {"value": NURSE_LINE, "labels": ["PHONE"], "match": "digits", "note": "24-hour Nurse Line"} in allow
    assert any(a["value"] == "Nurse Line" and a["match"] == "text" for a in allow)


@pytest.mark.parametrize("stream", [False, True])
def test_acmes_own_number_is_kept_in_the_request_and_the_answer(client: Any, acme: str, stream: bool) -> None:
    args: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "system", "content": ECHO}, {"role": "user", "content": SAY}],
        "max_tokens": 40,
        "temperature": 0,
    }
    if stream:
        chunks = list(client.chat.completions.create(stream=True, **args))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        g = (chunks[-1].model_extra or {})["guardrails"]
    else:
        resp = client.chat.completions.create(**args)
        text, g = resp.choices[0].message.content or "", (resp.model_extra or {})["guardrails"]
    assert g["policy"] == acme and g["blocked"] is False, (text, g)
    inputs = [(f["label"], f["action"]) for f in g["findings"] if f["direction"] == "input"]
    assert ("PHONE", "allow") in inputs and all(a == "allow" for _, a in inputs), inputs
    assert NURSE_LINE in text, f"the model did not repeat the number: {text!r}"
    assert "<PHONE>" not in text and "<PERSON>" not in text
    outputs = [(f["label"], f["action"]) for f in g["findings"] if f["direction"] == "output" and f["kind"] == "pii"]
    assert ("PHONE", "allow") in outputs and all(a == "allow" for _, a in outputs), outputs


def test_another_number_in_the_answer_is_still_redacted(client: Any, acme: str) -> None:
    resp = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": ECHO}, {"role": "user", "content": "My cell phone is 617-253-1000, call me back."}],
        max_tokens=40,
        temperature=0,
    )
    text, g = resp.choices[0].message.content or "", (resp.model_extra or {})["guardrails"]
    assert "617-253-1000" not in text
    assert ("PHONE", "redact") in {(f["label"], f["action"]) for f in g["findings"] if f["direction"] == "input"}
