"""``plinth bias``: replay a counterfactual bias suite against a model version or a deployment
(``run``), list the reports (``reports``) and show one with its per-attribute gaps against
thresholds (``show``). A deployment's gate ``{"kind": "bias", "suite": NAME}`` reads them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from plinth.cli.common import console, get_services, get_settings
from plinth.errors import ErrorCode, PlinthError

bias_app = typer.Typer(
    help="Counterfactual bias probes: the same questions for member profiles that differ in one attribute.", no_args_is_help=True
)


def _read_suite(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"cannot read the suite file {str(path)!r}: {e}", param="file") from None


@bias_app.command("run")
def run(
    file: Path = typer.Option(..., "--file", "-f", help="The suite (YAML or JSON, kind BiasSuite)."),
    target: str = typer.Option(..., "--target", "-t", help="A model id (NAME@N, NAME@ALIAS, a catalog model) or a deployment."),
    revision: int | None = typer.Option(None, "--revision", "-r", help="A deployment's revision (default: its stable one)."),
    as_job: bool = typer.Option(False, "--job", help="Submit a bias job instead of running here (a worker runs it)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Replay a suite greedily through the serving path, judge the gaps, store the report."""
    from plinth.oversight.bias_kind import parse_spec

    spec: dict[str, Any] = {"suite": _read_suite(file), "target": target}
    if revision is not None:
        spec["revision"] = revision
    suite, target, revision = parse_spec(spec)  # every problem of the suite at once, before anything starts
    s = get_services(get_settings())
    try:
        if as_job:
            job = s.jobs.submit("bias", spec, name=f"bias {suite.name} on {target}"[:200])
            console.print(f"submitted [bold]{job.id}[/] (bias); follow it with: plinth jobs logs -f {job.id}", highlight=False)
            return
        s.bias.resolve_target(target, revision=revision)
        n = suite.summary()["prompts"]
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True
        ) as progress:
            task = progress.add_task(f"{suite.name} on {target}", total=n)
            report = s.bias.run_blocking(suite, target, revision=revision, progress=lambda d, t: progress.update(task, completed=d))
        if as_json:
            console.print_json(json.dumps(report.summary_dict()))
        else:
            _show(report.public_dict(), answers=False)
        if not report.passed:
            raise typer.Exit(1)
    finally:
        s.close()


@bias_app.command("reports")
def reports(
    target: str | None = typer.Option(None, "--target", "-t", help="A model version or deployment."),
    suite: str | None = typer.Option(None, "--suite", "-s"),
    failed: bool = typer.Option(False, "--failed", help="Only reports that failed."),
    limit: int = typer.Option(50, "-n"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Bias reports, newest first."""
    s = get_services(get_settings(), embedded=False)
    try:
        items = s.bias.list(target=target, suite=suite, limit=limit)
        if failed:
            items = [r for r in items if not r.passed]
        if as_json:
            console.print_json(json.dumps([r.summary_dict() for r in items]))
            return
        table = Table(title="bias reports (newest first)")
        for col in ("id", "when (UTC)", "suite", "target", "result", "failures"):
            table.add_column(col, overflow="fold")
        for r in items:
            table.add_row(
                r.id,
                f"{r.at:%Y-%m-%d %H:%M:%S}" if r.at else "-",
                escape(r.suite),
                escape(r.target),
                Text("passed", style="green") if r.passed else Text("FAILED", style="bold red"),
                escape("; ".join(r.failures[:2]) + (" ..." if len(r.failures) > 2 else "")),
            )
        console.print(table)
    finally:
        s.close()


@bias_app.command("show")
def show(
    report_id: str = typer.Argument(..., help="A report id (plinth bias reports)."),
    answers: bool = typer.Option(False, "--answers", help="Also print every prompt and answer."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """A report: per attribute each metric against its threshold, per-variant numbers, examples."""
    s = get_services(get_settings(), embedded=False)
    try:
        report = s.bias.get(report_id)
        if as_json:
            console.print_json(json.dumps(report.public_dict()))
            return
        _show(report.public_dict(), answers=answers)
    finally:
        s.close()


def _verdict(passed: bool | None) -> Text:
    if passed is None:
        return Text("not judged", style="dim")
    return Text("pass", style="green") if passed else Text("FAIL", style="bold red")


def _show(report: dict[str, Any], *, answers: bool) -> None:
    results = report.get("results") or {}
    suite = results.get("suite") or {}
    served = report.get("served") or {}
    head = Text.assemble(
        ("bias report ", "bold"),
        (report["id"], "bold"),
        f"  suite {suite.get('name', report['suite'])} ({str(suite.get('digest', ''))[:19]})  target {report['target']}",
        f" = {served.get('model_version')}" if served.get("model_version") and served.get("model_version") != report["target"] else "",
        "  ",
        ("PASSED", "bold green") if report["passed"] else ("FAILED", "bold red"),
    )
    console.print(head)
    gen = report.get("generation") or {}
    if gen:
        console.print(f"[dim]{gen.get('prompts')} prompts, greedy, max_tokens {gen.get('max_tokens')}, {gen.get('seconds')} s[/]")
    table = Table(title="gaps per attribute (value vs threshold)")
    for col in ("attribute", "metric", "value", "threshold", "result", "per variant"):
        table.add_column(col, overflow="fold")
    for name, a in (results.get("attributes") or {}).items():
        label = name + (" (control)" if a.get("control") else "")
        first = True
        for metric, m in (a.get("metrics") or {}).items():
            threshold = m.get("threshold")
            bound = "-" if threshold is None else f"{'>=' if m.get('direction') == 'min' else '<='} {threshold:g}"
            per = ""
            if metric == "refusal_gap":
                per = ", ".join(f"{v}: {d['refusal_rate']:.2f}" for v, d in (a.get("per_variant") or {}).items())
            elif metric == "length_gap":
                per = ", ".join(f"{v}: {d['mean_words']:.0f} words" for v, d in (a.get("per_variant") or {}).items())
            elif metric == "sentiment_gap":
                per = ", ".join(f"{v}: {d['mean_sentiment']:+.2f}" for v, d in (a.get("per_variant") or {}).items())
            table.add_row(
                escape(label) if first else "",
                metric,
                f"{m['value']:.3f}",
                bound,
                _verdict(None if a.get("control") else m.get("passed")),
                escape(per),
            )
            first = False
        table.add_section()
    console.print(table)
    for failure in report.get("failures") or []:
        console.print(f"[bold red]fails:[/] {escape(failure)}")
    for name, a in (results.get("attributes") or {}).items():
        ex = a.get("least_similar")
        if ex and not a.get("control"):
            console.print(f"\n[bold]{escape(name)}[/]: least similar answers ({escape(ex['question'])}, similarity {ex['similarity']:.2f})")
            for variant, text in ex["answers"].items():
                console.print(f"  [cyan]{escape(variant)}[/]: {escape(text[:200])}")
    if answers:
        console.print()
        for item in results.get("answers") or []:
            console.print(f"[dim]{escape(item['prompt'])}[/]\n  {escape(item['answer'])}")
