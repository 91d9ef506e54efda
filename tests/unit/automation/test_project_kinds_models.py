"""ModelImport and Adapter project files (ADR 0100) on real services: a temp PLINTH_HOME, the
SQLite store, the real catalog importing the embedded model's GGUF and a llama.cpp LoRA made
for it. Validation with file and line, plan/apply idempotence, a changed file planned as an
update by digest, the refusal to replace a model a deployment serves, and export -> plan shows
no changes."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth.automation.project import engine
from plinth.automation.project.kinds import ProjectContext, kind_handler
from plinth.automation.project.kinds_models import content_digest
from plinth.cli.common import ensure_embedded
from plinth.config import load_settings
from plinth.domain.projects import Project, StoreScope, scope
from plinth.errors import ErrorCode, PlinthError
from plinth.formats import locate_embedded_gguf
from plinth.services import Services, build_services
from tests.support.adapters import write_random_gguf_lora

EMBEDDED = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    home = tmp_path_factory.mktemp("kinds-home")
    s = build_services(load_settings(home=home, threads=1, jobs_local_worker=False, outbound_allow=["127.0.0.1"]))
    ensure_embedded(s)
    yield s
    s.close()


@pytest.fixture
def project(services: Services, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "m-" + request.node.name.replace("_", "-")[5:40].strip("-")
    services.store.create_project(Project(name=name))
    with scope(StoreScope(project=name)):
        yield name


@pytest.fixture(scope="module")
def loras(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("loras")
    base = locate_embedded_gguf()
    return (
        write_random_gguf_lora(d / "a.gguf", base_gguf=base, seed=1, layers=[0, 1]),
        write_random_gguf_lora(d / "b.gguf", base_gguf=base, seed=2, layers=[0, 1]),
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return root


def ctx_for(services: Services, root: Path) -> ProjectContext:
    return ProjectContext(services, base_dir=root, actor="test")


def models_folder(root: Path, lora: Path, port: int) -> Path:
    (root / "weights").mkdir(parents=True, exist_ok=True)
    os.symlink(locate_embedded_gguf(), root / "weights" / "base.gguf")
    os.symlink(lora, root / "weights" / "tone.gguf")
    return write(
        root,
        {
            "models.yaml": f"""\
apiVersion: plinth/v1
kind: ModelImport
metadata: {{name: acme-base}}
spec:
  path: weights/base.gguf
  license: apache-2.0
---
apiVersion: plinth/v1
kind: ModelImport
metadata: {{name: upstream}}
spec:
  remote:
    base_url: http://127.0.0.1:{port}/v1/
    upstream_model: big-model
    context_length: 8192
---
apiVersion: plinth/v1
kind: Adapter
metadata: {{name: "acme-base:tone"}}
spec:
  file: weights/tone.gguf
""",
        },
    )


def test_invalid_model_and_adapter_documents_are_reported_with_file_and_line(services: Services, project: str, tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "bad.yaml": """\
apiVersion: plinth/v1
kind: ModelImport
metadata: {name: both}
spec:
  path: nowhere.gguf
  remote: {base_url: "http://127.0.0.1:1/v1"}
---
apiVersion: plinth/v1
kind: ModelImport
metadata: {name: missing}
spec:
  path: nowhere.gguf
  colour: red
---
apiVersion: plinth/v1
kind: ModelImport
metadata: {name: pinned}
spec:
  digest: sha256:nothex
---
apiVersion: plinth/v1
kind: Adapter
metadata: {name: "no-such-model:orphan"}
spec:
  file: nowhere.gguf
---
apiVersion: plinth/v1
kind: Adapter
metadata: {name: no-base}
spec: {file: nowhere.gguf}
""",
        },
    )
    with pytest.raises(engine.ProjectInvalid) as e:
        engine.validate(ctx_for(services, root), engine.project_files(root))
    found = {(p.file, p.line): p.message for p in e.value.problems}
    assert "either 'path'" in found[("bad.yaml", 4)]  # the spec of "both"
    assert "colour" in found[("bad.yaml", 13)]
    assert "invalid digest" in found[("bad.yaml", 19)]
    assert "no-such-model" in found[("bad.yaml", 24)] and "neither a ModelImport" in found[("bad.yaml", 24)]
    assert "nowhere.gguf" in found[("bad.yaml", 25)]
    assert "BASE:ADAPTER" in found[("bad.yaml", 30)]
    assert services.catalog.list_adapters() == []  # nothing was imported


def test_models_and_adapters_plan_apply_idempotently_and_export_round_trips(
    services: Services, project: str, tmp_path: Path, loras: tuple[Path, Path]
) -> None:
    port = _closed_port()
    root = models_folder(tmp_path / "src", loras[0], port)
    ctx = ctx_for(services, root)
    first = engine.plan(ctx, engine.project_files(root))
    assert [(c.action, c.kind, c.name) for c in first.changes] == [
        ("create", "ModelImport", "acme-base"),
        ("create", "ModelImport", "upstream"),
        ("create", "Adapter", "acme-base:tone"),
    ]
    engine.apply(ctx, engine.project_files(root))
    base = services.catalog.get("acme-base")
    assert base.digest == content_digest(locate_embedded_gguf()) and base.runtime == "llamacpp" and base.license == "apache-2.0"
    remote = services.catalog.get("upstream")
    assert remote.parameters["base_url"] == f"http://127.0.0.1:{port}/v1" and remote.parameters["upstream_model"] == "big-model"
    assert services.catalog.get_adapter("acme-base", "tone").digest == content_digest(loras[0])
    assert engine.plan(ctx, engine.project_files(root)).changes == []
    assert engine.apply(ctx, engine.project_files(root)).changes == []  # a second apply changes nothing

    # a changed adapter file is an update by digest: removed and imported again
    (root / "weights" / "tone.gguf").unlink()
    os.symlink(loras[1], root / "weights" / "tone.gguf")
    p = engine.plan(ctx, engine.project_files(root))
    assert [(c.action, c.kind, c.name, [d["path"] for d in c.diff]) for c in p.changes] == [
        ("update", "Adapter", "acme-base:tone", ["digest"])
    ]
    engine.apply(ctx, engine.project_files(root))
    assert services.catalog.get_adapter("acme-base", "tone").digest == content_digest(loras[1])

    # export pins local weights by digest: planning it against the live state shows nothing
    out = tmp_path / "exported"
    engine.write_files(out, engine.export(ProjectContext(services)))
    assert sorted(p.name for p in (out / "resources" / "modelimport").glob("*.yaml")) == ["acme-base.yaml", "upstream.yaml"]
    exported = engine.plan(ctx_for(services, out), engine.project_files(out))
    assert exported.changes == [], [c.as_dict() for c in exported.changes]


def test_a_model_a_deployment_serves_is_not_replaced(services: Services, project: str, tmp_path: Path, loras: tuple[Path, Path]) -> None:
    root = models_folder(tmp_path, loras[0], _closed_port())
    ctx = ctx_for(services, root)
    engine.apply(ctx, engine.project_files(root))
    services.deployments.create("svc", [{"model": "acme-base:tone"}], actor="test")
    write(root, {"models.yaml": (root / "models.yaml").read_text().replace("license: apache-2.0", "license: mit")})
    p = engine.plan(ctx, engine.project_files(root))
    assert [(c.kind, c.name, c.diff) for c in p.changes] == [
        ("ModelImport", "acme-base", [{"path": "license", "before": "apache-2.0", "after": "mit"}])
    ]
    with pytest.raises(PlinthError) as e:
        engine.apply(ctx, engine.project_files(root))
    assert e.value.code == ErrorCode.CONFLICT and "svc" in e.value.message and "tone" in e.value.message
    assert services.catalog.get("acme-base").license == "apache-2.0"  # nothing replaced
    assert services.catalog.get_adapter("acme-base", "tone") is not None


def test_a_pinned_model_without_its_file_says_what_is_missing(services: Services, project: str, tmp_path: Path) -> None:
    digest = content_digest(locate_embedded_gguf())
    root = write(
        tmp_path,
        {
            "m.yaml": "apiVersion: plinth/v1\nkind: ModelImport\nmetadata: {name: gone}\n"
            f"spec: {{digest: '{digest}', runtime: llamacpp}}\n"
        },
    )
    ctx = ctx_for(services, root)
    assert [(c.action, c.name) for c in engine.plan(ctx, engine.project_files(root)).changes] == [("create", "gone")]
    with pytest.raises(PlinthError) as e:
        engine.apply(ctx, engine.project_files(root))
    assert e.value.code == ErrorCode.INVALID_REQUEST and e.value.param == "spec.path" and "export does not copy" in e.value.message


def test_the_kinds_are_registered_before_what_uses_them() -> None:
    mi, ad, dep = kind_handler("ModelImport"), kind_handler("Adapter"), kind_handler("Deployment")
    assert mi is not None and ad is not None and dep is not None
    assert mi.order < ad.order < dep.order


def test_a_deployment_may_serve_a_model_and_adapter_the_same_folder_imports(
    services: Services, project: str, tmp_path: Path, loras: tuple[Path, Path]
) -> None:
    root = models_folder(tmp_path, loras[0], _closed_port())
    write(
        root,
        {
            "deployment.yaml": """\
apiVersion: plinth/v1
kind: Deployment
metadata: {name: tone-chat}
spec:
  targets: [{model: "acme-base:tone"}]
""",
        },
    )
    ctx = ctx_for(services, root)
    engine.validate(ctx, engine.project_files(root))  # no "does not exist" for the folder's own imports
    root2 = write(tmp_path / "other", {"deployment.yaml": (root / "deployment.yaml").read_text()})
    with pytest.raises(engine.ProjectInvalid) as e:  # without the imports it is still refused
        engine.validate(ctx_for(services, root2), engine.project_files(root2))
    assert any("acme-base:tone" in p.message for p in e.value.problems)
