"""The assistant evaluation suite through the live server: a suite uploaded as a dataset
version, ``POST /api/v1/evaluations`` with ``kind: assistant`` on a deployment with a
knowledge base (a job with progress, the report with every question's verdict, compared
with ``/evaluations/compare``), bad requests refused before any job, and the report used by
a deployment's evaluation gate."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.live_server import MODEL, LiveServer

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "examples" / "acme-health"


def _suite() -> bytes:
    rows = [json.loads(line) for line in (ACME / "assistant-eval.jsonl").read_text().splitlines()]
    by_kind: dict[str, dict[str, Any]] = {}
    for r in rows:
        by_kind.setdefault(r["metadata"]["kind"], r)
    picked = [by_kind["off_topic"], by_kind["answerable"], by_kind["unanswerable"]]  # the off-topic one first (max_samples=1 below)
    return "".join(json.dumps(r) + "\n" for r in picked).encode()


http = httpx.Client(timeout=300)  # a knowledge base's first create loads the embedder; the machine may be busy


def _wait(api: str, job_id: str, timeout: float = 900) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"{api}/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(1.0)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def _error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    return resp.json()["error"]


def test_assistant_suite_on_a_deployment_and_as_a_gate(live_server: LiveServer) -> None:
    api = live_server.url + "/api/v1"
    kb = http.post(f"{api}/knowledge-bases", json={"name": "ae-policies"})
    assert kb.status_code == 201, kb.text
    docs = [{"name": n, "text": (ACME / "policies" / n).read_text()} for n in ("bronze-plan.md", "plans-overview.md", "exclusions.md")]
    added = http.post(f"{api}/knowledge-bases/ae-policies/documents", json={"documents": docs})
    assert added.status_code in (200, 201), added.text
    suite = http.post(f"{api}/datasets/ae-suite/versions", content=_suite(), params={"filename": "suite.jsonl"})
    assert suite.status_code == 201, suite.text
    dep = http.post(f"{api}/deployments", json={"name": "ae-assistant", "targets": [{"model": MODEL, "knowledge_base": "ae-policies"}]})
    assert dep.status_code == 201, dep.text

    # refused before any job: an unknown kind, a dataset without an answer key, an unknown model
    before = len(http.get(f"{api}/jobs").json()["jobs"])
    assert "kind" in _error(http.post(f"{api}/evaluations", json={"kind": "vibes", "model": MODEL, "dataset": "ae-suite"}), 400)["message"]
    plain = b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n' * 2
    assert http.post(f"{api}/datasets/ae-plain/versions", content=plain, params={"filename": "plain.jsonl"}).status_code == 201
    err = _error(http.post(f"{api}/evaluations", json={"kind": "assistant", "model": MODEL, "dataset": "ae-plain"}), 400)
    assert "not an assistant evaluation suite" in err["message"] and "metadata" in err["message"]
    _error(http.post(f"{api}/evaluations", json={"kind": "assistant", "model": "no-such-model", "dataset": "ae-suite"}), 404)
    assert len(http.get(f"{api}/jobs").json()["jobs"]) == before

    # the suite on the deployment, through the serving path (its knowledge base)
    r = http.post(f"{api}/evaluations", json={"kind": "assistant", "model": "ae-assistant", "dataset": "ae-suite", "max_tokens": 48})
    assert r.status_code == 202, r.text
    job = _wait(api, r.json()["job"]["id"])
    assert job["state"] == "succeeded", job
    assert job["kind"] == "assistant-eval" and job["progress"]["total"] == 3 and job["progress"]["done"] == 3
    report = http.get(f"{api}/evaluations/{job['result']['report']}").json()
    m = report["metrics"]
    assert report["model"] == "ae-assistant" and report["dataset"] == "ae-suite@1" and m["suite"] == "assistant"
    assert {"answer_accuracy", "citation_accuracy", "refusal_accuracy", "off_topic_decline_rate", "pii_leak_rate"} <= set(m)
    assert m["answerable_questions"] == m["unanswerable_questions"] == m["off_topic_questions"] == 1
    verdicts = {v["kind"]: v for v in report["samples"]}
    assert verdicts["off_topic"]["declined"]  # nothing relevant in the knowledge base: the stage says it does not know
    answerable = verdicts["answerable"]
    assert answerable["cited_documents"] and answerable["citation_correct"]  # retrieval found the Bronze plan's passages
    assert m["citation_accuracy"] == 1.0 and m["pii_leak_rate"] == 0.0
    compared = http.get(f"{api}/evaluations/compare", params={"models": ["ae-assistant"]}).json()
    assert "answer_accuracy" in compared["metrics"] and compared["models"][0]["report"]["id"] == report["id"]

    # the report gates a deployment of the model it was run on
    bare = http.post(
        f"{api}/evaluations", json={"kind": "assistant", "model": MODEL, "dataset": "ae-suite", "max_samples": 1, "max_tokens": 8}
    )
    assert _wait(api, bare.json()["job"]["id"])["state"] == "succeeded"
    gate = [{"metric": "off_topic_decline_rate", "min": 1.01, "dataset": "ae-suite"}]  # a rate never reaches it
    refused = _error(http.post(f"{api}/deployments", json={"name": "ae-gated", "model": MODEL, "gate": gate}), 409)
    assert "off_topic_decline_rate" in refused["message"] and "ae-suite@1" in refused["message"]
    gate = [{"metric": "off_topic_questions", "min": 1, "dataset": "ae-suite"}]
    assert http.post(f"{api}/deployments", json={"name": "ae-gated", "model": MODEL, "gate": gate}).status_code == 201


def test_cli_adds_the_suite_and_submits_the_job(tmp_path: Path) -> None:
    from tests.support import cli

    home = tmp_path / "home"
    out = cli.plinth(home, "eval", MODEL, "--suite", "assistant", "--data", str(ACME / "assistant-eval.jsonl"), "--detach", COLUMNS="200")
    assert out.returncode == 0, out.stderr
    assert "suite assistant-eval@1 (added, 62 questions)" in out.stdout and "(assistant-eval)" in out.stdout
    again = cli.plinth(home, "eval", MODEL, "--suite", "assistant", "--data", str(ACME / "assistant-eval.jsonl"), "--detach")
    assert "assistant-eval@1 (unchanged" in again.stdout
    bad = cli.plinth(home, "eval", MODEL, "--suite", "assistant", "--data", str(ACME / "faq.jsonl"), "--detach")
    assert bad.returncode != 0 and "not an assistant evaluation suite" in bad.stderr
    wrong = cli.plinth(home, "eval", MODEL, "--suite", "vibes", "--dataset", "x")
    assert wrong.returncode != 0 and "--suite must be generation or assistant" in wrong.stderr
