"""`plinth jobs`, `plinth queues` and `plinth priority-classes` (in this process, through
tests/support/cli.py) against the live server's data directory: the server's worker runs
what the CLI submits."""

from __future__ import annotations

import json

from tests.integration.test_cli import fails, ok
from tests.support.live_server import LiveServer


def test_submit_follow_list_show_logs(live_server: LiveServer) -> None:
    home = live_server.home
    out = ok(
        home, "jobs", "submit", "selftest", "--spec", '{"steps": 5, "sleep_s": 0.05}', "--name", "from-cli", "-l", "via=cli", "--follow"
    )
    assert "submitted job-" in out
    job_id = out.split("submitted ")[1].split()[0]
    jobs = json.loads(ok(home, "jobs", "list", "--label", "via=cli", "--json"))
    assert [j["id"] for j in jobs] == [job_id] and jobs[0]["state"] == "succeeded"
    show = ok(home, "jobs", "show", job_id)
    assert "succeeded" in show and "from-cli" in show
    logs = ok(home, "jobs", "logs", job_id)
    assert "counted 5 steps" in logs and "attempt 1 succeeded" in logs
    assert "attempt 1 succeeded" in ok(home, "jobs", "logs", job_id, "--tail", "1")
    assert json.loads(ok(home, "jobs", "show", job_id, "--json"))["result"]["steps"] == 5


def test_follow_exits_non_zero_when_the_job_fails(live_server: LiveServer) -> None:
    from tests.integration.test_cli import plinth

    out = ok(live_server.home, "jobs", "submit", "selftest", "--spec", '{"steps": 3, "sleep_s": 0, "fail_at": 2}')
    job_id = out.split("submitted ")[1].split()[0]
    proc = plinth(live_server.home, "jobs", "show", job_id, "--follow")  # the bar only (the log has the traceback)
    assert proc.returncode == 1 and "selftest failed at step 2" in proc.stderr
    shown = json.loads(ok(live_server.home, "jobs", "show", job_id, "--json"))
    assert shown["state"] == "failed" and shown["error"]["code"] == "executor_error"


def test_cli_errors_are_one_line(live_server: LiveServer) -> None:
    home = live_server.home
    assert "unknown job kind 'nope'" in fails(home, "jobs", "submit", "nope")
    assert "--spec is not valid JSON" in fails(home, "jobs", "submit", "selftest", "--spec", "{")
    assert "spec.steps" in fails(home, "jobs", "submit", "selftest", "--spec", '{"steps": "many"}')
    assert "more than any machine offers" in fails(home, "jobs", "submit", "selftest", "--cpu", "4096")
    assert "does not exist" in fails(home, "jobs", "show", "job-00000000000000000000")
    assert "larger than the machines offer" in fails(home, "queues", "create", "q", "--cpu", "4096", "--memory", "1GiB")


def test_queues_and_priority_classes(live_server: LiveServer) -> None:
    home = live_server.home
    assert "created queue cli-q" in ok(home, "queues", "create", "cli-q", "--cpu", "1", "--memory", "512MiB")
    assert "cli-q" in ok(home, "queues", "list")
    assert "updated queue cli-q" in ok(home, "queues", "update", "cli-q", "--preemption", "never")
    queues = {q["name"]: q for q in json.loads(ok(home, "queues", "list", "--json"))}
    assert queues["cli-q"]["preemption"] == "never" and queues["cli-q"]["quota"]["memory"] == 512 << 20
    assert "removed queue cli-q" in ok(home, "queues", "rm", "cli-q")
    assert "created priority class cli-p (42)" in ok(home, "priority-classes", "create", "cli-p", "42")
    assert "cli-p" in ok(home, "priority-classes", "list")
    ok(home, "priority-classes", "rm", "cli-p")
    assert "selftest" in ok(home, "jobs", "kinds")
    assert str(live_server.proc.pid) in ok(home, "jobs", "workers")
