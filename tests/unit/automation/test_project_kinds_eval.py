"""Evaluation project files (ADR 0100) on real services (a temp PLINTH_HOME, the SQLite store,
the real job service and dataset store, the embedded model registered): validation with file
and line, apply submits one ``eval`` job per spec digest (a second apply submits nothing), a
changed spec or a new dataset version is a new job, a failed job is planned again, export ->
plan shows no changes, prune cancels and deletes the labelled jobs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth.automation.project import engine
from plinth.automation.project.kinds import ProjectContext
from plinth.automation.project.kinds_eval import DIGEST_LABEL, LABEL
from plinth.cli.common import ensure_embedded
from plinth.config import load_settings
from plinth.domain.projects import Project, StoreScope, scope
from plinth.services import Services, build_services

MODEL = "smollm2-135m-instruct"
FAQ = "".join(
    json.dumps({"messages": [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": f"A{i}."}]}) + "\n" for i in range(10)
)
EVAL = f"""\
apiVersion: plinth/v1
kind: Dataset
metadata: {{name: faq}}
spec: {{file: faq.jsonl}}
---
apiVersion: plinth/v1
kind: Evaluation
metadata: {{name: base-on-faq}}
spec:
  model: {MODEL}
  dataset: faq
  max_samples: 5
  max_tokens: 16
"""


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    s = build_services(load_settings(home=tmp_path_factory.mktemp("eval-home"), threads=1, jobs_local_worker=False))
    ensure_embedded(s)
    yield s
    s.close()


@pytest.fixture
def project(services: Services, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "e-" + request.node.name.replace("_", "-")[5:40].strip("-")
    services.store.create_project(Project(name=name))
    with scope(StoreScope(project=name)):
        yield name


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def eval_jobs(services: Services) -> list[object]:
    return [j for j in services.jobs.list(kind="eval") if LABEL in j.labels]


def test_an_evaluation_is_submitted_once_per_spec_digest(services: Services, project: str, tmp_path: Path) -> None:
    root = write(tmp_path / "src", {"faq.jsonl": FAQ, "eval.yaml": EVAL})
    ctx = ProjectContext(services, base_dir=root, actor="test")
    assert [(c.action, c.kind, c.name) for c in engine.plan(ctx, engine.project_files(root)).changes] == [
        ("create", "Dataset", "faq"),
        ("create", "Evaluation", "base-on-faq"),
    ]
    engine.apply(ctx, engine.project_files(root))
    (job,) = services.jobs.list(kind="eval", labels={LABEL: "base-on-faq"})
    assert job.spec["dataset"] == "faq@1" and job.spec["max_samples"] == 5 and job.labels[DIGEST_LABEL].startswith("sha256:")
    assert engine.plan(ctx, engine.project_files(root)).changes == []
    assert engine.apply(ctx, engine.project_files(root)).changes == []
    assert len(eval_jobs(services)) == 1  # a second apply submits nothing

    # a new dataset version alone does not re-run it (unpinned: the version at the first apply)
    write(root, {"faq.jsonl": FAQ + FAQ.replace("Q", "R")})
    assert [(c.kind, c.action) for c in engine.plan(ctx, engine.project_files(root)).changes] == [("Dataset", "update")]
    # pinning the new version in the same commit is a changed spec: a new job
    write(root, {"eval.yaml": EVAL.replace("dataset: faq", "dataset: faq@2")})
    p = engine.plan(ctx, engine.project_files(root))
    assert [(c.kind, c.action) for c in p.changes] == [("Dataset", "update"), ("Evaluation", "update")]
    engine.apply(ctx, engine.project_files(root))
    latest = max(eval_jobs(services), key=lambda j: j.created_at)  # type: ignore[attr-defined]
    assert latest.spec["dataset"] == "faq@2" and len(eval_jobs(services)) == 2  # type: ignore[attr-defined]
    assert engine.plan(ctx, engine.project_files(root)).changes == []

    # a cancelled (or failed) evaluation is planned again
    services.jobs.cancel(latest.id)  # type: ignore[attr-defined]
    again = engine.plan(ctx, engine.project_files(root))
    assert [(c.action, c.kind) for c in again.changes] == [("update", "Evaluation")]  # back to the faq@1 job's spec
    assert again.changes[0].diff == [{"path": "dataset", "before": "faq", "after": "faq@2"}]
    engine.apply(ctx, engine.project_files(root))
    assert engine.plan(ctx, engine.project_files(root)).changes == []

    out = tmp_path / "exported"
    engine.write_files(out, engine.export(ProjectContext(services)))
    assert (out / "resources" / "evaluation" / "base-on-faq.yaml").is_file()
    exported = engine.plan(ProjectContext(services, base_dir=out, actor="test"), engine.project_files(out))
    assert exported.changes == [], [c.as_dict() for c in exported.changes]

    write(root, {"eval.yaml": (root / "eval.yaml").read_text().split("---")[0]})
    pruned = engine.plan(ctx, engine.project_files(root), prune=True)
    assert [(c.action, c.kind, c.name) for c in pruned.changes] == [("delete", "Evaluation", "base-on-faq")]
    engine.apply(ctx, engine.project_files(root), prune=True)
    assert eval_jobs(services) == []


def test_bad_evaluations_are_reported_with_file_and_line(services: Services, project: str, tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "bad.yaml": """\
apiVersion: plinth/v1
kind: Evaluation
metadata: {name: e1}
spec:
  model: no-such-model
  dataset: no-such-dataset
  split: test
---
apiVersion: plinth/v1
kind: Evaluation
metadata: {name: e2}
spec:
  model: smollm2-135m-instruct
  dataset: no-such-dataset
  metrics: [bleu]
---
apiVersion: plinth/v1
kind: Evaluation
metadata: {name: e3}
spec:
  model: no-such-model
  dataset: no-such-dataset
""",
        },
    )
    with pytest.raises(engine.ProjectInvalid) as e:
        engine.validate(ProjectContext(services, base_dir=root), engine.project_files(root))
    found = {(p.file, p.line): p.message for p in e.value.problems}
    assert "split" in found[("bad.yaml", 7)]
    assert "metrics" in found[("bad.yaml", 15)]
    assert "no-such-model" in found[("bad.yaml", 21)] and "no-such-dataset" in found[("bad.yaml", 22)]
    assert eval_jobs(services) == []


TUNE = f"""\
apiVersion: plinth/v1
kind: Dataset
metadata: {{name: faq}}
spec: {{file: faq.jsonl}}
---
apiVersion: plinth/v1
kind: TuningSpec
metadata: {{name: faq-lora}}
spec:
  base_model: {MODEL}
  dataset: faq
  method: full
  max_steps: 2
"""


def test_a_tuning_spec_is_one_tune_job_per_spec_digest(services: Services, project: str, tmp_path: Path) -> None:
    root = write(tmp_path / "src", {"faq.jsonl": FAQ, "tune.yaml": TUNE})
    ctx = ProjectContext(services, base_dir=root, actor="test")
    p = engine.plan(ctx, engine.project_files(root))
    assert [(c.action, c.kind, c.name) for c in p.changes] == [("create", "Dataset", "faq"), ("create", "TuningSpec", "faq-lora")]
    after = {d["path"]: d["after"] for d in p.changes[1].diff}
    assert after["learning_rate"] == 2e-5 and after["name"] == "faq"  # the tune kind's defaults for method full, shown in the plan
    engine.apply(ctx, engine.project_files(root))
    (job,) = services.jobs.list(kind="tune", labels={"plinth.tuning-spec": "faq-lora"})
    assert job.spec["dataset"] == "faq@1" and job.spec["method"] == "full" and job.spec["learning_rate"] == 2e-5
    assert engine.plan(ctx, engine.project_files(root)).changes == []
    assert engine.apply(ctx, engine.project_files(root)).changes == []
    write(root, {"tune.yaml": TUNE.replace("max_steps: 2", "max_steps: 3")})
    p2 = engine.plan(ctx, engine.project_files(root))
    assert [(c.kind, c.diff) for c in p2.changes] == [("TuningSpec", [{"path": "max_steps", "before": 2, "after": 3}])]
    engine.apply(ctx, engine.project_files(root))
    assert sorted(j.spec["max_steps"] for j in services.jobs.list(kind="tune")) == [2, 3]
    out = tmp_path / "exported"
    engine.write_files(out, engine.export(ProjectContext(services)))
    exported = engine.plan(ProjectContext(services, base_dir=out, actor="test"), engine.project_files(out))
    assert exported.changes == [], [c.as_dict() for c in exported.changes]
    for j in services.jobs.list(kind="tune"):
        services.jobs.cancel(j.id)
