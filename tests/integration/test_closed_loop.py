"""Issue 15's closed retraining loop, end to end on the embedded model (ADR 0106).

``plinth apply`` of the shipped Acme project folder (a copy, with the pipeline's parameters made
tiny: 2 tuning steps, 2 evaluation samples, no watch period), a live server whose alert
evaluator and pipeline runner look every second, in-distribution traffic, then a shifted batch
(the same questions wrapped in a long preamble: longer, unlike the FAQ). A drift run of the
shifted batch flags its prompts; the drift alert fires by itself, its ``pipeline`` action starts
``acme-retrain`` through the trigger, and the run builds a dataset version from the flagged
questions (redacted, labelled with what the knowledge base supports), tunes a LoRA adapter,
evaluates it against the production model, puts it on a 10% canary and promotes it (or the
deployment rolls it back). History and lineage show it.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from plinth.automation.loop_actions import candidates
from plinth.automation.pipelines import ACTIONS, ActionCall
from plinth.errors import ErrorCode, PlinthError
from tests.support.cli import plinth
from tests.support.live_server import LiveServer, start_server, stop_server

REPO = Path(__file__).resolve().parents[2]
ACME = REPO / "examples" / "acme-health"
DEPLOYMENT = "acme-assistant"
PREAMBLE = (
    "Hello, I have been an Acme Health member for many years together with my whole family, and I am writing because "
    "something about my coverage confuses me and nobody on the phone could explain it to me so far. My question is: {q} "
    "Thank you very much for your patience and for your help with this."
)
PII = "I'm jane.doe@example.com, phone 415-555-0134."


def _questions() -> list[str]:
    return [json.loads(line)["messages"][0]["content"] for line in (ACME / "faq-eval.jsonl").read_text().splitlines() if line]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped example with the pipeline's parameters made tiny (files it refers
    to outside the folder are copied alongside, so the relative paths hold)."""
    root = tmp_path_factory.mktemp("closed-loop-files")
    shutil.copytree(ACME, root / "examples" / "acme-health", ignore=shutil.ignore_patterns("__pycache__", "bias", "alerts"))
    shutil.copytree(REPO / "examples" / "guardrails", root / "examples" / "guardrails")
    folder = root / "examples" / "acme-health" / "project"
    pipeline = folder / "pipeline.yaml"
    text = pipeline.read_text()
    for key, value in (("tune_steps", "2"), ("eval_samples", "2"), ("max_tokens", "8"), ("watch_s", "0")):
        text, n = re.subn(rf"^(    {key}: )\S+", rf"\g<1>{value}", text, flags=re.M)
        assert n == 1, key
    pipeline.write_text(text)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, smol_dir: Path, smol32_dir: Path, project: Path) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("closed-loop-home")
    # the session's dequantised copies, under the names the server's own cache uses: the one the
    # torch runtime serves adapters with, and the float32 one the tune step trains on (without
    # it the tune job dequantises its own, about 40 s); one copy where the CPU computes no bf16,
    # since the torch runtime then serves in float32 too
    torch_cache = home / "cache" / "torch"
    torch_cache.mkdir(parents=True)
    for copy in {smol_dir, smol32_dir}:
        (torch_cache / copy.name).symlink_to(copy, target_is_directory=True)
    applied = plinth(home, "apply", str(project))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Pipeline acme-retrain" in applied.stdout and "Trigger acme-retrain-on-drift" in applied.stdout, applied.stdout
    # one passage per prompt keeps the 36 requests' prefill short on two cores
    server = start_server(home, PLINTH_PIPELINES_INTERVAL_S="1", PLINTH_ALERT_INTERVAL_S="1", PLINTH_KB_TOP_K="1")
    try:
        yield server
    finally:
        stop_server(server)
        log = server.log_text()
        assert "Traceback" not in log, f"the server logged a traceback:\n{log[-5000:]}"


def _ask(api: httpx.Client, questions: list[str]) -> list[str]:
    def one(q: str) -> str:
        r = api.post("/v1/chat/completions", json={"model": DEPLOYMENT, "messages": [{"role": "user", "content": q}], "max_tokens": 4})
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    with ThreadPoolExecutor(3) as pool:  # within the server's queue limit
        return list(pool.map(one, questions))


def _poll(what: str, fetch: Any, done: Any, timeout: float) -> Any:
    """Poll ``fetch()`` until ``done(value)``; polling only (no timed assertion)."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value):
        assert time.monotonic() < deadline, f"{what}: still {value!r}"
        time.sleep(1)
        value = fetch()
    return value


@pytest.mark.timeout(900)  # a LoRA tune and two evaluations on two shared cores
def test_drift_alert_retrains_and_the_candidate_reaches_canary_then_promote(server: LiveServer) -> None:
    api = httpx.Client(base_url=server.url, timeout=300)
    questions = _questions()

    # in-distribution traffic (held-out FAQ questions), then the shifted batch (one with PII);
    # the drift window's minimum is 30 prompts
    _ask(api, questions[:6])
    shifted = [PREAMBLE.format(q=q) for q in questions[30:60]]
    shifted[0] = f"{PII} {shifted[0]}"
    shifted_ids = _ask(api, shifted)
    _poll(
        "the shifted batch in the request log",
        lambda: {e["response_id"] for e in api.get("/api/v1/requests", params={"deployment": DEPLOYMENT, "limit": 100}).json()["requests"]},
        lambda got: set(shifted_ids) <= got,
        60,
    )
    # members rated two answers: the question of the negative one is left out of the dataset,
    # the positive one keeps its (redacted) answer
    for response_id, rating in ((shifted_ids[1], -1), (shifted_ids[2], 1)):
        r = api.post("/api/v1/feedback", json={"response_id": response_id, "rating": rating})
        assert r.status_code == 201, r.text
    rule = api.get("/api/v1/alerts/rules/acme-questions-drifted").json()
    assert rule["state"] != "firing", rule

    # drift of the newest 30 prompts against the training data: it drifted and flagged them
    run = api.post(f"/api/v1/deployments/{DEPLOYMENT}/drift", json={"window": "1h", "reference": "dataset:acme-faq@1", "limit": 30})
    assert run.status_code == 201, run.text
    assert run.json()["drifted"] is True and run.json()["results"]["anomalies"]["flagged"] >= 20, run.json()

    # the alert evaluator fires the rule; its pipeline action fires the trigger, which starts the run
    def runs() -> list[dict[str, Any]]:
        return list(api.get("/api/v1/pipeline-runs", params={"pipeline": "acme-retrain"}).json()["runs"])

    started = _poll("a run of acme-retrain", runs, bool, 120)
    assert len(started) == 1 and started[0]["reason"].startswith("trigger acme-retrain-on-drift (alert): alert acme-questions-drifted"), (
        started
    )
    run_id = started[0]["id"]
    events = api.get("/api/v1/alerts/events", params={"rule": "acme-questions-drifted"}).json()["events"]
    assert any(e["to_state"] == "firing" for e in events), events

    finished = _poll(
        f"run {run_id}",
        lambda: api.get(f"/api/v1/pipeline-runs/{run_id}").json(),
        lambda r: r["run"]["state"] in ("succeeded", "failed"),
        780,
    )
    steps = {s["name"]: s for s in finished["steps"]}
    assert finished["run"]["state"] == "succeeded", json.dumps(finished, indent=1)[-6000:]

    # the dataset version: the base plus flagged questions (redacted), labelled from the knowledge base
    data = steps["data"]["outputs"]
    assert data["base"] == "acme-faq@1" and data["dataset"] == "acme-faq@2" and data["added"] >= 10, data
    assert data["added"] == data["from_kb"] + data["from_feedback"] and data["logged"] <= 30, data
    rows = api.get("/api/v1/datasets/acme-faq/versions/2/rows", params={"split": "all", "limit": 1000}).json()["rows"]
    pairs = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in rows}
    text = json.dumps(rows)
    assert "jane.doe@example.com" not in text and "415-555-0134" not in text and len(rows) == data["rows"]
    assert shifted[1] not in pairs and data["negative_feedback"] == 1, data
    rated = api.get(f"/api/v1/requests/{shifted_ids[2]}").json()
    if rated["response"]:  # kept as the member saw it (redacted)
        assert data["from_feedback"] == 1 and pairs[rated["prompt"]] == rated["response"].strip(), data

    # the new registry version's lineage names the new dataset version
    registered = steps["tune"]["outputs"]["registered"]
    name, _, version = registered.partition("@")
    mv = api.get(f"/api/v1/registry/models/{name}/versions/{version}").json()
    assert mv["dataset"] == "acme-faq@2", mv
    lineage = api.get(f"/api/v1/pipeline-runs/{run_id}/lineage").json()
    by_step = {s["step"]: s for s in lineage["steps"]}
    assert "acme-questions-drifted" in json.dumps(lineage["trigger"]), lineage["trigger"]
    assert by_step["tune"]["artifacts"]["dataset"] == "acme-faq@2" and by_step["tune"]["job_id"]

    # gated against production, then 10% canary and promote (or the deployment's automatic rollback)
    gate = steps["gate"]["outputs"]
    assert gate["passed"] is True and gate["metric"] == "token_f1", gate
    assert steps["canary"]["outputs"]["percent"] == 10
    outcome = steps["watch"]["outputs"]["outcome"]
    history = [e["kind"] for e in api.get(f"/api/v1/deployments/{DEPLOYMENT}/history").json()["events"]]
    assert "canary" in history, history
    if outcome == "healthy":
        assert steps["promote"]["state"] == "succeeded" and "promoted" in history, (steps["promote"], history)
        stable = api.get(f"/api/v1/deployments/{DEPLOYMENT}").json()["stable"]
        assert stable["targets"][0]["model"] == registered, stable
    else:
        assert outcome == "rolled_back" and steps["promote"]["state"] == "skipped", steps
        assert {"rolled_back", "auto_rollback"} & set(history), history


def test_extractive_candidates_are_sentences_and_table_rows() -> None:
    passage = (
        "## Deductibles\n| Plan | Deductible | Copay |\n|---|---|---|\n| Gold | $500 | $20 |\n| Bronze | $3,000 | $50 |\n\n"
        "The Gold plan is the richest plan. It covers telehealth at no cost. Call us.\n\n| | Gold |\n|---|---|\n| Specialist visit | $35 |"
    )
    assert candidates(passage) == [
        "Plan: Gold; Deductible: $500; Copay: $20.",
        "Plan: Bronze; Deductible: $3,000; Copay: $50.",
        "The Gold plan is the richest plan.",
        "It covers telehealth at no cost.",
        "Specialist visit; Gold: $35.",
    ]


def test_the_gate_against_production_and_its_errors() -> None:
    gate = ACTIONS["gate_vs_production"].run
    call = ActionCall("run-1", "gate", datetime.now(UTC), datetime.now(UTC))
    ok = gate({"metric": "token_f1", "candidate": 0.41, "production": 0.44, "max_drop": 0.05}, None, call)
    assert ok["passed"] is True and ok["delta"] == pytest.approx(-0.03)
    with pytest.raises(PlinthError, match=re.escape("worse than production's 0.44 by more than 0.01")) as e:
        gate({"metric": "token_f1", "candidate": 0.41, "production": 0.44, "max_drop": 0.01}, None, call)
    assert e.value.code is ErrorCode.INVALID_REQUEST
    assert gate({"metric": "loss", "candidate": 1.0, "production": 1.2, "higher_is_better": False}, None, call)["passed"]
    with pytest.raises(PlinthError) as e:
        gate({"candidate": "high", "production": 0.4}, None, call)
    assert e.value.param == "spec.candidate"
    with pytest.raises(PlinthError) as e:
        ACTIONS["dataset_from_requests"].run({"deployment": "acme-assistant"}, None, call)
    assert e.value.param == "spec.base"
