"""Knowledge bases end to end on the live server: the CLI from the README, the management API,
and answers with citations through the official openai client."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import httpx
import openai
import pytest

from tests.support import cli
from tests.support.live_server import MODEL, LiveServer

REPO = Path(__file__).resolve().parents[2]
ACME = REPO / "examples" / "acme-health"
KB = "acme-it"


def _cli(server: LiveServer, *args: str) -> CompletedProcess[str]:
    # in this process (tests/support/cli.py); `kb` loads the embedder once per process and keeps it
    return cli.plinth(server.home, *args, COLUMNS="200")


def _canonical(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"]
    return err


@pytest.fixture(scope="module")
def acme(live_server: LiveServer) -> str:
    """The README path: create the KB with the CLI and add the examples folder."""
    out = _cli(live_server, "kb", "create", KB, "-d", "Acme Health policies")
    assert out.returncode == 0, out.stderr
    out = _cli(live_server, "kb", "add", KB, str(ACME / "policies"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "added" in out.stdout and "version 1" in out.stdout
    return KB


def test_cli_search_show_eval(live_server: LiveServer, acme: str) -> None:
    out = _cli(live_server, "kb", "search", acme, "How much is the Gold deductible?", "-k", "3")
    assert out.returncode == 0 and "gold-plan.md" in out.stdout and "$500" in out.stdout
    out = _cli(live_server, "kb", "show", acme, "--json")
    shown = json.loads(out.stdout)
    assert shown["version"] == 1 and len(shown["documents"]) == 15
    out = _cli(live_server, "kb", "eval", acme, "--data", str(ACME / "questions.jsonl"), "--json")
    report = json.loads(out.stdout)
    assert report["recall"]["@5"] >= 0.9
    again = _cli(live_server, "kb", "add", acme, str(ACME / "policies"))
    assert again.returncode == 0 and "nothing changed" in again.stdout
    bad = _cli(live_server, "kb", "create", "Bad Name")
    assert bad.returncode != 0 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def test_answer_with_citations_through_the_openai_client(live_server: LiveServer, client: Any, acme: str) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the deductible on the Gold plan?"}],
        max_tokens=48,
        temperature=0,
        extra_body={"knowledge_base": acme},
    )
    cites = (r.model_extra or {})["citations"]
    assert cites and cites[0]["document"] == "gold-plan.md" and cites[0]["index"] == 1
    assert {"heading", "start", "end", "score", "knowledge_base", "version", "chunk_id"} <= set(cites[0])
    assert r.choices[0].message.content
    saved = httpx.get(f"{live_server.url}/api/v1/citations/{r.id}").json()
    assert saved["citations"] == cites and saved["knowledge_base"] == acme and saved["model"] == MODEL
    _canonical(httpx.get(f"{live_server.url}/api/v1/citations/chatcmpl-nope"), 404, "not_found")


def test_streaming_carries_citations_on_the_last_chunk(client: Any, acme: str) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "How long do I have to appeal a denied claim?"}],
        max_tokens=32,
        temperature=0,
        stream=True,
        extra_body={"knowledge_base": acme},
    )
    chunks = list(stream)
    with_cites = [c for c in chunks if (c.model_extra or {}).get("citations")]
    assert len(with_cites) == 1 and with_cites[0] is chunks[-1]
    assert "claims-and-appeals.md" in {c["document"] for c in with_cites[0].model_extra["citations"]}


def test_it_says_it_does_not_know(client: Any, acme: str) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Who painted the Mona Lisa?"}],
        max_tokens=32,
        extra_body={"knowledge_base": acme},
    )
    assert "don't know" in r.choices[0].message.content and r.model_extra["citations"] == []


def test_attached_knowledge_base_and_pinned_versions(live_server: LiveServer, client: Any, acme: str) -> None:
    url = f"{live_server.url}/api/v1/models/{MODEL}/attachments"
    _canonical(httpx.patch(url, json={"knowledge_base": "no-such-kb"}), 404, "not_found")
    _canonical(httpx.patch(url, json={"knowledge_base": f"{acme}@99"}), 404, "not_found")
    assert httpx.patch(url, json={"knowledge_base": f"{acme}@1"}).status_code == 200
    try:
        r = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Can I get a copy of my medical records?"}], max_tokens=16
        )
        assert r.model_extra["citations"][0]["document"] == "member-rights.html"
        assert r.model_extra["citations"][0]["version"] == 1
    finally:
        assert httpx.delete(url).status_code == 204
    plain = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert "citations" not in (plain.model_extra or {})
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=4, extra_body={"knowledge_base": "nope@2"}
        )
    assert e.value.body["code"] == "not_found"


def test_management_api_lifecycle(live_server: LiveServer) -> None:
    api = f"{live_server.url}/api/v1/knowledge-bases"
    created = httpx.post(api, json={"name": "api-kb", "description": "d", "chunk_tokens": 120})
    assert created.status_code == 201 and created.json()["version"] == 0
    _canonical(httpx.post(api, json={"name": "api-kb"}), 409, "already_exists")
    _canonical(httpx.post(api, json={"name": "../x"}), 400, "invalid_request")
    pdf = (ACME / "policies" / "telehealth-and-nurse-line.pdf").read_bytes()
    body = {
        "documents": [
            {"name": "plans/gold.md", "text": "# Gold\n\n## Dental\n\nAdult dental is not covered.", "metadata": {"plan": "gold"}},
            {"name": "tele.pdf", "content_base64": base64.b64encode(pdf).decode()},
            {"name": "../../escape.md", "text": "# Nope"},
        ]
    }
    lines = [json.loads(x) for x in httpx.post(f"{api}/api-kb/documents?progress=true", json=body, timeout=60).text.splitlines()]
    assert [x["event"] for x in lines] == ["progress", "progress", "progress", "result"]
    result = lines[-1]
    assert result["version"] == 1 and result["counts"] == {"added": 2, "failed": 1}
    assert "'..'" in next(f["error"] for f in result["files"] if f["outcome"] == "failed")
    found = httpx.post(f"{api}/api-kb/search", json={"query": "nurse line phone", "k": 2}).json()
    assert found["passages"][0]["document"] == "tele.pdf" and found["version"] == 1
    filtered = httpx.post(f"{api}/api-kb/search", json={"query": "nurse line", "filters": {"plan": "gold"}}).json()
    assert {p["document"] for p in filtered["passages"]} == {"plans/gold.md"}
    shown = httpx.get(f"{api}/api-kb").json()
    assert [d["name"] for d in shown["documents"]] == ["plans/gold.md", "tele.pdf"] and shown["index"]["name"]
    doc = httpx.get(f"{api}/api-kb/documents/plans/gold.md").json()
    assert doc["text"].startswith("# Gold") and doc["metadata"]["plan"] == "gold"
    removed = httpx.delete(f"{api}/api-kb/documents/tele.pdf").json()
    assert removed["version"] == 2 and removed["files"][0]["outcome"] == "removed"
    after = httpx.post(f"{api}/api-kb/search", json={"query": "nurse line phone"}).json()
    assert all(p["document"] != "tele.pdf" for p in after["passages"])
    pinned = httpx.post(f"{api}/api-kb/search", json={"query": "nurse line phone", "version": 1}).json()
    assert pinned["passages"][0]["document"] == "tele.pdf"
    versions = httpx.get(f"{api}/api-kb/versions").json()["versions"]
    assert [v["version"] for v in versions] == [0, 1, 2]
    ev = httpx.post(f"{api}/api-kb/eval", json={"questions": [{"question": "adult dental", "document": "plans/gold.md"}]}).json()
    assert ev["recall"]["@1"] == 1.0
    _canonical(httpx.post(f"{api}/api-kb/search", json={"query": ""}), 400, "invalid_request")
    _canonical(httpx.post(f"{api}/api-kb/search", json={"query": "x", "version": 7}), 404, "not_found")
    _canonical(httpx.post(f"{api}/nope/search", json={"query": "x"}), 404, "not_found")
    _canonical(httpx.post(f"{api}/api-kb/documents", json={"paths": ["/etc"]}), 403, "permission_denied")
    _canonical(
        httpx.post(f"{api}/api-kb/documents", json={"documents": [{"name": "a.md", "content_base64": "***"}]}), 400, "invalid_request"
    )
    big = {"documents": [{"name": "big.md", "text": "x" * (300 * 1024)}]}
    _canonical(httpx.post(f"{api}/api-kb/documents", json=big), 413, "payload_too_large")
    assert httpx.delete(f"{api}/api-kb").status_code == 204
    _canonical(httpx.get(f"{api}/api-kb"), 404, "not_found")


def test_embeddings_through_the_openai_client(client: Any) -> None:
    import numpy as np

    one = client.embeddings.create(model="minilm", input="How much is the Gold deductible?")
    assert len(one.data) == 1 and len(one.data[0].embedding) == 384 and one.usage.prompt_tokens > 0
    many = client.embeddings.create(model="all-MiniLM-L6-v2", input=["gold deductible", "bananas"], encoding_format="float")
    v = np.array([d.embedding for d in many.data])
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    assert float(np.array(one.data[0].embedding) @ v[0]) > float(np.array(one.data[0].embedding) @ v[1])
    for bad, kind in (
        ({"input": [[100256]]}, openai.BadRequestError),  # not a cl100k_base token (token arrays: test_embeddings_inputs.py)
        ({"input": ""}, openai.BadRequestError),
        ({"input": []}, openai.BadRequestError),
        ({"input": "x", "dimensions": 385}, openai.BadRequestError),
        ({"input": "word " * 400}, openai.BadRequestError),
    ):
        with pytest.raises(kind) as e:
            client.embeddings.create(model="minilm", **bad)
        assert e.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-large", input="x")
