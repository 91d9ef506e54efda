"""``plinth validate|plan|apply|export`` as a person runs them (in process, through
``plinth.cli.main.main``): exit codes (validate 0/1; plan 0 no changes, 2 changes, 1 error),
problems printed with file and line, a saved plan applied and refused once stale, the export
planned as no changes, and ``plinth export`` dispatching to the Kubernetes and model exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import plinth

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "acme-health" / "project"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("project-cli-home")


def test_validate_plan_apply_and_export_of_the_acme_project(home: Path, tmp_path: Path) -> None:
    r = plinth(home, "validate", str(EXAMPLE))
    assert r.returncode == 0 and "valid: 11 resource(s) in 6 file(s)" in r.stdout, r.stderr

    saved = tmp_path / "plan.json"
    r = plinth(home, "plan", str(EXAMPLE), "-o", str(saved))
    assert r.returncode == 2, r.stderr
    assert "+ Deployment acme-assistant" in r.stdout and "Plan: 11 to create, 0 to update, 0 to delete." in r.stdout
    assert json.loads(saved.read_text())["summary"] == {"create": 11, "update": 0, "delete": 0}

    r = plinth(home, "apply", str(saved))
    assert r.returncode == 0, r.stderr
    assert "done KnowledgeBase acme-policies" in r.stdout and "Applied: 11 created, 0 updated, 0 deleted." in r.stdout
    r = plinth(home, "plan", str(EXAMPLE))
    assert r.returncode == 0 and "No changes." in r.stdout, r.stdout
    r = plinth(home, "apply", str(saved))  # the plan was made against an empty project
    assert r.returncode == 1 and "live state changed since the plan" in r.stderr

    r = plinth(home, "audit", "--action", "project.apply", "--json")
    assert r.returncode == 0 and "acme-assistant" in r.stdout

    out = tmp_path / "exported"
    r = plinth(home, "export", str(out))
    assert r.returncode == 0 and (out / "resources" / "deployment" / "acme-assistant.yaml").is_file(), r.stderr
    r = plinth(home, "plan", str(out))
    assert r.returncode == 0 and "No changes." in r.stdout, r.stdout


def test_problems_are_printed_with_file_and_line_and_exit_1(home: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: plinth/v1\nkind: Dataset\nmetadata: {name: faq}\nspec:\n  file: nowhere.jsonl\n"
        "---\napiVersion: plinth/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  targets: []\n"
    )
    for command in ("validate", "plan", "apply"):
        r = plinth(home, command, str(tmp_path))
        assert r.returncode == 1, (command, r.stdout, r.stderr)
        assert "bad.yaml:5:" in r.stderr and "bad.yaml:11:" in r.stderr and "2 problem(s)" in r.stderr
    r = plinth(home, "plan", str(tmp_path / "missing"))
    assert r.returncode == 1 and "is not a folder" in r.stderr


def test_an_edit_plans_an_update(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    doc = (
        "apiVersion: plinth/v1\nkind: GuardrailPolicy\nmetadata: {{name: cli-policy}}\nspec:\n  policy:\n"
        "    description: {d}\n    rules:\n      - {{detector: secrets, on: [input], action: redact}}\n"
    )
    (folder / "policy.yaml").write_text(doc.format(d="first"))
    assert plinth(home, "apply", str(folder)).returncode == 0
    (folder / "policy.yaml").write_text(doc.format(d="second"))
    r = plinth(home, "plan", str(folder))
    assert r.returncode == 2 and "~ GuardrailPolicy cli-policy" in r.stdout and '"first" -> "second"' in r.stdout, r.stdout


def test_export_dispatches_to_kubernetes_and_model_exports(home: Path, tmp_path: Path) -> None:
    r = plinth(home, "export", "k8s")
    assert r.returncode == 2 and "needs the folder" in r.stderr
    r = plinth(home, "export", "k8s", str(tmp_path / "k8s"), "--namespace", "acme")
    assert r.returncode == 0, r.stderr
    assert any((tmp_path / "k8s").iterdir())
    r = plinth(home, "export", "no-such-model@1", "--detach")  # the model export job, as before
    assert r.returncode != 0 and "no-such-model" in r.stderr, (r.stdout, r.stderr)
    r = plinth(home, "export", str(tmp_path / "x"), "--namespace", "acme")
    assert r.returncode == 2 and "unexpected option" in r.stderr
