"""Project files (ADR 0100) on real services (a temp PLINTH_HOME, the SQLite store, the
embedded model and the MiniLM embedder): validation errors with file and line, all at once;
plan/apply idempotence and field-level updates; the saved-plan check; export -> plan shows no
changes; --prune deletes only what an apply made; every shipped example validates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth.automation.project import engine
from plinth.automation.project.kinds import ProjectContext, kinds
from plinth.cli.common import ensure_embedded
from plinth.config import load_settings
from plinth.domain.projects import Project, StoreScope, scope
from plinth.errors import ErrorCode, PlinthError
from plinth.services import Services, build_services

REPO = Path(__file__).resolve().parents[3]
MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    home = tmp_path_factory.mktemp("project-home")
    s = build_services(load_settings(home=home, threads=1, jobs_local_worker=False))
    ensure_embedded(s)
    yield s
    s.close()


@pytest.fixture
def project(services: Services, request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test in a project of its own (ADR 0083): its plan sees only its resources."""
    name = "t-" + request.node.name.replace("_", "-")[5:40].strip("-")
    services.store.create_project(Project(name=name))
    with scope(StoreScope(project=name)):
        yield name


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return root


def chat(q: str, a: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})


FAQ = "\n".join(chat(f"Question {i}?", f"Answer {i}.") for i in range(12)) + "\n"

PROJECT = {
    "docs/gold.md": "# Gold plan\n\nThe Gold deductible is $500 per member.\n",
    "docs/bronze.md": "# Bronze plan\n\nThe Bronze deductible is $3,000 per member.\n",
    "faq.jsonl": FAQ,
    "data.yaml": """\
apiVersion: plinth/v1
kind: Dataset
metadata: {name: faq}
spec:
  file: faq.jsonl
  description: FAQ pairs
---
apiVersion: plinth/v1
kind: KnowledgeBase
metadata: {name: plans}
spec:
  description: plan documents
  sources: [docs]
""",
    "serving.yaml": f"""\
apiVersion: plinth/v1
kind: GuardrailPolicy
metadata: {{name: strict}}
spec:
  policy:
    description: secrets out
    rules:
      - {{detector: secrets, on: [input, output], action: redact}}
---
apiVersion: plinth/v1
kind: Deployment
metadata: {{name: assistant}}
spec:
  description: the assistant
  targets:
    - model: {MODEL}
      knowledge_base: plans
      guardrail_policy: strict
  window_s: 600
---
apiVersion: plinth/v1
kind: AlertRule
metadata: {{name: assistant-errors}}
spec:
  signal: error_rate
  deployment: assistant
  comparison: ">"
  threshold: 0.05
  window: 5m
  severity: critical
""",
}


def ctx_for(services: Services, root: Path) -> ProjectContext:
    return ProjectContext(services, base_dir=root, actor="test")


def test_every_problem_is_reported_at_once_with_its_file_and_line(services: Services, project: str, tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "a.yaml": """\
apiVersion: plinth/v2
kind: Dataset
metadata: {name: d1}
spec: {file: d1.jsonl}
---
apiVersion: plinth/v1
kind: Widget
metadata: {name: w}
spec: {}
""",
            "b.yaml": f"""\
apiVersion: plinth/v1
kind: Deployment
metadata:
  name: dep
spec:
  targets:
    - model: {MODEL}
      knowledge_base: nowhere
      colour: blue
---
apiVersion: plinth/v1
kind: Dataset
metadata: {{name: d2}}
spec:
  file: missing.jsonl
  validation_fraction: 0.9
""",
            "c.yml": "apiVersion: plinth/v1\nkind: [unclosed\n",
        },
    )
    with pytest.raises(engine.ProjectInvalid) as e:
        engine.validate(ctx_for(services, root), engine.project_files(root))
    found = {(p.file, p.line): p.message for p in e.value.problems}
    assert "plinth/v1" in found[("a.yaml", 1)]  # the apiVersion line
    assert "unknown kind 'Widget'" in found[("a.yaml", 7)]
    assert "colour" in found[("b.yaml", 9)]  # the unknown spec field, at its own line
    assert "missing.jsonl" in found[("b.yaml", 15)]
    syntax = [(line, m) for (f, line), m in found.items() if f == "c.yml"]
    assert len(syntax) == 1 and syntax[0][0] == 3 and "YAML syntax error" in syntax[0][1]  # where the parser stopped
    assert e.value.code == ErrorCode.INVALID_REQUEST and len(e.value.details["problems"]) == len(e.value.problems)
    # a reference is checked once the spec parses: fix the unknown field and it shows, at its line
    (root / "b.yaml").write_text((root / "b.yaml").read_text().replace("      colour: blue\n", ""))
    with pytest.raises(engine.ProjectInvalid) as e2:
        engine.validate(ctx_for(services, root), engine.project_files(root))
    msgs = {(p.file, p.line): p.message for p in e2.value.problems}
    assert "KnowledgeBase 'nowhere' is neither defined in the folder nor live" in msgs[("b.yaml", 8)]
    assert services.datasets.list() == []  # nothing was run


def test_plan_apply_is_idempotent_and_an_edit_plans_a_field_level_update(services: Services, project: str, tmp_path: Path) -> None:
    root = write(tmp_path, PROJECT)
    ctx = ctx_for(services, root)
    first = engine.plan(ctx, engine.project_files(root))
    assert [(c.action, c.kind, c.name) for c in first.changes] == [
        ("create", "Dataset", "faq"),
        ("create", "GuardrailPolicy", "strict"),
        ("create", "KnowledgeBase", "plans"),
        ("create", "Deployment", "assistant"),
        ("create", "AlertRule", "assistant-errors"),
    ]
    seen: list[tuple[str, str]] = []
    engine.apply(ctx, engine.project_files(root), progress=lambda c, stage: seen.append((c.name, stage)))
    assert seen[:2] == [("faq", "start"), ("faq", "done")] and len(seen) == 10
    assert services.deployments.get("assistant").window_s == 600
    assert services.knowledge.documents("plans")[1] == 1  # one version holding both documents
    assert engine.plan(ctx, engine.project_files(root)).changes == []
    again = engine.apply(ctx, engine.project_files(root))  # a second apply changes nothing
    assert again.changes == [] and services.knowledge.get("plans").current_version == 1
    # audit: each change carries the managed-by mark
    entries = services.audit.list(action="project.apply", limit=20)
    assert {(e.target_type, e.target) for e in entries} >= {("Deployment", "assistant"), ("KnowledgeBase", "plans")}

    write(root, {"docs/gold.md": "# Gold plan\n\nThe Gold deductible is $750 per member.\n"})
    text = (root / "serving.yaml").read_text().replace("window_s: 600", "window_s: 900")
    write(root, {"serving.yaml": text})
    p = engine.plan(ctx, engine.project_files(root))
    changes = {(c.kind, c.name): c.diff for c in p.changes}
    assert set(changes) == {("KnowledgeBase", "plans"), ("Deployment", "assistant")}
    assert changes[("Deployment", "assistant")] == [{"path": "window_s", "before": 600, "after": 900}]
    assert [d["path"] for d in changes[("KnowledgeBase", "plans")]] == ["documents.gold.md"]
    engine.apply(ctx, engine.project_files(root))
    assert services.deployments.get("assistant").window_s == 900
    assert services.knowledge.get("plans").current_version == 2
    assert engine.plan(ctx, engine.project_files(root)).changes == []


def test_a_saved_plan_is_refused_after_a_live_change(services: Services, project: str, tmp_path: Path) -> None:
    root = write(tmp_path, PROJECT)
    ctx = ctx_for(services, root)
    engine.apply(ctx, engine.project_files(root))
    write(root, {"serving.yaml": (root / "serving.yaml").read_text().replace("the assistant", "the member assistant")})
    saved = json.loads(json.dumps(engine.plan(ctx, engine.project_files(root)).as_dict()))
    assert saved["summary"] == {"create": 0, "update": 1, "delete": 0}
    services.deployments.configure("assistant", actor="someone", window_s=1200)  # a hand-made change since
    with pytest.raises(PlinthError) as e:
        engine.apply(ctx, engine.project_files(root), saved=saved)
    assert e.value.code == ErrorCode.CONFLICT and "live state changed" in e.value.message
    assert services.deployments.get("assistant").description == "the assistant"  # nothing applied
    fresh = json.loads(json.dumps(engine.plan(ctx, engine.project_files(root)).as_dict()))
    write(root, {"faq.jsonl": FAQ + chat("One more?", "Yes.") + "\n"})  # the files changed since
    with pytest.raises(PlinthError) as e2:
        engine.apply(ctx, engine.project_files(root), saved=fresh)
    assert e2.value.code == ErrorCode.CONFLICT and "files changed" in e2.value.message
    write(root, {"faq.jsonl": FAQ})
    applied = engine.apply(ctx, engine.project_files(root), saved=fresh)
    assert [c.name for c in applied.changes] == ["assistant"]
    assert services.deployments.get("assistant").description == "the member assistant"


def test_export_is_planned_as_no_changes(services: Services, project: str, tmp_path: Path) -> None:
    root = write(tmp_path / "src", PROJECT)
    engine.apply(ctx_for(services, root), engine.project_files(root))
    out = tmp_path / "exported"
    engine.write_files(out, engine.export(ProjectContext(services)))
    kinds_written = sorted(p.parent.name for p in (out / "resources").glob("*/*.yaml"))
    assert kinds_written == ["alertrule", "dataset", "deployment", "guardrailpolicy", "knowledgebase"]
    assert (out / "datasets" / "faq.jsonl").read_text() == FAQ
    p = engine.plan(ctx_for(services, out), engine.project_files(out))
    assert p.changes == [], [c.as_dict() for c in p.changes]
    with pytest.raises(PlinthError):
        engine.write_files(out, {"../outside.yaml": b"x"})


def test_prune_deletes_only_what_an_apply_made(services: Services, project: str, tmp_path: Path) -> None:
    root = write(tmp_path, PROJECT)
    ctx = ctx_for(services, root)
    engine.apply(ctx, engine.project_files(root))
    services.alerts.create({"name": "hand-made", "signal": "error_rate", "deployment": "assistant", "threshold": 0.5})
    text = (root / "serving.yaml").read_text()
    write(root, {"serving.yaml": text[: text.index("---\napiVersion: plinth/v1\nkind: AlertRule")]})
    assert engine.plan(ctx, engine.project_files(root)).changes == []  # without --prune nothing is deleted
    p = engine.plan(ctx, engine.project_files(root), prune=True)
    assert [(c.action, c.kind, c.name) for c in p.changes] == [("delete", "AlertRule", "assistant-errors")]
    engine.apply(ctx, engine.project_files(root), prune=True)
    assert {r.name for r in services.alerts.list()} == {"hand-made"}
    assert engine.plan(ctx, engine.project_files(root), prune=True).changes == []


def test_every_shipped_example_validates(services: Services, project: str) -> None:
    folders = sorted(p for p in (REPO / "examples").glob("**/project") if p.is_dir())
    assert folders, "no examples/**/project/ folder"
    for folder in folders:
        resources = engine.validate(ctx_for(services, folder), engine.project_files(folder))
        assert {r.kind for r in resources} >= {"KnowledgeBase", "Dataset", "GuardrailPolicy", "Deployment", "AlertRule"}, folder


def test_kinds_are_registered_in_apply_order() -> None:
    order = [h.kind for h in kinds()]
    assert order.index("KnowledgeBase") < order.index("Deployment") < order.index("AlertRule")
