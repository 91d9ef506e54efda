"""``plinth pipelines`` and ``plinth triggers`` (ADR 0102, 0103): apply pipelines and triggers from
YAML, start runs with parameters, watch a run's steps live, cancel and resume; the triggers and
why each fired or did not.

Runs are advanced by the runner thread of a server process (``plinth up``), and their job steps
by its worker; ``run --wait`` and ``show --follow`` also advance the run from this process when
no server holds it (a step's jobs still need a worker: ``plinth up`` or ``plinth worker``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from plinth.cli.common import console, err_console, get_services, get_settings
from plinth.errors import ErrorCode, PlinthError

pipelines_app = typer.Typer(
    help="Pipelines: DAGs of jobs and actions with parameters, caching, retries, conditions and timeouts.", no_args_is_help=True
)
triggers_app = typer.Typer(help="Triggers that start pipelines: schedule (cron), new data, alerts, manual.", no_args_is_help=True)

_STYLE = {
    "succeeded": "green",
    "cached": "cyan",
    "running": "yellow",
    "pending": "dim",
    "failed": "bold red",
    "cancelled": "magenta",
    "skipped": "dim",
}


def _services() -> Any:
    return get_services(get_settings(), embedded=False)


def _state(state: str) -> str:
    return f"[{_STYLE.get(state, '')}]{state}[/]"


def _params(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"a parameter is KEY=VALUE, got {pair!r}", param="param")
        key, _, value = pair.partition("=")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def _documents(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"cannot read {path}: {e.strerror}", param="file") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{path} is not YAML: {e}", param="file") from None
    if not docs or not all(isinstance(d, dict) for d in docs):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{path} must hold one or more YAML objects (pipelines or triggers)", param="file")
    return docs


def _run_table(run: dict[str, Any], steps: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{run['id']}  {run['pipeline']}@{run['version']}  {run['state']}", title_justify="left")
    for col in ("step", "state", "attempt", "job", "message"):
        table.add_column(col, overflow="fold")
    for s in steps:
        table.add_row(escape(s["name"]), _state(s["state"]), str(s["attempt"]), s["job_id"] or "-", escape(s["message"] or ""))
    return table


def _detail(s: Any, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run = s.pipelines.run(run_id)
    return run.public_dict(), [st.public_dict() for st in s.pipelines.steps(run_id)]


def _follow(s: Any, run_id: str, *, poll_s: float = 0.5, timeout_s: float | None = None) -> dict[str, Any]:
    """Show the run's steps live until it finishes; advance it here when no server holds it."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    run, steps = _detail(s, run_id)
    with Live(_run_table(run, steps), console=console, refresh_per_second=4, transient=False) as live:
        while run["state"] not in ("succeeded", "failed", "cancelled"):
            if deadline is not None and time.monotonic() > deadline:
                break
            s.pipeline_runner.drive(run_id)
            run, steps = _detail(s, run_id)
            live.update(_run_table(run, steps))
            if run["state"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(poll_s)
    return run


# -- pipelines -----------------------------------------------------------------------------------------
def _is_pipeline(doc: dict[str, Any]) -> bool:
    """A pipeline has steps (or is a project file of kind Pipeline); a trigger names a pipeline."""
    if "apiVersion" in doc:
        return str(doc.get("kind")) == "Pipeline"
    return "steps" in doc or "pipeline" not in doc


@pipelines_app.command("apply")
def pipelines_apply(
    file: Path = typer.Option(..., "--file", "-f", help="A YAML file of pipelines (with steps) and triggers (with pipeline)."),
) -> None:
    """Store each pipeline as a new version when it changed, and create or replace each trigger."""
    docs = _documents(file)
    s = _services()
    try:
        pipelines = [d for d in docs if _is_pipeline(d)]
        triggers = [d for d in docs if not _is_pipeline(d)]
        for d in pipelines:  # first: a trigger names its pipeline
            p, created = s.pipelines.apply(d)
            verb = "created version" if created else "unchanged at version"
            console.print(f"pipeline [bold]{escape(p.name)}[/] {verb} {p.version}")
        for d in triggers:
            t = s.triggers.apply(d)
            console.print(f"trigger [bold]{escape(t.name)}[/] ({t.kind.value}) -> pipeline {escape(t.pipeline)}")
    finally:
        s.close()


@pipelines_app.command("list")
def pipelines_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The pipelines (newest versions) with their steps."""
    s = _services()
    try:
        items = [p.public_dict() for p in s.pipelines.list()]
        if as_json:
            console.print_json(json.dumps(items))
            return
        table = Table(title="Pipelines")
        for col in ("name", "version", "steps", "description"):
            table.add_column(col, overflow="fold")
        for p in items:
            table.add_row(
                escape(p["name"]), str(p["version"]), ", ".join(st["name"] for st in p["spec"]["steps"]), escape(p["description"])
            )
        console.print(table)
    finally:
        s.close()


@pipelines_app.command("run")
def pipelines_run(
    name: str,
    param: list[str] = typer.Option([], "--param", "-p", help="A parameter KEY=VALUE (the value is read as YAML: 3, true, text)."),
    reason: str = typer.Option("manual", "--reason", help="Why (kept in the run's lineage)."),
    wait: bool = typer.Option(False, "--wait", "-w", help="Show the steps live until the run finishes (exit 1 when it fails)."),
    timeout: float | None = typer.Option(None, "--timeout", help="With --wait: stop watching after this many seconds."),
) -> None:
    """Start a run of the pipeline's newest version."""
    s = _services()
    try:
        run = s.pipelines.start(name, _params(param), reason=reason)
        console.print(f"started [bold]{run.id}[/] of {escape(run.pipeline)}@{run.version}")
        if wait:
            final = _follow(s, run.id, timeout_s=timeout)
            if final["state"] != "succeeded":
                raise typer.Exit(1)
    finally:
        s.close()


@pipelines_app.command("runs")
def pipelines_runs(
    name: str | None = typer.Argument(None, help="Only this pipeline's runs."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Runs, newest first."""
    s = _services()
    try:
        runs = [r.public_dict() for r in s.pipelines.runs(name, limit=limit)]
        if as_json:
            console.print_json(json.dumps(runs))
            return
        table = Table(title="Pipeline runs")
        for col in ("run", "pipeline", "state", "created", "reason"):
            table.add_column(col, overflow="fold")
        for r in runs:
            table.add_row(
                r["id"], f"{escape(r['pipeline'])}@{r['version']}", _state(r["state"]), r["created_at"] or "-", escape(r["reason"])
            )
        console.print(table)
    finally:
        s.close()


@pipelines_app.command("show")
def pipelines_show(
    run_id: str,
    follow: bool = typer.Option(False, "--follow", "-f", help="Show the steps live until the run finishes."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (the run, its steps and lineage)."),
) -> None:
    """A run's steps: state, attempt, job and message."""
    s = _services()
    try:
        if as_json:
            run, steps = _detail(s, run_id)
            console.print_json(json.dumps({"run": run, "steps": steps, "lineage": s.pipelines.lineage(run_id)}))
            return
        if follow:
            _follow(s, run_id)
            return
        run, steps = _detail(s, run_id)
        console.print(_run_table(run, steps))
        if run["message"]:
            console.print(f"  {escape(run['message'])}")
    finally:
        s.close()


@pipelines_app.command("logs")
def pipelines_logs(run_id: str, step: str, tail: int = typer.Option(200, "--tail", min=1, max=10_000)) -> None:
    """The log of a step's job."""
    s = _services()
    try:
        for line in s.pipelines.step_logs(run_id, step, tail=tail):
            console.print(escape(line), soft_wrap=True)
    finally:
        s.close()


@pipelines_app.command("cancel")
def pipelines_cancel(run_id: str) -> None:
    """Cancel a run: its running jobs are cancelled, its unfinished steps end cancelled."""
    s = _services()
    try:
        run = s.pipelines.cancel(run_id)
        console.print(f"{run.id} {_state(run.state.value)}")
    finally:
        s.close()


@pipelines_app.command("resume")
def pipelines_resume(run_id: str, wait: bool = typer.Option(False, "--wait", "-w", help="Show the steps live until it finishes.")) -> None:
    """Run a failed or cancelled run again from where it stopped (done steps keep their outputs)."""
    s = _services()
    try:
        run = s.pipelines.resume(run_id)
        console.print(f"{run.id} {_state(run.state.value)}")
        if wait and _follow(s, run_id)["state"] != "succeeded":
            raise typer.Exit(1)
    finally:
        s.close()


# -- triggers -------------------------------------------------------------------------------------------
@triggers_app.command("list")
def triggers_list(
    pipeline: str | None = typer.Option(None, "--pipeline", help="Only this pipeline's triggers."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The triggers, what they watch and when they last fired."""
    s = _services()
    try:
        items = [t.public_dict() for t in s.triggers.list(pipeline=pipeline)]
        if as_json:
            console.print_json(json.dumps(items))
            return
        table = Table(title="Triggers")
        for col in ("name", "kind", "pipeline", "watches", "cooldown", "last fired"):
            table.add_column(col, overflow="fold")
        for t in items:
            spec = t["spec"]
            watches = spec.get("cron") or spec.get("name") or spec.get("rule") or "-"
            table.add_row(
                escape(t["name"]) + ("" if t["enabled"] else " (disabled)"),
                t["kind"],
                escape(t["pipeline"]),
                escape(str(watches)),
                f"{t['cooldown_s']:g} s",
                t["state"].get("last_fired_at") or "-",
            )
        console.print(table)
    finally:
        s.close()


@triggers_app.command("events")
def triggers_events(
    name: str | None = typer.Argument(None, help="Only this trigger's events."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Why each trigger fired or did not (cooldown, duplicate, condition false), newest first."""
    s = _services()
    try:
        events = [e.public_dict() for e in s.triggers.events(name, limit=limit)]
        if as_json:
            console.print_json(json.dumps(events))
            return
        table = Table(title="Trigger events")
        for col in ("at", "trigger", "fired", "run", "reason"):
            table.add_column(col, overflow="fold")
        for e in events:
            table.add_row(e["at"], escape(e["trigger"]), "[green]yes[/]" if e["fired"] else "no", e["run_id"] or "-", escape(e["reason"]))
        console.print(table)
    finally:
        s.close()


@triggers_app.command("fire")
def triggers_fire(name: str) -> None:
    """Fire a trigger by hand (its cooldown and condition still apply)."""
    s = _services()
    try:
        event = s.triggers.fire_manual(name)
        if event.fired:
            console.print(f"fired {escape(name)}: started [bold]{event.run_id}[/]")
        else:
            err_console.print(f"{escape(name)} did not fire: {escape(event.reason)}")
            raise typer.Exit(1)
    finally:
        s.close()


@triggers_app.command("delete")
def triggers_delete(name: str) -> None:
    """Delete a trigger and its events."""
    s = _services()
    try:
        s.triggers.delete(name)
        console.print(f"deleted trigger {escape(name)}")
    finally:
        s.close()
