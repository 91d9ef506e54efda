"""Drift runs through the real services (ADR 0091, 0092): the store area on SQLite and
Postgres, runs of a deployment's logged prompts (real MiniLM vectors, written as the request
log's writer writes them) against a dataset version, the lineage's training dataset, an
earlier window and with the knowledge base's answerability; the anomaly scores they store;
the gauges; the schedule (injected clock) and the ``drift`` job kind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from plinth.config import load_settings
from plinth.domain.drift import DriftRun
from plinth.domain.projects import project_scope, system_scope
from plinth.domain.requests import RequestLogEntry, RequestQuery, TextMode
from plinth.errors import ErrorCode, PlinthError
from plinth.oversight.drift import EXECUTORS, DriftScheduler, run_job, validate_job
from plinth.services import Services, build_services
from plinth.store.sql import SqlStore
from tests.support.adapters import LLAMA_ATTN, random_peft_llama_tensors, write_peft_dir
from tests.unit.oversight.test_drift_methods import ACME, _users, drift_data

BASE = "smollm2-135m-instruct"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _run(deployment: str, score: float, at: datetime, **kw: Any) -> DriftRun:
    return DriftRun(
        deployment=deployment,
        window_start=at - timedelta(hours=1),
        window_end=at,
        n_recent=100,
        n_reference=300,
        reference={"kind": "dataset", "dataset": "acme@1"},
        results={"methods": {"embedding": {"p_value": 0.5}}},
        drifted=score >= 1,
        score=score,
        at=at,
        **kw,
    )


# -- the store -------------------------------------------------------------------------------------------
def test_runs_round_trip_as_a_time_series_per_project(store: SqlStore) -> None:
    with project_scope("claims"):
        a = store.add_drift_run(_run("acme", 0.2, NOW - timedelta(hours=2)))
        b = store.add_drift_run(_run("acme", 1.5, NOW - timedelta(hours=1), revision=2, adapter="acme-lora"))
        other = store.add_drift_run(_run("other", 0.1, NOW))
    with project_scope("marketing"):
        m = store.add_drift_run(_run("acme", 9.0, NOW))
        assert [r.id for r in store.list_drift_runs("acme")] == [m.id]
        with pytest.raises(PlinthError) as e:
            store.get_drift_run(a.id or 0)
        assert e.value.code is ErrorCode.NOT_FOUND
    with project_scope("claims"):
        got = store.get_drift_run(b.id or 0)
        assert got == b and got.project == "claims" and got.at == NOW - timedelta(hours=1) and got.adapter == "acme-lora"
        assert got.results == {"methods": {"embedding": {"p_value": 0.5}}} and got.drifted and got.score == 1.5
        assert [r.id for r in store.list_drift_runs("acme")] == [b.id, a.id]  # newest first
        assert [r.id for r in store.list_drift_runs("acme", since=NOW - timedelta(minutes=90))] == [b.id]
        assert [r.id for r in store.list_drift_runs("acme", until=NOW - timedelta(minutes=90))] == [a.id]
        assert [r.id for r in store.list_drift_runs("acme", revision=2)] == [b.id]
        assert len(store.list_drift_runs()) == 3 and len(store.list_drift_runs(limit=1)) == 1
        # the newest whole-deployment run of each deployment (the gauges' source)
        assert sorted((r.deployment, r.id) for r in store.latest_drift_runs()) == [("acme", a.id), ("other", other.id)]
        # the alerts' reader sees the same series
        assert [p.score for p in store.drift_points("acme")] == [0.2, 1.5]
        for bad in (0, 2**70):
            with pytest.raises(PlinthError):
                store.get_drift_run(bad)
        with pytest.raises(PlinthError) as e:
            store.add_drift_run(_nan_run())  # results that are not JSON
        assert e.value.code is ErrorCode.INVALID_REQUEST
        assert store.delete_drift_runs("acme") == 2 and store.list_drift_runs("acme") == []
    with project_scope("marketing"):
        assert len(store.list_drift_runs("acme")) == 1
    with system_scope():  # every project's
        assert sorted((r.project, r.deployment, r.id) for r in store.latest_drift_runs()) == [
            ("claims", "other", other.id),
            ("marketing", "acme", m.id),
        ]


def _nan_run() -> DriftRun:
    r = _run("acme", 0.1, NOW)
    return DriftRun(**{**r.__dict__, "results": {"score": float("nan")}})


# -- the service -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    home = tmp_path_factory.mktemp("drift-home")
    s = build_services(load_settings(home=home, threads=1))
    s.catalog.ensure_embedded()
    assert s.drift is not None
    s.drift.clock = lambda: NOW
    yield s
    s.close()


@pytest.fixture(scope="module")
def acme(services: Services, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A dataset of the FAQ, a knowledge base of its answers, a registered adapter trained
    (says its lineage) on the dataset, and deployments of the base and of the adapter."""
    tmp = tmp_path_factory.mktemp("acme")
    version, _new = services.datasets.add(ACME / "faq.jsonl", "acme-faq-data")
    answers = [json.loads(x)["messages"][-1]["content"] for x in (ACME / "faq.jsonl").read_text().splitlines() if x.strip()]
    doc = tmp / "benefits.md"
    doc.write_text("\n\n".join(f"## Answer {i}\n\n{a}" for i, a in enumerate(answers)), encoding="utf-8")
    assert services.knowledge is not None and services.deployments is not None and services.registry is not None
    services.knowledge.create("acme-kb")
    services.knowledge.add_paths("acme-kb", [doc])
    tensors = random_peft_llama_tensors(
        n_layers=30, hidden=576, n_head=9, n_head_kv=3, ffn=1536, r=4, modules=LLAMA_ATTN, seed=1, scale=0.3
    )
    peft = write_peft_dir(tmp / "peft", tensors, r=4, alpha=8.0, target_modules=list(LLAMA_ATTN))
    mv = services.registry.register_adapter("acme-faq", base_model=BASE, adapter_dir=peft, dataset=version.ref)
    d = services.deployments
    d.create("acme-assistant", [{"model": BASE, "knowledge_base": "acme-kb"}], actor="test")
    d.create("acme-tuned", [{"model": mv.ref}], actor="test")
    d.create("quiet-one", [{"model": BASE}], actor="test")
    return {"dataset": version.ref, "model_version": mv.ref}


def _log(services: Services, deployment: str, texts: list[str], start: datetime, tag: str, *, slow: int | None = None) -> None:
    vecs = services.drift.embedder().embed(texts)  # type: ignore[union-attr]
    entries = [
        RequestLogEntry(
            response_id=f"chatcmpl-{abs(hash((tag, i))):032x}"[:41],
            kind="chat",
            model=deployment,
            served_model=BASE,
            outcome="ok",
            at=start + timedelta(seconds=i),
            deployment=deployment,
            revision=1,
            text_mode=TextMode.REDACTED,
            prompt_text=t,
            response_text="ok",
            embedding=v.astype("float32").tobytes(),
            completion_tokens=41,
            ttft_s=0.2,
            latency_s=0.2 + (80.0 if i == slow else 1.0 + 0.01 * (i % 7)),  # about 40 tokens/s; one at 0.5
            project="default",
        )
        for i, (t, v) in enumerate(zip(texts, vecs, strict=True))
    ]
    with system_scope():
        services.store.add_request_logs(entries)


@pytest.fixture(scope="module")
def traffic(services: Services, acme: dict[str, Any]) -> dict[str, list[str]]:
    dd = drift_data()
    held = _users(ACME / "faq-eval.jsonl")
    spanish = dd.language("dev")
    # ten days ago: in-distribution questions; in the last hour: the same kind, then (on the
    # tuned deployment) questions in other languages
    _log(services, "acme-assistant", held, NOW - timedelta(days=10), "old")
    _log(services, "acme-assistant", held, NOW - timedelta(minutes=50), "new", slow=3)
    _log(services, "acme-tuned", spanish + dd.language("heldout"), NOW - timedelta(minutes=50), "es")
    _log(services, "quiet-one", held[:10], NOW - timedelta(minutes=50), "few")
    return {"held": held, "spanish": spanish}


def test_in_distribution_traffic_is_quiet_against_the_dataset_with_the_knowledge_base(
    services: Services, acme: dict[str, Any], traffic: dict[str, list[str]]
) -> None:
    drift = services.drift
    assert drift is not None
    with project_scope("default"):
        run = drift.run("acme-assistant", window="1h", reference=f"dataset:{acme['dataset']}")
    assert not run.drifted and run.score < 1.0, run.results["methods"]
    assert run.id is not None and run.n_recent == len(traffic["held"]) and run.n_reference == 303 - 30  # the train split
    assert run.reference == {"kind": "dataset", "dataset": acme["dataset"], "split": "train", "items": run.n_reference}
    assert set(run.results["methods"]) == {"embedding", "length", "language", "oov", "unanswerable"}
    assert run.results["knowledge_base"] == "acme-kb"
    assert run.window_start >= NOW - timedelta(hours=1) and run.window_end <= NOW
    m = services.metrics
    assert m.registry.get_sample_value("plinth_drift_score", {"deployment": "acme-assistant"}) == run.score
    assert m.registry.get_sample_value("plinth_drift_detected", {"deployment": "acme-assistant"}) == 0.0
    p = m.registry.get_sample_value("plinth_drift_p_value", {"deployment": "acme-assistant", "test": "embedding"})
    assert p == run.results["methods"]["embedding"]["p_value"]
    # the window's prompts were scored; few in-distribution ones are flagged
    assert run.results["anomalies"]["scored"] == len(traffic["held"])
    with project_scope("default"):
        flagged = services.store.list_request_logs(RequestQuery(deployment="acme-assistant", flagged_above=0.9), limit=1000)
        assert len(flagged) <= 0.1 * len(traffic["held"])
        # the answer that crawled is among them, by its token rate
        crawled = next(e for e in flagged if e.latency_s > 50)
        assert crawled.anomaly is not None and crawled.anomaly["token_rate_p"] < 1e-6 and crawled.anomaly["tokens_per_s"] == 0.5
        # and the earlier window as the reference: the same kind of questions, quiet
        again = drift.run("acme-assistant", window="1h", reference="window:15d/5d", score_anomalies=False)
    assert not again.drifted and again.reference["kind"] == "window" and again.n_reference == len(traffic["held"])


def test_another_language_fires_against_the_lineage_dataset_and_is_flagged(
    services: Services, acme: dict[str, Any], traffic: dict[str, list[str]]
) -> None:
    drift = services.drift
    assert drift is not None
    with project_scope("default"):
        assert drift.lineage_dataset("acme-tuned") == (acme["model_version"], acme["dataset"])
        run = drift.run("acme-tuned", window="1h")  # the default reference: the lineage's dataset
        series = drift.series("acme-tuned")
        top = drift.anomalies("acme-tuned", above=0.9, limit=5)
    assert run.drifted and run.score > 1.0
    assert run.reference["kind"] == "lineage" and run.reference["model_version"] == acme["model_version"]
    assert run.results["methods"]["language"]["drifted"] and run.results["methods"]["embedding"]["drifted"]
    assert "unanswerable" not in run.results["methods"]  # no knowledge base behind this deployment
    assert run.results["anomalies"]["flagged"] >= 0.8 * run.n_recent
    assert [r.id for r in series] == [run.id] and series[0].public_dict(full=False)["p_values"]["language"] < 0.01
    assert len(top) == 5 and all((s.anomaly_score or 0) > 0.9 for s in top)
    assert services.metrics.registry.get_sample_value("plinth_drift_detected", {"deployment": "acme-tuned"}) == 1.0


def test_clear_refusals(services: Services, acme: dict[str, Any], traffic: dict[str, list[str]]) -> None:
    drift = services.drift
    assert drift is not None
    with project_scope("default"):
        cases: list[tuple[dict[str, Any], str, str]] = [
            ({"deployment": "quiet-one", "window": "1h", "reference": f"dataset:{acme['dataset']}"}, "window", "at least 30"),
            ({"deployment": "acme-assistant", "window": "1h"}, "reference", "lineage names no training dataset"),
            ({"deployment": "acme-assistant", "window": "soon"}, "window", "invalid duration"),
            ({"deployment": "acme-assistant", "reference": "window:1d/2d"}, "reference", "START must be before END"),
            ({"deployment": "acme-assistant", "reference": "dataset:nope"}, "reference", "NAME@VERSION"),
            ({"deployment": "acme-assistant", "window": "1h", "reference": "kb:acme-kb"}, "reference", "passages, not questions"),
        ]
        for kw, param, text in cases:
            name = kw.pop("deployment")
            with pytest.raises(PlinthError) as e:
                drift.run(name, **kw)
            assert e.value.param == param and text in e.value.message, (kw, e.value.message)
        with pytest.raises(PlinthError) as e:
            drift.run("no-such-deployment")
        assert e.value.code is ErrorCode.NOT_FOUND
    with project_scope("marketing"):  # another project does not see the deployment
        with pytest.raises(PlinthError) as e:
            drift.series("acme-assistant")
        assert e.value.code is ErrorCode.NOT_FOUND


def test_the_schedule_runs_what_is_due(services: Services, acme: dict[str, Any], traffic: dict[str, list[str]]) -> None:
    assert services.drift is not None
    sched = DriftScheduler(services.drift, {"acme-tuned": 3600, "default/quiet-one": 600, "off": 0}, window="1h")
    assert set(sched.schedule) == {"acme-tuned", "default/quiet-one"}  # 0: off
    first = sched.tick(NOW)
    assert first["acme-tuned"] == "drifted" and "at least 30" in first["default/quiet-one"]
    assert sched.tick(NOW + timedelta(seconds=60)) == {}
    assert set(sched.tick(NOW + timedelta(seconds=601))) == {"default/quiet-one"}
    assert set(sched.tick(NOW + timedelta(seconds=3601))) == {"acme-tuned", "default/quiet-one"}
    assert services.settings.drift_schedule == {}  # off unless configured
    # each tick also sets the gauges from the newest stored runs, e.g. after a restart
    services.metrics.drift_score.clear()
    assert services.metrics.registry.get_sample_value("plinth_drift_score", {"deployment": "acme-tuned"}) is None
    DriftScheduler(services.drift, {}).tick(NOW)
    with project_scope("default"):
        newest = next(r for r in services.store.list_drift_runs("acme-tuned", limit=10) if r.revision is None)
    assert services.metrics.registry.get_sample_value("plinth_drift_score", {"deployment": "acme-tuned"}) == newest.score


@dataclass
class _Ctx:
    """What a job worker hands ``run``: the validated spec, the services, a log."""

    spec: dict[str, Any]
    services: Services
    lines: list[str] = field(default_factory=list)

    def log(self, line: str) -> None:
        self.lines.append(line)


def test_the_drift_job_kind(services: Services, acme: dict[str, Any], traffic: dict[str, list[str]]) -> None:
    (entry,) = EXECUTORS
    assert entry.kind == "drift" and entry.run == "plinth.oversight.drift:run_job"
    with project_scope("default"):
        spec = validate_job({"deployment": "acme-tuned", "window": "1h"}, services)
        assert spec == {"deployment": "acme-tuned", "window": "1h", "reference": "lineage", "revision": None, "adapter": None}
        for bad, param in (
            ({"window": "1h"}, "deployment"),
            ({"deployment": "acme-tuned", "x": 1}, "spec"),
            ({"deployment": "acme-tuned", "revision": 0}, "revision"),
        ):
            with pytest.raises(PlinthError) as e:
                validate_job(bad, services)
            assert e.value.param == param
        with pytest.raises(PlinthError) as e:
            validate_job({"deployment": "nope"}, services)
        assert e.value.code is ErrorCode.NOT_FOUND
        ctx = _Ctx(spec, services)
        out = run_job(ctx)
    assert out["drifted"] is True and out["deployment"] == "acme-tuned" and "results" not in out
    assert any("drifted=True" in line for line in ctx.lines)
