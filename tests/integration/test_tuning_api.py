"""Fine-tuning end to end through the live server, as the README walks through it: add the
FAQ dataset, start a LoRA job, watch it, find the run and the registered version with its
lineage, chat with it through the openai client, evaluate it, and refuse bad specs."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.live_server import MODEL, LiveServer

ROOT = Path(__file__).resolve().parents[2]
FAQ = ROOT / "examples" / "acme-health" / "faq.jsonl"


def _wait(api: str, job_id: str, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{api}/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(1.0)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def _error(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    return body["error"]


@pytest.mark.slow
def test_lora_job_run_registry_chat_and_eval(live_server: LiveServer, client, smol32_dir: Path) -> None:  # type: ignore[no-untyped-def]
    api = live_server.url + "/api/v1"
    # the job trains on the embedded model dequantised to float32: give the server the session's
    # copy (same digest, same name) instead of making it dequantise its own (about 40 s)
    cache = live_server.home / "cache" / "torch"
    cache.mkdir(parents=True, exist_ok=True)
    if not (cache / smol32_dir.name).exists():
        (cache / smol32_dir.name).symlink_to(smol32_dir, target_is_directory=True)
    lines = FAQ.read_text(encoding="utf-8").splitlines()[:48]
    r = httpx.post(f"{api}/datasets/acme-tune/versions", content="\n".join(lines).encode(), params={"filename": "faq.jsonl"})
    assert r.status_code in (200, 201), r.text
    spec = {
        "base_model": MODEL,
        "dataset": "acme-tune",
        "name": "acme-tuned",
        "max_steps": 6,
        "batch_size": 4,
        "eval_every": 3,
        "checkpoint_every": 3,
        "learning_rate": 1e-3,
        "warmup_steps": 0,
    }
    sub = httpx.post(f"{api}/tuning/jobs", json=spec, headers={"Idempotency-Key": "tune-acme-1"})
    assert sub.status_code == 202, sub.text
    job_id = sub.json()["job"]["id"]
    again = httpx.post(f"{api}/tuning/jobs", json=spec, headers={"Idempotency-Key": "tune-acme-1"})
    assert again.json()["job"]["id"] == job_id and again.json()["created"] is False
    job = _wait(api, job_id)
    assert job["state"] == "succeeded", job
    result = job["result"]
    assert result["registered"] == "acme-tuned@1" and result["served_as"] == f"{MODEL}:acme-tuned-v1"
    # the run: params, per-step metrics, artifacts, a loss curve
    run = httpx.get(f"{api}/runs/{result['run_id']}").json()
    assert run["status"] == "finished" and run["dataset"].startswith("acme-tune@") and run["params"]["lora"]["rank"] == 8
    assert {a["name"] for a in run["artifacts"]} >= {"adapter", "loss.svg"}
    metrics = httpx.get(f"{api}/runs/{result['run_id']}/metrics").json()["metrics"]
    assert [p["step"] for p in metrics["train/loss"]] == [1, 2, 3, 4, 5, 6]
    assert [p["step"] for p in metrics["val/loss"]] == [3, 6]
    assert "system/rss_mb" in metrics or run["summary"]["train_seconds"] < 10
    svg = httpx.get(f"{api}/runs/{result['run_id']}/loss.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml") and "<path" in svg.text
    # the registry: lineage and the card
    version = httpx.get(f"{api}/registry/models/acme-tuned/versions/1").json()
    assert version["base_model"] == MODEL and version["run_id"] == result["run_id"] and version["dataset"] == run["dataset"]
    assert version["base_digest"].startswith("sha256:") and version["artifact_digest"].startswith("sha256:")
    card = httpx.get(f"{api}/registry/models/acme-tuned/versions/1/card").text
    assert "## Lineage" in card and result["run_id"] in card
    # served at once, under its names, through the openai client
    ids = {m.id for m in client.models.list().data}
    assert {"acme-tuned", f"{MODEL}:acme-tuned-v1"} <= ids
    messages = [{"role": "user", "content": "What does the Silver plan cost?"}]
    a = client.chat.completions.create(model="acme-tuned@1", messages=messages, max_tokens=12, temperature=0)
    b = client.chat.completions.create(model=f"{MODEL}:acme-tuned-v1", messages=messages, max_tokens=12, temperature=0)
    assert a.choices[0].message.content == b.choices[0].message.content
    assert httpx.put(f"{api}/registry/models/acme-tuned/aliases/production", json={"version": 1}).status_code == 200
    c = client.chat.completions.create(model="acme-tuned@production", messages=messages, max_tokens=12, temperature=0)
    assert c.choices[0].message.content == a.choices[0].message.content
    # evaluation, stored on the version
    ev = httpx.post(f"{api}/evaluations", json={"model": "acme-tuned@1", "dataset": "acme-tune", "max_samples": 3, "max_tokens": 16})
    assert ev.status_code == 202, ev.text
    ej = _wait(api, ev.json()["job"]["id"])
    assert ej["state"] == "succeeded", ej
    report = httpx.get(f"{api}/evaluations/{ej['result']['report']}").json()
    assert report["registry"] == "acme-tuned@1" and set(report["metrics"]) >= {"loss", "perplexity", "exact_match", "token_f1", "rouge_l"}
    assert httpx.get(f"{api}/registry/models/acme-tuned/versions/1").json()["evaluations"][0]["id"] == report["id"]


def test_bad_specs_are_refused_before_any_job(live_server: LiveServer) -> None:
    api = live_server.url + "/api/v1"
    before = len(httpx.get(f"{api}/jobs").json()["jobs"])
    cases = [
        ({"base_model": "nope", "dataset": "x"}, "nope"),
        ({"base_model": MODEL, "dataset": "missing-dataset"}, "missing-dataset"),
        ({"base_model": MODEL, "dataset": "x", "learning_rate": -1}, "learning_rate"),
        ({"base_model": MODEL, "dataset": "x", "lora": {"target_modules": ["wq"]}}, "wq"),
        ({"base_model": MODEL, "dataset": "x", "method": "distill"}, "method"),
    ]
    for spec, needle in cases:
        err = _error(httpx.post(f"{api}/tuning/jobs", json=spec), 400)
        assert needle in err["message"], err
    _error(httpx.post(f"{api}/evaluations", json={"model": "nope", "dataset": "x"}), 404)
    assert len(httpx.get(f"{api}/jobs").json()["jobs"]) == before
    _error(httpx.get(f"{api}/runs/nope"), 404)
    _error(httpx.get(f"{api}/registry/models/nope"), 404)
