"""The ``Pipeline`` and ``Trigger`` kinds of project files on real services: validate reports a
pipeline's problems with its file, plan/apply create them, a second plan is empty, an edit of a
step plans an update that becomes the pipeline's next version, and export round-trips."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth.automation.project import engine
from plinth.automation.project.kinds import ProjectContext, kind_handler
from plinth.config import load_settings
from plinth.services import Services, build_services

FILES = {
    "pipelines.yaml": """\
apiVersion: plinth/v1
kind: Pipeline
metadata: {name: retrain}
spec:
  description: retrain on new data
  params: {dataset: acme-faq@1}
  steps:
    - {name: prepare, action: set, spec: {ref: "${params.dataset}"}}
    - {name: gate, action: check, spec: {that: "${steps.prepare.outputs.ref}"}}
---
apiVersion: plinth/v1
kind: Trigger
metadata: {name: nightly}
spec:
  pipeline: retrain
  kind: schedule
  spec: {cron: "0 2 * * *"}
  cooldown_s: 3600
""",
}


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    s = build_services(load_settings(home=tmp_path / "home", jobs_local_worker=False, pipelines_interval_s=0))
    yield s
    s.close()


def _write(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        (root / rel).write_text(text, encoding="utf-8")
    return root


def test_pipeline_and_trigger_kinds_plan_apply_and_export(services: Services, tmp_path: Path) -> None:
    assert kind_handler("Pipeline") is not None and kind_handler("Trigger") is not None
    root = _write(tmp_path / "project", FILES)
    ctx = ProjectContext(services, base_dir=root, actor="test")
    first = engine.plan(ctx, engine.project_files(root))
    assert sorted((c.kind, c.name, c.action) for c in first.changes) == [
        ("Pipeline", "retrain", "create"),
        ("Trigger", "nightly", "create"),
    ]
    engine.apply(ctx, engine.project_files(root))
    assert services.pipelines is not None and services.triggers is not None
    assert services.pipelines.get("retrain").version == 1
    assert services.triggers.get("nightly").spec == {"cron": "0 2 * * *"}
    assert engine.plan(ctx, engine.project_files(root)).changes == []

    _write(root, {"pipelines.yaml": FILES["pipelines.yaml"].replace("acme-faq@1", "acme-faq@2")})
    edited = engine.plan(ctx, engine.project_files(root))
    assert [(c.kind, c.action) for c in edited.changes] == [("Pipeline", "update")]
    engine.apply(ctx, engine.project_files(root))
    assert services.pipelines.get("retrain").version == 2

    out = tmp_path / "exported"
    engine.write_files(out, engine.export(ProjectContext(services, actor="test")))
    assert engine.plan(ProjectContext(services, base_dir=out, actor="test"), engine.project_files(out)).changes == []


def test_a_bad_pipeline_file_lists_its_problems(services: Services, tmp_path: Path) -> None:
    bad = FILES["pipelines.yaml"].replace("action: check", "action: nope").replace("pipeline: retrain", "pipeline: ghost")
    root = _write(tmp_path / "bad", {"pipelines.yaml": bad})
    with pytest.raises(engine.ProjectInvalid) as e:
        engine.validate(ProjectContext(services, base_dir=root, actor="test"), engine.project_files(root))
    text = str(e.value.details)
    assert "unknown action 'nope'" in text and "ghost" in text
