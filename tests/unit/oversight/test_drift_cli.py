"""``plinth monitor drift`` and ``plinth monitor anomalies`` as a person runs them (in-process,
tests/support/cli.py) on a home whose request log holds real prompts and MiniLM vectors: a run
that fires (exit 3), the chart over time, the JSON form, the anomalous prompts, and errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plinth.config import load_settings
from plinth.domain.projects import system_scope
from plinth.domain.requests import RequestLogEntry, TextMode
from plinth.services import build_services
from tests.support.cli import plinth
from tests.unit.oversight.test_drift_methods import ACME, _users, drift_data

BASE = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("drift-cli")
    s = build_services(load_settings(home=home, threads=1))
    try:
        s.catalog.ensure_embedded()
        s.datasets.add(ACME / "faq.jsonl", "acme-faq-data")
        assert s.deployments is not None and s.drift is not None
        s.deployments.create("acme-assistant", [{"model": BASE}], actor="test")
        dd = drift_data()
        now = datetime.now(UTC)
        batches = [(_users(ACME / "faq-eval.jsonl"), now - timedelta(hours=3)), (dd.language("dev"), now - timedelta(minutes=30))]
        emb = s.drift.embedder()
        entries = []
        for b, (texts, start) in enumerate(batches):
            for i, (t, v) in enumerate(zip(texts, emb.embed(texts), strict=True)):
                entries.append(
                    RequestLogEntry(
                        response_id=f"chatcmpl-{b:016x}{i:016x}",
                        kind="chat",
                        model="acme-assistant",
                        served_model=BASE,
                        outcome="ok",
                        at=start + timedelta(seconds=i),
                        deployment="acme-assistant",
                        revision=1,
                        text_mode=TextMode.REDACTED,
                        prompt_text=t,
                        embedding=v.tobytes(),
                        project="default",
                    )
                )
        with system_scope():
            s.store.add_request_logs(entries)
    finally:
        s.close()
    return home


def test_runs_that_fire_exit_3_and_the_chart_over_time(home: Path) -> None:
    mixed = plinth(home, "monitor", "drift", "acme-assistant", "--run", "--window", "4h", "--reference", "dataset:acme-faq-data@1")
    # four hours back holds both batches: the Spanish half makes it drift
    assert mixed.returncode == 3, mixed.stdout + mixed.stderr
    r = plinth(home, "monitor", "drift", "acme-assistant", "--run", "--window", "1h", "--reference", "dataset:acme-faq-data@1")
    assert r.returncode == 3, r.stdout + r.stderr
    out = r.stdout
    assert "DRIFT" in out and "embedding" in out and "language" in out and "methods" in out
    assert "Bonferroni" in out and "more frequent now" in out and "recent prompts least like the reference" in out
    assert "2 runs" in out and any(ch in out for ch in "▁▂▃▄▅▆▇█")  # the sparkline of the series
    j = plinth(home, "monitor", "drift", "acme-assistant", "--json")
    assert j.returncode == 0, j.stderr
    body = json.loads(j.stdout)
    assert body["run"] is None and len(body["runs"]) == 2 and all(x["drifted"] for x in body["runs"])
    assert set(body["runs"][0]["p_values"]) == {"embedding", "length", "language", "oov"}


def test_anomalies_lists_the_flagged_prompts(home: Path) -> None:
    plinth(home, "monitor", "drift", "acme-assistant", "--run", "--window", "1h", "--reference", "dataset:acme-faq-data@1")
    r = plinth(home, "monitor", "anomalies", "acme-assistant", "--flagged", "-n", "5", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["anomalies"]
    assert len(rows) == 5 and all(x["score"] > 0.9 for x in rows)
    assert all(x["prompt"] in drift_data().language("dev") for x in rows)
    table = plinth(home, "monitor", "anomalies", "acme-assistant", "-n", "3")
    assert table.returncode == 0 and "anomalous prompts of acme-assistant" in table.stdout


def test_errors_are_one_clear_line(home: Path) -> None:
    r = plinth(home, "monitor", "drift", "acme-assistant", "--run", "--window", "1h")
    assert r.returncode != 0 and "lineage names no training dataset" in r.stderr and "Traceback" not in r.stderr
    r = plinth(home, "monitor", "drift", "no-such", "--run")
    assert r.returncode != 0 and "no-such" in r.stderr
    r = plinth(home, "monitor", "drift", "acme-assistant", "--run", "--window", "1m", "--reference", "dataset:acme-faq-data@1")
    assert r.returncode != 0 and "at least 30" in r.stderr
