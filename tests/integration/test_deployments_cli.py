"""`plinth deploy`, `plinth keys`, `plinth usage` and `plinth audit` as a person runs them,
on a fresh PLINTH_HOME, without a server (in this process: tests/support/cli.py)."""

from __future__ import annotations

import json
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.support import cli

MODEL = "smollm2-135m-instruct"


def plinth(home: Path, *args: str) -> CompletedProcess[str]:
    return cli.plinth(home, *args, COLUMNS="200")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deploy-cli")


def test_deploy_commands(home: Path) -> None:
    out = plinth(home, "deploy", "create", "acme-assistant", "--model", MODEL, "--description", "member assistant")
    assert out.returncode == 0, out.stderr
    assert 'model="acme-assistant"' in out.stdout and "r1 stable" in out.stdout and "100%" in out.stdout
    out = plinth(
        home,
        "deploy",
        "canary",
        "acme-assistant",
        "--model",
        f"{MODEL}=3",
        "--model",
        f"{MODEL}=1",
        "--percent",
        "10",
        "--temperature",
        "0",
        "--system-prompt",
        "Be brief.",
    )
    assert out.returncode == 0, out.stderr
    assert "canary revision 2 on 10% of requests" in out.stdout and "r2 canary" in out.stdout and "waiting (0/10)" in out.stdout
    assert plinth(home, "deploy", "canary", "acme-assistant", "--percent", "25").returncode == 0
    status = json.loads(plinth(home, "deploy", "status", "acme-assistant", "--json").stdout)
    assert status["traffic"] == {"1": 75.0, "2": 25.0}
    assert [t["weight"] for t in status["canary"]["targets"]] == [3, 1]
    assert (
        status["canary"]["targets"][0]["defaults"] == {"temperature": 0.0}
        and status["canary"]["targets"][0]["system_prompt"] == "Be brief."
    )
    out = plinth(
        home, "deploy", "rules", "acme-assistant", "--rule", "error_rate:absolute:0.1:5", "--gate", "rouge_l>=0.3@acme-faq:validation"
    )
    assert (
        out.returncode == 0 and "canary error_rate <= 0.1" in out.stdout and "gate: rouge_l >= 0.3 on acme-faq (validation)" in out.stdout
    )
    refused = plinth(home, "deploy", "promote", "acme-assistant")  # the gate now applies and nothing was evaluated
    assert refused.returncode == 1 and refused.stderr.startswith("error: the candidate does not pass the evaluation gate")
    assert "Traceback" not in refused.stderr
    assert plinth(home, "deploy", "rules", "acme-assistant", "--no-gate").returncode == 0
    assert "revision 2 is stable" in plinth(home, "deploy", "promote", "acme-assistant").stdout
    assert "revision 1 is stable" in plinth(home, "deploy", "rollback", "acme-assistant", "--reason", "test").stdout
    history = json.loads(plinth(home, "deploy", "history", "acme-assistant", "--json").stdout)
    assert [e["kind"] for e in history] == ["rolled_back", "promoted", "rules", "gate_refused", "rules", "traffic", "canary", "created"]
    assert history[0]["actor"].startswith("cli:") and history[0]["reason"] == "test"
    listed = plinth(home, "deploy", "list")
    assert "acme-assistant" in listed.stdout and "r1 100%" in listed.stdout
    bad = plinth(home, "deploy", "canary", "acme-assistant", "--model", MODEL, "--percent", "101")
    assert bad.returncode == 2 and "percent must be from 0 to 100" in bad.stderr
    assert plinth(home, "deploy", "status", "nope").stderr.strip() == "error: deployment 'nope' does not exist"


def test_keys_usage_and_audit_commands(home: Path) -> None:
    out = plinth(
        home,
        "keys",
        "create",
        "acme-app",
        "--scope",
        "inference",
        "--model",
        "acme-*",
        "--rpm",
        "60",
        "--budget",
        "100000",
        "--period",
        "day",
        "--expires",
        "30d",
    )
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert token.startswith("pk-") and "shown only now" in out.stderr
    listed = plinth(home, "keys", "list")
    assert "acme-app" in listed.stdout and token not in listed.stdout and "active" in listed.stdout
    shown = json.loads(plinth(home, "keys", "show", "acme-app", "--json").stdout)
    assert shown["models"] == ["acme-*"] and shown["usage"]["budget"]["limit"] == 100000
    assert plinth(home, "keys", "update", "acme-app", "--tpm", "5000").returncode == 0
    assert json.loads(plinth(home, "keys", "show", "acme-app", "--json").stdout)["limits"]["tokens_per_minute"] == 5000
    assert "revoked key acme-app" in plinth(home, "keys", "revoke", "acme-app").stdout
    assert "acme-app" not in plinth(home, "keys", "list").stdout and "revoked" in plinth(home, "keys", "list", "--all").stdout
    assert plinth(home, "keys", "create", "x", "--scope", "root").stderr.startswith("error: unknown scope 'root'")
    usage = plinth(home, "usage", "--by", "deployment,revision", "--since", "1h")
    assert usage.returncode == 0 and "total" in usage.stdout
    audit = json.loads(plinth(home, "audit", "--json", "-n", "100").stdout)
    actions = [e["action"] for e in audit]
    assert actions[:3] == ["key.revoke", "key.update", "key.create"] and "deployment.create" in actions
    assert all(e["actor"].startswith("cli:") for e in audit)
    assert audit[0]["before"]["revoked_at"] is None and audit[0]["after"]["revoked_at"]
