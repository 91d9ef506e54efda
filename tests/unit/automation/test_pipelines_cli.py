"""``plinth pipelines`` and ``plinth triggers`` as a person runs them (in-process, tests/support/cli.py)
on a fresh home: apply a YAML file of a pipeline and a trigger, run with parameters and watch it
to the end, the runs and a run's steps (table and JSON with lineage), a second run cached, the
triggers and their events, and errors (every problem of a bad file, an unknown run)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import plinth

PIPELINE = """
name: report
description: compute and check
params:
  n: 2
steps:
  - name: compute
    action: set
    spec: {size: "${params.n}"}
  - name: gate
    action: check
    spec: {that: "${steps.compute.outputs.size}"}
---
name: by-hand
pipeline: report
kind: manual
cooldown_s: 3600
"""


def test_apply_run_show_and_triggers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    f = tmp_path / "pipeline.yaml"
    f.write_text(PIPELINE)
    out = plinth(home, "pipelines", "apply", "-f", str(f))
    assert out.returncode == 0, out.stderr
    assert "pipeline report created version 1" in out.stdout and "trigger by-hand (manual) -> pipeline report" in out.stdout
    again = plinth(home, "pipelines", "apply", "-f", str(f))
    assert "pipeline report unchanged at version 1" in again.stdout

    listed = plinth(home, "pipelines", "list", "--json")
    assert [p["name"] for p in json.loads(listed.stdout)] == ["report"]

    run = plinth(home, "pipelines", "run", "report", "-p", "n=3", "--wait", "--timeout", "60")
    assert run.returncode == 0, run.stdout + run.stderr
    run_id = run.stdout.split()[1]
    assert run_id.startswith("run-") and "succeeded" in run.stdout

    shown = json.loads(plinth(home, "pipelines", "show", run_id, "--json").stdout)
    assert shown["run"]["params"] == {"n": 3}
    assert {s["name"]: s["state"] for s in shown["steps"]} == {"compute": "succeeded", "gate": "succeeded"}
    assert shown["lineage"]["steps"][0]["artifacts"] == {"size": 3}

    cached = plinth(home, "pipelines", "run", "report", "-p", "n=3", "--wait")
    assert cached.returncode == 0 and "cached" in cached.stdout

    failing = plinth(home, "pipelines", "run", "report", "-p", "n=0", "--wait")
    assert failing.returncode == 1 and "failed" in failing.stdout

    runs = plinth(home, "pipelines", "runs", "report", "--json")
    assert [r["state"] for r in json.loads(runs.stdout)] == ["failed", "succeeded", "succeeded"]
    table = plinth(home, "pipelines", "show", run_id)
    assert "compute" in table.stdout and "gate" in table.stdout

    fired = plinth(home, "triggers", "fire", "by-hand")
    assert fired.returncode == 0 and "started run-" in fired.stdout
    cooled = plinth(home, "triggers", "fire", "by-hand")
    assert cooled.returncode == 1 and "cooldown" in cooled.stderr
    events = json.loads(plinth(home, "triggers", "events", "by-hand", "--json").stdout)
    assert [e["fired"] for e in events] == [False, True]
    assert "by-hand" in plinth(home, "triggers", "list").stdout

    cancel_done = plinth(home, "pipelines", "cancel", run_id)
    assert cancel_done.returncode != 0 and f"run {run_id} already succeeded" in cancel_done.stderr


def test_errors_name_every_problem(tmp_path: Path) -> None:
    home = tmp_path / "home"
    f = tmp_path / "bad.yaml"
    f.write_text("name: bad\nsteps:\n  - {name: a, job: nope}\n  - {name: b, action: set, spec: {x: '${steps.zz.outputs.y}'}}\n")
    out = plinth(home, "pipelines", "apply", "-f", str(f))
    assert out.returncode != 0
    assert "unknown job kind 'nope'" in out.stderr and "unknown step 'zz'" in out.stderr
    missing = plinth(home, "pipelines", "show", "run-00000000000000000000")
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    bad_param = plinth(home, "pipelines", "run", "ghost", "-p", "novalue")
    assert bad_param.returncode != 0
