"""Per-answer explanations through the live server: a deployment with the Acme knowledge base
and guardrail policy answers a member, the request log keeps the redacted texts, and
``GET /api/v1/responses/{id}/explanation`` ranks first the passage holding the figure the
answer states; a response logged without text is 409, an unknown one 404; `plinth explain`."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import cli
from tests.support.live_server import MODEL, LiveServer

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "examples" / "acme-health" / "policies"
QUESTION = "What is the Bronze plan's monthly premium?"


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]


@pytest.fixture(scope="module")
def deployment(live_server: LiveServer, smol_dir: Path) -> Iterator[str]:
    api = f"{live_server.url}/api/v1"
    # the dequantised copy the torch runtime scores with, made once per test session
    torch_cache = live_server.home / "cache" / "torch"
    torch_cache.mkdir(parents=True, exist_ok=True)
    if not (torch_cache / smol_dir.name).exists():
        (torch_cache / smol_dir.name).symlink_to(smol_dir, target_is_directory=True)
    assert httpx.post(f"{api}/knowledge-bases", json={"name": "explain-kb"}).status_code == 201
    docs = [{"name": n, "text": (POLICIES / n).read_text()} for n in ("bronze-plan.md", "claims-and-appeals.md", "pharmacy-benefits.md")]
    r = httpx.post(f"{api}/knowledge-bases/explain-kb/documents", json={"documents": docs}, timeout=300)
    assert r.status_code in (200, 201), r.text
    policy = (REPO / "examples" / "guardrails" / "acme-health.yaml").read_text()
    assert httpx.post(f"{api}/guardrails/policies", json={"yaml": policy}, timeout=60).status_code in (200, 201)
    body = {"name": "explained", "model": MODEL, "knowledge_base": "explain-kb", "guardrail_policy": "acme-health"}
    assert httpx.post(f"{api}/deployments", json=body).status_code == 201
    assert httpx.post(f"{api}/deployments", json={"name": "unexplained", "model": MODEL}).status_code == 201
    yield "explained"
    httpx.delete(f"{api}/deployments/explained")
    httpx.delete(f"{api}/deployments/unexplained")


def _logged(live_server: LiveServer, response_id: str) -> httpx.Response:
    """The explanation once the request log's writer has written the entry (polled)."""
    url = f"{live_server.url}/api/v1/responses/{response_id}/explanation"
    for _ in range(240):
        r = httpx.get(url, timeout=300)
        if r.status_code != 404:
            return r
        time.sleep(0.25)
    return r


def test_the_passage_with_the_answers_figure_ranks_first(live_server: LiveServer, client: Any, deployment: str) -> None:
    resp = client.chat.completions.create(
        model=deployment, messages=[{"role": "user", "content": QUESTION}], max_tokens=48, temperature=0, seed=0
    )
    answer = resp.choices[0].message.content
    figure = re.search(r"\$\d[\d,]*", answer)
    assert figure, f"the model's answer states no figure: {answer!r}"
    r = _logged(live_server, resp.id)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["response_id"] == resp.id and out["deployment"] == "explained" and out["revision"] == 1
    assert out["question"] == QUESTION and out["answer"] == answer  # nothing to redact here: the logged text is the answer
    assert out["knowledge_base"] == "explain-kb" and len(out["passages"]) >= 2
    top, rest = out["passages"][0], out["passages"][1:]
    assert figure.group(0) in top["text"], (figure.group(0), top)
    assert top["drop"] > 0 and all(top["drop"] > p["drop"] for p in rest)
    assert out["without_passages"]["drop"] > 0  # the answer depends on retrieval at all
    words = QUESTION.split()
    assert [t["text"] for t in out["prompt_tokens"]] == words
    assert out["cost"]["forward_passes"] == 2 + len(out["passages"]) + len(words)
    # fewer spans than words: the words are grouped, in order
    grouped = httpx.get(f"{live_server.url}/api/v1/responses/{resp.id}/explanation", params={"max_spans": 3, "max_passages": 1}).json()
    assert len(grouped["prompt_tokens"]) == 3 and " ".join(t["text"] for t in grouped["prompt_tokens"]) == QUESTION
    assert len(grouped["passages"]) == 1
    # the CLI, on the server's home
    shown = cli.plinth(live_server.home, "explain", resp.id, "--max-spans", "2", COLUMNS="200")
    assert shown.returncode == 0, shown.stderr
    assert "passages the answer depends on" in shown.stdout and top["heading"].split(" > ")[-1] in shown.stdout
    assert "question words that mattered" in shown.stdout


def test_answers_without_logged_text_cannot_be_explained(live_server: LiveServer, client: Any, deployment: str) -> None:
    resp = client.chat.completions.create(model="unexplained", messages=[{"role": "user", "content": QUESTION}], max_tokens=4)
    err = _error(_logged(live_server, resp.id), 409, "conflict")
    assert "holds no text" in err["message"] and "guardrail policy" in err["message"]
    err = _error(httpx.get(f"{live_server.url}/api/v1/responses/chatcmpl-nothing/explanation"), 404, "not_found")
    assert "not in the request log" in err["message"]
    _error(httpx.get(f"{live_server.url}/api/v1/responses/x/explanation", params={"max_spans": 99}), 400, "invalid_request")
    missing = cli.plinth(live_server.home, "explain", "chatcmpl-nothing")
    assert missing.returncode != 0 and missing.stderr.startswith("error:") and "not in the request log" in missing.stderr
