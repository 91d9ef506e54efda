"""``plinth monitor report DEPLOYMENT``: the compliance report of a deployment over a period,
written as a self-contained, printable HTML page (or JSON) (ADR 0095)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from plinth.cli.common import console, err_console, get_services, get_settings


def report(
    deployment: str = typer.Argument(..., help="The deployment."),
    since: str = typer.Option("30d", "--since", help="ISO time or a duration back from now."),
    until: str | None = typer.Option(None, "--until", help="ISO time or a duration back from now (default: now)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file (default: print)."),
    as_json: bool = typer.Option(False, "--json", help="JSON instead of HTML."),
) -> None:
    """The compliance report: versions that answered, their data and guardrails, what fired,
    drift, bias, feedback and quality. Open the HTML in a browser; print it for a PDF."""
    from plinth.oversight.report import render_html, report_over

    s = get_services(get_settings(), embedded=False)
    try:
        data = report_over(s.store, s.registry, deployment, since, until)
    finally:
        s.close()
    text = json.dumps(data, indent=2) if as_json else render_html(data)
    if output is None:
        console.file.write(text + "\n")  # as it is: no wrapping, no markup
        return
    output.write_text(text, encoding="utf-8")
    t = data["usage"]["totals"]
    err_console.print(
        f"wrote {escape(str(output))}: {t['requests']:,} requests, {data['alerts']['fired']} alerts fired, "
        f"{len(data['drift'])} drift runs, {len(data['bias'])} bias reports"
    )
