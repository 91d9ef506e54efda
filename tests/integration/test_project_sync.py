"""``plinth sync`` (ADR 0101) on a real Git repository made by the test (``git init``, commits):
each new commit's project folder is applied and recorded with its commit in the audit log; a
second poll finds nothing to do; a live change made by hand (drift) is put back; a resource
removed from the repository is deleted (it was made by a sync); an earlier commit applied with
``--revision`` rolls back; a broken commit is reported and not applied."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import plinth

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

POLICY = """\
apiVersion: plinth/v1
kind: GuardrailPolicy
metadata: {{name: synced}}
spec:
  policy:
    description: {description}
    rules:
      - {{detector: secrets, on: [input, output], action: redact}}
"""
DATASET = """\
apiVersion: plinth/v1
kind: Dataset
metadata: {name: synced-faq}
spec: {file: ../data/faq.jsonl}
"""
FAQ = "".join(
    json.dumps({"messages": [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": f"A{i}."}]}) + "\n" for i in range(8)
)


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x", "HOME": str(repo)}
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env={**env, "PATH": "/usr/bin:/bin"}, check=True)
    return proc.stdout.strip()


def commit(repo: Path, files: dict[str, str | None], message: str) -> str:
    for rel, text in files.items():
        p = repo / rel
        if text is None:
            p.unlink()
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def audit(home: Path, action: str) -> list[dict[str, object]]:
    r = plinth(home, "audit", "--action", action, "--json", "-n", "100")
    assert r.returncode == 0, r.stderr
    return list(json.loads(r.stdout))


def test_sync_follows_a_local_git_repository(tmp_path: Path) -> None:
    home, repo = tmp_path / "home", tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    first = commit(repo, {"project/policy.yaml": POLICY.format(description="v1"), "data/faq.jsonl": FAQ}, "v1")

    r = plinth(home, "sync", "--repo", str(repo), "--branch", "main", "--path", "project", "--once")
    assert r.returncode == 0 and f"commit {first[:12]}" in r.stdout and "+ GuardrailPolicy synced" in r.stdout, (r.stdout, r.stderr)
    r = plinth(home, "sync", "--repo", str(repo), "--branch", "main", "--path", "project", "--once")
    assert r.returncode == 0 and "in sync" in r.stdout, r.stdout

    second = commit(repo, {"project/policy.yaml": POLICY.format(description="v2"), "project/data.yaml": DATASET}, "v2")
    r = plinth(home, "sync", "--repo", str(repo), "--branch", "main", "--path", "project", "--once")
    assert r.returncode == 0 and "~ GuardrailPolicy synced" in r.stdout and "+ Dataset synced-faq" in r.stdout, r.stdout
    assert '"v1" -> "v2"' in r.stdout
    syncs = audit(home, "project.sync")
    assert [e["details"]["commit"] for e in syncs][:3] == [second, first, first]  # newest first  # type: ignore[index]
    applied = audit(home, "project.apply")
    assert {e["details"]["commit"] for e in applied} == {first, second}  # type: ignore[index]

    # drift: a change by hand is put back at the next poll
    hand = {"name": "synced", "description": "by hand", "rules": [{"detector": "secrets", "on": ["input"], "action": "redact"}]}
    (tmp_path / "hand.json").write_text(json.dumps(hand))
    assert plinth(home, "guardrails", "apply", str(tmp_path / "hand.json")).returncode == 0
    r = plinth(home, "sync", "--repo", str(repo), "--branch", "main", "--path", "project", "--once")
    assert "live state drifted" in r.stdout and '"by hand" -> "v2"' in r.stdout, r.stdout

    # a resource removed from the repository is deleted (a sync made it); roll back with --revision
    third = commit(repo, {"project/data.yaml": None}, "drop the dataset")
    r = plinth(home, "sync", "--repo", str(repo), "--path", "project", "--once")
    assert f"commit {third[:12]}" in r.stdout and "- Dataset synced-faq" in r.stdout, r.stdout
    r = plinth(home, "sync", "--repo", str(repo), "--path", "project", "--revision", first)
    assert r.returncode == 0 and '"v2" -> "v1"' in r.stdout, r.stdout
    r = plinth(home, "plan", str(repo / "project"))
    assert r.returncode == 2 and "~ GuardrailPolicy synced" in r.stdout  # the working copy (v3) differs from live (v1)

    # a broken commit is reported, not applied, and recorded
    commit(
        repo,
        {"project/policy.yaml": "apiVersion: plinth/v1\nkind: GuardrailPolicy\nmetadata: {name: synced}\nspec: {colour: 1}\n"},
        "broken",
    )
    r = plinth(home, "sync", "--repo", str(repo), "--path", "project", "--once")
    assert r.returncode == 1 and "not applied" in r.stderr and "policy.yaml:4" in r.stderr, (r.stdout, r.stderr)
    assert audit(home, "project.sync")[0]["details"]["error"]  # type: ignore[index]
    r = plinth(home, "sync", "--repo", str(tmp_path / "not-a-repo"), "--once")
    assert r.returncode == 1 and "git" in r.stderr
