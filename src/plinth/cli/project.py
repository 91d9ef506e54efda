"""``plinth validate|plan|apply DIR`` and ``plinth export DIR``: a project described in files
(ADR 0100). ``plinth export`` also dispatches to the model export (``NAME@VERSION`` or
``BASE:ADAPTER``) and to the Kubernetes export (``plinth export k8s DIR``)."""

from __future__ import annotations

import contextlib
import importlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from plinth.auth.audit import cli_actor
from plinth.automation.project import engine
from plinth.automation.project.kinds import ProjectContext
from plinth.cli.common import console, err_console, get_services, get_settings
from plinth.errors import ErrorCode, PlinthError

_SYMBOL = {"create": ("+", "green"), "update": ("~", "yellow"), "delete": ("-", "red")}


@contextlib.contextmanager
def _context(directory: Path | None) -> Iterator[ProjectContext]:
    services = get_services(get_settings(), embedded=True)  # deployments may name the embedded model
    try:
        yield ProjectContext(services, base_dir=directory.resolve() if directory else None, actor=cli_actor())
    finally:
        services.close()


def _fail(e: PlinthError) -> typer.Exit:
    problems = (e.details or {}).get("problems") if isinstance(e, engine.ProjectInvalid) else None
    if problems:
        for p in problems:
            err_console.print(f"[bold]{escape(p['file'])}:{p['line']}[/]: {escape(p['message'])}", highlight=False, soft_wrap=True)
        err_console.print(f"[bold red]{len(problems)} problem(s)[/]", highlight=False)
    else:
        err_console.print(f"[bold red]error:[/] {escape(e.message)}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False) if value is not None else "(none)"
    return text if len(text) <= 80 else text[:77] + "..."


def print_plan(p: engine.Plan) -> None:
    if not p.changes:
        console.print(f"[green]No changes.[/] The live state of project {escape(p.project)!r} matches the files.")
        return
    for c in p.changes:
        sym, colour = _SYMBOL[c.action]
        console.print(f"[{colour}]{sym} {c.kind} {escape(c.name)}[/] ({c.action})", highlight=False)
        for d in c.diff:
            if c.action == "create":
                console.print(f"    [green]+ {escape(d['path'])}[/] = {escape(_short(d['after']))}", highlight=False, soft_wrap=True)
            elif c.action == "delete":
                console.print(f"    [red]- {escape(d['path'])}[/] = {escape(_short(d['before']))}", highlight=False, soft_wrap=True)
            else:
                console.print(
                    f"    [yellow]~ {escape(d['path'])}[/]: {escape(_short(d['before']))} [bold]->[/] {escape(_short(d['after']))}",
                    highlight=False,
                    soft_wrap=True,
                )
    s = p.summary()
    console.print(f"\n[bold]Plan:[/] {s['create']} to create, {s['update']} to update, {s['delete']} to delete.")


def validate(directory: Path = typer.Argument(..., help="The project folder (YAML files).")) -> None:
    """Check the project files: schema and references (to the folder or the live store), every
    problem at once with its file and line; nothing is changed. Exit 0 valid, 1 not."""
    try:
        files = engine.project_files(directory)
        with _context(directory) as ctx:
            resources = engine.validate(ctx, files)
    except PlinthError as e:
        raise _fail(e) from None
    console.print(f"[green]valid:[/] {len(resources)} resource(s) in {len(files)} file(s)")


def plan(
    directory: Path = typer.Argument(..., help="The project folder (YAML files)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Save the plan (JSON) for `plinth apply PLAN.json`."),
    prune: bool = typer.Option(False, "--prune", help="Also delete resources an earlier apply made that the files no longer have."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """What apply would change, field by field. Exit 0 no changes, 2 changes, 1 error."""
    try:
        files = engine.project_files(directory)
        with _context(directory) as ctx:
            p = engine.plan(ctx, files, prune=prune)
    except PlinthError as e:
        raise _fail(e) from None
    if out is not None:
        out.write_text(json.dumps(p.as_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    if as_json:
        console.print_json(json.dumps(p.as_dict(), default=str))
    else:
        print_plan(p)
        if out is not None:
            console.print(f"saved to {escape(str(out))}: `plinth apply {escape(str(out))}` applies exactly this plan")
    raise typer.Exit(2 if p.changes else 0)


def apply(
    target: Path = typer.Argument(..., help="The project folder, or a plan saved by `plinth plan -o`."),
    prune: bool = typer.Option(False, "--prune", help="Also delete resources an earlier apply made that the files no longer have."),
) -> None:
    """Make the live state match the files (idempotent: a second apply changes nothing). A
    saved plan is refused when the live state or the files changed since it was made."""
    saved = None
    directory = target
    try:
        if target.is_file():
            saved = engine.read_saved_plan(target)
            if not saved.get("directory"):
                raise PlinthError(ErrorCode.INVALID_REQUEST, "the saved plan names no project folder")
            directory = Path(str(saved["directory"]))
        files = engine.project_files(directory)
        with _context(directory) as ctx:

            def progress(change: engine.Change, stage: str) -> None:
                sym, colour = _SYMBOL[change.action]
                if stage == "start":
                    console.print(f"[{colour}]{sym} {change.kind} {escape(change.name)}[/] {change.action}...", highlight=False)
                else:
                    console.print(f"  [green]done[/] {change.kind} {escape(change.name)}", highlight=False)

            p = engine.apply(ctx, files, prune=prune, saved=saved, progress=progress)
    except PlinthError as e:
        raise _fail(e) from None
    s = p.summary()
    if not p.changes:
        console.print("[green]No changes.[/]")
    else:
        console.print(f"[bold]Applied:[/] {s['create']} created, {s['update']} updated, {s['delete']} deleted.")


def _looks_like_model(target: str) -> bool:
    return ("@" in target or ":" in target) and "/" not in target and not Path(target).exists()


def export(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="A folder (project files), `k8s` (then the folder), or a model NAME@VERSION / BASE:ADAPTER."),
    directory: Path | None = typer.Argument(None, help="With `k8s`: the folder for the manifests."),
    fmt: str = typer.Option("gguf", "--format", "-f", help="Model export: gguf, safetensors (merged) or gguf-lora."),
    quant: str = typer.Option("q8_0", "--quant", help="Model export, gguf: q8_0, q4_k_m or f16."),
    name: str | None = typer.Option(None, "--name", help="Model export: catalog name of the export."),
    evaluate_on: str | None = typer.Option(
        None, "--evaluate-on", help="Model export: dataset NAME@VERSION (default: the training dataset)."
    ),
    max_samples: int = typer.Option(50, "--max-samples", help="Model export: rows evaluated after export."),
    detach: bool = typer.Option(False, "--detach"),
    local_worker: bool = typer.Option(True, "--local-worker/--no-local-worker"),
) -> None:
    """Export the project's live state as project files (`plinth export DIR`), Kubernetes
    manifests (`plinth export k8s DIR`) or a fine-tuned model (`plinth export NAME@VERSION`)."""
    if target == "k8s":
        if directory is None:
            err_console.print("[bold red]error:[/] `plinth export k8s DIR` needs the folder for the manifests", highlight=False)
            raise typer.Exit(2)
        try:  # written by the Kubernetes export's own module; imported only when asked for
            k8s = importlib.import_module("plinth.cli.k8s")
        except ModuleNotFoundError as e:
            if e.name not in ("plinth.cli.k8s",):
                raise
            err_console.print("[bold red]error:[/] the Kubernetes export is not installed in this version of plinth", highlight=False)
            raise typer.Exit(1) from None
        # `plinth export k8s DIR [options]` is `plinth k8s export DIR [options]`: its options pass through.
        sub = typer.Typer()
        sub.command()(k8s.export_k8s)
        code = typer.main.get_command(sub).main(args=[str(directory), *ctx.args], prog_name="plinth export k8s", standalone_mode=False)
        if isinstance(code, int) and code:
            raise typer.Exit(code)
        return
    if ctx.args:
        err_console.print(f"[bold red]error:[/] unexpected option(s): {escape(' '.join(ctx.args))}", highlight=False)
        raise typer.Exit(2)
    if _looks_like_model(target):
        from plinth.cli import tuning as tuning_cli

        tuning_cli.export(
            model=target,
            fmt=fmt,
            quant=quant,
            name=name,
            evaluate_on=evaluate_on,
            max_samples=max_samples,
            detach=detach,
            local_worker=local_worker,
        )
        return
    if directory is not None:
        err_console.print(f"[bold red]error:[/] unexpected argument {escape(str(directory))!r}", highlight=False)
        raise typer.Exit(2)
    out = Path(target)
    try:
        with _context(None) as pctx:
            files = engine.export(pctx)
        written = engine.write_files(out, files)
    except PlinthError as e:
        raise _fail(e) from None
    table = Table(title=f"project files written to {out}")
    table.add_column("file", overflow="fold")
    table.add_column("bytes", justify="right")
    for p in written:
        table.add_row(escape(p.relative_to(out.resolve()).as_posix()), f"{p.stat().st_size:,}")
    console.print(table)


# `plinth export k8s DIR` passes the Kubernetes export's options through (main.py registers
# ``export`` with these settings).
EXPORT_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def sync(
    repo: Path = typer.Option(..., "--repo", help="A local Git repository (its commits are read; the working copy is not touched)."),
    branch: str = typer.Option("HEAD", "--branch", "-b", help="The branch (or tag) to follow."),
    revision: str | None = typer.Option(None, "--revision", help="Apply this commit once instead (roll back to an earlier one)."),
    path: str = typer.Option(".", "--path", help="The project folder inside the repository."),
    once: bool = typer.Option(False, "--once", help="Sync once and exit (exit 1 if the sync failed)."),
    interval: float = typer.Option(30.0, "--interval", min=1.0, help="Seconds between polls."),
    prune: bool = typer.Option(True, "--prune/--no-prune", help="Delete what an earlier apply made and the commit no longer has."),
) -> None:
    """Follow a local Git repository (ADR 0101): plan each new commit's project folder against
    the live state, apply it, record the commit in the audit log; live drift is put back too."""
    from plinth.automation.project import sync as gitops

    stop = threading.Event()
    with _context(None) as ctx:
        while True:
            try:
                result = gitops.sync_once(ctx, repo, rev=revision or branch, path=path, prune=prune)
            except PlinthError as e:
                raise _fail(e) from None
            short = result.commit[:12]
            if result.error:
                err_console.print(f"[bold red]commit {short}: not applied:[/] {escape(result.error)}", highlight=False, soft_wrap=True)
            elif result.plan is not None and result.plan.changes:
                reason = "new commit" if result.previous != result.commit else "live state drifted from the commit"
                console.print(f"[bold]commit {short}[/] ({reason}):", highlight=False)
                print_plan(result.plan)
            else:
                console.print(f"commit {short}: [green]in sync[/]", highlight=False)
            if once or revision is not None:
                raise typer.Exit(1 if result.error else 0)
            try:
                stop.wait(interval)
            except KeyboardInterrupt:  # pragma: no cover - interactive
                return
