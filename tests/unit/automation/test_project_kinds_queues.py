"""Queue and PriorityClass project files (ADR 0100) on real services (a temp PLINTH_HOME, the
SQLite store, the real job service): validation with file and line, plan/apply idempotence, a
field-level update, export -> plan shows no changes, and the server-admin rule: a caller that
is not a server admin sees the plan but its apply is a 403 naming the kind, with nothing
changed; outside a request (the CLI) the caller is the local admin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth.auth.context import CallInfo, current_call
from plinth.automation.project import engine
from plinth.automation.project.kinds import ProjectContext
from plinth.config import load_settings
from plinth.domain.auth import ApiKey, Principal, Scope
from plinth.domain.jobs import Resources
from plinth.domain.projects import Project, StoreScope, scope
from plinth.errors import ErrorCode, PlinthError
from plinth.services import Services, build_services

FILES = {
    "jobs.yaml": """\
apiVersion: plinth/v1
kind: Queue
metadata: {name: tuning}
spec:
  quota: {cpu: 1, memory: 1GiB}
  preemption: never
  description: fine-tuning runs
---
apiVersion: plinth/v1
kind: PriorityClass
metadata: {name: urgent}
spec: {value: 500, description: on-call fixes}
""",
}


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    s = build_services(load_settings(home=tmp_path_factory.mktemp("queues-home"), threads=1, jobs_local_worker=False))
    yield s
    s.close()


@pytest.fixture
def project(services: Services, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "q-" + request.node.name.replace("_", "-")[5:40].strip("-")
    services.store.create_project(Project(name=name))
    with scope(StoreScope(project=name)):
        yield name


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def ctx_for(services: Services, root: Path) -> ProjectContext:
    return ProjectContext(services, base_dir=root, actor="test")


def test_queue_and_priority_class_plan_apply_update_and_export(services: Services, project: str, tmp_path: Path) -> None:
    root = write(tmp_path / "src", FILES)
    ctx = ctx_for(services, root)
    assert [(c.action, c.kind, c.name) for c in engine.plan(ctx, engine.project_files(root)).changes] == [
        ("create", "PriorityClass", "urgent"),
        ("create", "Queue", "tuning"),
    ]
    engine.apply(ctx, engine.project_files(root))  # outside a request: the local admin
    q = services.jobs.get_queue("tuning")
    assert q.quota.cpu == 1 and q.quota.memory == 1 << 30 and q.preemption.value == "never"
    assert {p.name: p.value for p in services.jobs.list_priority_classes()}["urgent"] == 500
    assert engine.plan(ctx, engine.project_files(root)).changes == []
    assert engine.apply(ctx, engine.project_files(root)).changes == []

    write(root, {"jobs.yaml": FILES["jobs.yaml"].replace("memory: 1GiB", "memory: 2GiB").replace("value: 500", "value: 700")})
    p = engine.plan(ctx, engine.project_files(root))
    assert {(c.kind, c.name): c.diff for c in p.changes} == {
        ("PriorityClass", "urgent"): [{"path": "value", "before": 500, "after": 700}],
        ("Queue", "tuning"): [{"path": "quota.memory", "before": 1 << 30, "after": 2 << 30}],
    }
    engine.apply(ctx, engine.project_files(root))
    assert services.jobs.get_queue("tuning").quota.memory == 2 << 30
    assert {p.name: p.value for p in services.jobs.list_priority_classes()}["urgent"] == 700

    out = tmp_path / "exported"
    engine.write_files(out, engine.export(ProjectContext(services)))
    assert (out / "resources" / "queue" / "tuning.yaml").is_file() and (out / "resources" / "priorityclass" / "urgent.yaml").is_file()
    exported = engine.plan(ctx_for(services, out), engine.project_files(out))
    assert exported.changes == [], [c.as_dict() for c in exported.changes]
    # prune deletes what this project's apply made and the folder no longer has
    write(root, {"jobs.yaml": (root / "jobs.yaml").read_text().split("---")[0]})
    pruned = engine.plan(ctx, engine.project_files(root), prune=True)
    assert [(c.action, c.kind, c.name) for c in pruned.changes] == [("delete", "PriorityClass", "urgent")]
    engine.apply(ctx, engine.project_files(root), prune=True)
    assert "urgent" not in {p.name for p in services.jobs.list_priority_classes()}
    services.jobs.delete_queue("tuning")


def test_a_caller_who_is_not_a_server_admin_sees_the_plan_but_cannot_apply(services: Services, project: str, tmp_path: Path) -> None:
    root = write(tmp_path, FILES)
    ctx = ctx_for(services, root)
    services.store.create_project(Project(name=project + "-x"))
    services.jobs.create_queue("elsewhere", Resources(cpu=1, memory=1 << 30), project=project + "-x")
    member = Principal(actor="key:member", key=ApiKey(id="k1", name="member", scopes=frozenset({Scope.MANAGE})), project=project)
    token = current_call.set(CallInfo(principal=member))
    try:
        assert [c.kind for c in engine.plan(ctx, engine.project_files(root)).changes] == ["PriorityClass", "Queue"]
        with pytest.raises(PlinthError) as e:
            engine.apply(ctx, engine.project_files(root))
        assert e.value.code == ErrorCode.PERMISSION_DENIED and "only a server admin may apply a PriorityClass" in e.value.message
        assert engine.export(ProjectContext(services)) == {}  # server-wide settings are not the project's to export
        # a queue dedicated to another project reads as absent (as GET /queues/{name} is a 404)
        write(
            root, {"other.yaml": "apiVersion: plinth/v1\nkind: Queue\nmetadata: {name: elsewhere}\nspec: {quota: {cpu: 1, memory: 1GiB}}\n"}
        )
        changes = engine.plan(ctx, engine.project_files(root)).changes
        assert [(c.action, c.name) for c in changes if c.name == "elsewhere"] == [("create", "elsewhere")]
    finally:
        current_call.reset(token)
    (root / "other.yaml").unlink()
    assert "resources/queue/elsewhere.yaml" not in engine.export(ProjectContext(services))  # not this project's, even for an admin
    assert "urgent" not in {p.name for p in services.jobs.list_priority_classes()}
    assert "tuning" not in {q.name for q in services.jobs.list_queues()}
    admin = Principal(actor="key:admin", key=ApiKey(id="k2", name="admin", scopes=frozenset({Scope.ADMIN})), project=project)
    token = current_call.set(CallInfo(principal=admin))
    try:
        engine.apply(ctx, engine.project_files(root))
    finally:
        current_call.reset(token)
    assert services.jobs.get_queue("tuning").description == "fine-tuning runs"


def test_bad_queue_documents_are_reported_with_file_and_line(services: Services, project: str, tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "bad.yaml": """\
apiVersion: plinth/v1
kind: Queue
metadata: {name: huge}
spec:
  quota: {cpu: 1000000, memory: 1GiB}
---
apiVersion: plinth/v1
kind: Queue
metadata: {name: odd}
spec:
  quota: {cpu: 1, memory: lots}
  project: nowhere
---
apiVersion: plinth/v1
kind: PriorityClass
metadata: {name: normal}
spec: {value: 2000000000}
""",
        },
    )
    with pytest.raises(engine.ProjectInvalid) as e:
        engine.validate(ctx_for(services, root), engine.project_files(root))
    found = {(p.file, p.line): p.message for p in e.value.problems}
    assert "larger than the machines offer" in found[("bad.yaml", 5)]
    assert "lots" in found[("bad.yaml", 11)]
    assert "2000000000" in found[("bad.yaml", 17)] or "less than or equal" in found[("bad.yaml", 17)]
