"""``plinth monitor``: oversight of deployments in production (issue 14). ``drift`` measures and
charts drift of what members ask (ADR 0091), ``anomalies`` lists the most unusual prompts
(ADR 0092). A plain group: other monitoring commands are added beside these."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from plinth.cli import report as report_cli
from plinth.cli.common import console, get_services, get_settings

monitor_app = typer.Typer(help="Monitor deployments: drift of what members ask, anomalous requests.", no_args_is_help=True)

_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], top: float | None = None) -> str:
    """One character a value, ``▁`` (0) to ``█`` (``top``, default the largest)."""
    if not values:
        return ""
    hi = top if top is not None else max(values)
    hi = hi if hi > 0 else 1.0
    return "".join(_BLOCKS[min(len(_BLOCKS) - 1, max(0, round(v / hi * (len(_BLOCKS) - 1))))] for v in values)


def _bar(value: float, top: float, width: int = 30) -> str:
    n = 0 if top <= 0 else round(min(value, top) / top * width)
    return "█" * n + "·" * (width - n)


def _print_run(run: dict[str, Any]) -> None:
    verdict = "[red]DRIFT[/red]" if run["drifted"] else "[green]no drift[/green]"
    ref = run["reference"]
    ref_name = ref.get("dataset") or (f"{ref.get('start', '')[:19]} .. {ref.get('end', '')[:19]}" if ref.get("kind") == "window" else "")
    console.print(
        f"drift run {run['id']} of [bold]{escape(run['deployment'])}[/bold]: {verdict}, score {run['score']:.2f} "
        f"({run['n_recent']} recent prompts vs {run['n_reference']} of {escape(ref.get('kind', '?'))} {escape(str(ref_name))})"
    )
    results = run.get("results") or {}
    table = Table(title="methods")
    for c in ("method", "statistic", "p-value", "effect", "floor", "score", "drift"):
        table.add_column(c, justify="left" if c == "method" else "right")
    for name, m in results.get("methods", {}).items():
        table.add_row(
            name,
            f"{m['statistic']:.4g}",
            f"{m['p_value']:.3g}",
            f"{m['effect']:.4g}",
            f"{m['floor']:g}",
            f"{m['score']:.2f}",
            "[red]yes[/red]" if m.get("drifted") else "no",
        )
    console.print(table)
    if results.get("rule"):
        console.print(f"[dim]{escape(results['rule'])}[/dim]")
    changed = results.get("changed", {})
    terms = changed.get("terms", {})
    for side, label in (("recent", "more frequent now"), ("reference", "more frequent in the reference")):
        if terms.get(side):
            console.print(f"{label}: " + ", ".join(escape(t["term"]) for t in terms[side]))
    examples = changed.get("examples", {})
    if examples.get("recent"):
        console.print("recent prompts least like the reference:")
        for e in examples["recent"]:
            console.print(f"  - {escape(e[:160])}")
    anomalies = results.get("anomalies")
    if anomalies:
        console.print(f"anomaly scores stored for {anomalies['scored']} prompts, {anomalies['flagged']} flagged")


def _print_series(deployment: str, runs: list[dict[str, Any]]) -> None:
    if not runs:
        console.print(f"no drift runs of {escape(deployment)} in this period (run one with --run)")
        return
    scores = [r["score"] for r in runs]
    top = max(1.0, max(scores))
    plural = "s" if len(runs) != 1 else ""
    console.print(f"drift score of {escape(deployment)}, {len(runs)} run{plural} (1.0 = a method at its drift floor):")
    console.print(f"  {sparkline(scores, top)}  [dim]max {max(scores):.2f}, latest {scores[-1]:.2f}[/dim]")
    table = Table(show_header=True, box=None)
    for c in ("run", "at", "prompts", "score", "", "drift"):
        table.add_column(c, justify="right" if c in ("run", "prompts", "score") else "left")
    for r in runs[-30:]:
        bar = _bar(r["score"], top)
        marker = "[red]●[/red]" if r["drifted"] else "[green]·[/green]"
        color = "red" if r["drifted"] else "green"
        table.add_row(str(r["id"]), (r["at"] or "")[:19], str(r["n_recent"]), f"{r['score']:.2f}", f"[{color}]{bar}[/{color}]", marker)
    console.print(table)


@monitor_app.command("drift")
def drift(
    deployment: str = typer.Argument(..., help="The deployment."),
    run: bool = typer.Option(False, "--run", help="Measure now before charting."),
    since: str = typer.Option("30d", "--since", help="Chart the runs since (ISO time or a duration back from now)."),
    window: str = typer.Option("24h", "--window", help="With --run: the recent prompts of this long back."),
    reference: str = typer.Option("lineage", "--reference", help="With --run: lineage, dataset:NAME@VERSION or window:START/END."),
    revision: int | None = typer.Option(None, "--revision", help="With --run: only this revision's prompts."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Drift of what members ask: a run now (--run) and the stored runs over time as a chart."""
    s = get_services(get_settings(), embedded=False)
    try:
        made = None
        if run:
            with console.status(f"measuring drift of {deployment} ..."):
                made = s.drift.run(deployment, window=window, reference=reference, revision=revision).public_dict()
        runs = [r.public_dict(full=False) for r in s.drift.series(deployment, since=since)]
        if as_json:
            console.print_json(json.dumps({"run": made, "runs": runs}))
            return
        if made is not None:
            _print_run(made)
        _print_series(deployment, runs)
        if made is not None and made["drifted"]:
            raise typer.Exit(3)  # scripts can act on drift
    finally:
        s.close()


@monitor_app.command("anomalies")
def anomalies(
    deployment: str = typer.Argument(..., help="The deployment."),
    since: str = typer.Option("24h", "--since", help="ISO time or a duration back from now."),
    above: float | None = typer.Option(None, "--above", help="Only scores above this (default: all scored)."),
    flagged: bool = typer.Option(False, "--flagged", help="Only those above the server's flag score."),
    limit: int = typer.Option(20, "-n", help="How many, most anomalous first."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The deployment's most anomalous prompts (scored by drift runs; ADR 0092)."""
    settings = get_settings()
    s = get_services(settings, embedded=False)
    try:
        threshold = settings.request_log_flag_score if flagged else above
        rows = s.drift.anomalies(deployment, since=since, above=threshold, limit=limit)
        out = [
            {
                "id": r.id,
                "response_id": r.response_id,
                "at": r.at.isoformat(),
                "revision": r.revision,
                "score": r.anomaly_score,
                "prompt": r.prompt_text,
            }
            for r in rows
        ]
        if as_json:
            console.print_json(json.dumps({"anomalies": out}))
            return
        if not out:
            console.print(f"no scored prompts of {escape(deployment)} since {escape(since)} (drift runs score them)")
            return
        table = Table(title=f"anomalous prompts of {escape(deployment)} (flagged above {settings.request_log_flag_score:g})")
        for c in ("score", "", "at", "rev", "response id", "prompt"):
            table.add_column(c, overflow="fold", justify="right" if c == "score" else "left")
        for r in out:
            score = float(r["score"] or 0.0)
            hot = score > settings.request_log_flag_score
            table.add_row(
                f"{score:.2f}",
                f"[{'red' if hot else 'yellow'}]{_bar(score, 1.0, 10)}[/]",
                r["at"][:19],
                str(r["revision"] or "-"),
                r["response_id"],
                escape((r["prompt"] or "")[:120]),
            )
        console.print(table)
    finally:
        s.close()


# the compliance report (ADR 0095), in its own module
monitor_app.command("report")(report_cli.report)
