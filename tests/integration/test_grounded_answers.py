"""Grounded answers end to end (ADR 0115): a deployment of the embedded model with the Acme
knowledge base and ``grounding: strict``, asked through the official openai client, streamed and
not: answers quote the passage that answers with its citation, refusals point to member
services, and the deployment keeps the setting across revisions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import cli
from tests.support.live_server import MODEL, LiveServer

ACME = Path(__file__).resolve().parents[2] / "examples" / "acme-health"
KB = "acme-grounded"
DEPLOYMENT = "acme-grounded-assistant"
PHONE = "1-800-555-0142"


@pytest.fixture(scope="module")
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url + "/api/v1", timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def deployment(live_server: LiveServer, api: httpx.Client) -> str:
    out = cli.plinth(live_server.home, "kb", "create", KB, COLUMNS="200")
    assert out.returncode == 0, out.stderr
    out = cli.plinth(live_server.home, "kb", "add", KB, str(ACME / "policies"), COLUMNS="200")
    assert out.returncode == 0, out.stdout + out.stderr
    r = api.post("/deployments", json={"name": DEPLOYMENT, "model": MODEL, "knowledge_base": KB, "grounding": "strict"})
    assert r.status_code == 201, r.text
    return DEPLOYMENT


def _cited(text: str, citations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    numbers = [int(n) for n in re.findall(r"\[(\d+)\]", text)]
    by_index = {c["index"]: c for c in citations}
    return [by_index[n] for n in numbers]


def test_a_grounded_answer_quotes_the_passage_with_its_citation(client: Any, deployment: str) -> None:
    r = client.chat.completions.create(
        model=deployment, messages=[{"role": "user", "content": "How much is the deductible on the Silver plan?"}], max_tokens=64
    )
    text = r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert "$3,000" in text and "“" in text, text
    cited = _cited(text, r.model_extra["citations"])
    assert cited and cited[0]["document"] in {"silver-plan.md", "plans-overview.md"}
    assert "$3,000" in cited[0]["text"]
    assert r.model_extra["grounding"]["refused"] is False
    # no other plan's summary is served for a question about Silver
    assert not {c["document"] for c in r.model_extra["citations"]} & {"bronze-plan.md", "gold-plan.md"}


def test_an_unanswerable_question_is_refused_with_the_member_services_number(client: Any, deployment: str) -> None:
    r = client.chat.completions.create(
        model=deployment, messages=[{"role": "user", "content": "Does the Gold plan cover acupuncture?"}], max_tokens=64
    )
    text = r.choices[0].message.content
    assert text.startswith("I don't know") and PHONE in text
    assert not re.search(r"\$\d", text)
    assert r.model_extra["grounding"]["refused"] is True


def test_streaming_sends_the_same_grounded_answer(client: Any, deployment: str) -> None:
    question = [{"role": "user", "content": "How long can I stay in hospital after a C-section?"}]
    whole = client.chat.completions.create(model=deployment, messages=question, max_tokens=64).choices[0].message.content
    chunks = list(client.chat.completions.create(model=deployment, messages=question, max_tokens=64, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole and "96 hours" in streamed
    last = chunks[-1]
    assert last.model_extra["citations"] and last.model_extra["grounding"]["refused"] is False
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]


def test_the_setting_is_kept_in_the_revision_and_validated(api: httpx.Client, deployment: str) -> None:
    d = api.get(f"/deployments/{deployment}").json()
    targets = d["stable"]["targets"] if "stable" in d else d["revisions"][-1]["targets"]
    assert targets[0]["grounding"] == "strict"
    bad = api.post("/deployments", json={"name": "acme-bad-grounding", "model": MODEL, "knowledge_base": KB, "grounding": "loose"})
    assert bad.status_code == 400 and "grounding" in bad.text
