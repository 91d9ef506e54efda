"""``plinth requests``: the request log of ``/v1`` calls (list, show, export as JSONL or
Parquet) and the quality signals of a deployment's revisions (ADR 0090), in the project the
command works in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import DownloadColumn, Progress, SpinnerColumn, TextColumn, TransferSpeedColumn
from rich.table import Table

from plinth.cli.common import console, err_console, get_services, get_settings
from plinth.errors import ErrorCode, PlinthError

requests_app = typer.Typer(help="The request log: every /v1 request, its outcome, findings and (redacted) text.", no_args_is_help=True)

_SINCE = typer.Option(None, "--since", help="ISO time or a duration back from now (15m, 24h, 7d).")
_UNTIL = typer.Option(None, "--until", help="ISO time or a duration back from now.")


def _query(s: Any, **filters: Any) -> Any:
    return s.requests.query(**filters)


@requests_app.command("list")
def list_requests(
    deployment: str | None = typer.Option(None, "--deployment", "-d"),
    revision: int | None = typer.Option(None, "--revision", "-r"),
    model: str | None = typer.Option(None, "--model", help="As requested, as served, or the model version."),
    adapter: str | None = typer.Option(None, "--adapter"),
    outcome: str | None = typer.Option(None, "--outcome", help="ok, error, refused or cancelled."),
    flagged: bool = typer.Option(False, "--flagged", help="Only requests with an anomaly score above the flag score."),
    findings: bool = typer.Option(False, "--findings", help="Only requests a guardrail found something in."),
    since: str | None = _SINCE,
    until: str | None = _UNTIL,
    before: int | None = typer.Option(None, "--before", help="Page back: entries older than this id."),
    limit: int = typer.Option(50, "-n", "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Logged requests, newest first."""
    s = get_services(get_settings(), embedded=False)
    try:
        q = _query(
            s,
            deployment=deployment,
            revision=revision,
            model=model,
            adapter=adapter,
            outcome=outcome,
            flagged=flagged or None,
            has_findings=findings or None,
            since=since,
            until=until,
            before=before,
        )
        page = s.requests.list(q, limit=limit)
        if as_json:
            console.print_json(json.dumps({"requests": page["requests"], "next_before_id": page["next_before"]}))
            return
        table = Table(title="request log (newest first)")
        for col in ("id", "when (UTC)", "response", "deployment", "model version", "outcome", "ms", "tokens", "findings", "feedback"):
            table.add_column(col, overflow="fold", justify="right" if col in ("ms", "tokens") else "left")
        for r in page["requests"]:
            dep = r["deployment"] or "-"
            if r["revision"] is not None:
                dep += f" r{r['revision']}"
            flags = []
            if r["blocked"]:
                flags.append("blocked")
            if r["refused"]:
                flags.append("refused")
            table.add_row(
                str(r["id"]),
                (r["at"] or "-")[:19].replace("T", " "),
                escape(r["response_id"]),
                escape(dep),
                escape(r["model_version"] or r["served_model"]),
                escape(" ".join([r["outcome"], *flags])),
                f"{1000 * r['latency_s']:.0f}",
                f"{r['prompt_tokens']}+{r['completion_tokens']}",
                str(r["finding_count"] or "-"),
                {1: "+1", 0: "0", -1: "-1"}.get(r["feedback"], "-"),
            )
        console.print(table)
        if page["next_before"] is not None:
            err_console.print(f"more: --before {page['next_before']}")
    finally:
        s.close()


@requests_app.command("show")
def show_request(
    response_id: str = typer.Argument(..., help="The response id (chatcmpl-... or cmpl-...)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One logged request: what answered, how it went, findings, citations, feedback and the
    redacted text (when a guardrail policy checked it)."""
    s = get_services(get_settings(), embedded=False)
    try:
        d = s.requests.get(response_id).public_dict()
        if as_json:
            console.print_json(json.dumps(d))
            return
        table = Table(show_header=False, title=escape(d["response_id"]))
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        for k in (
            "id",
            "at",
            "kind",
            "model",
            "served_model",
            "model_version",
            "adapter",
            "deployment",
            "revision",
            "key_id",
            "user",
            "outcome",
            "error_code",
            "finish_reason",
            "latency_s",
            "ttft_s",
            "prompt_tokens",
            "completion_tokens",
            "policy",
            "blocked",
            "refused",
            "grounded",
            "anomaly_score",
            "feedback",
            "text_mode",
        ):
            table.add_row(k, escape("-" if d[k] is None else str(d[k])))
        for f in d["findings"]:
            table.add_row("finding", escape(f"{f['direction']} {f['detector']} {f['label']} {f['action']} x{f['count']}"))
        for c in d["citations"]:
            table.add_row("citation", escape(f"[{c.get('index', '?')}] {c.get('knowledge_base', '')} {c.get('document', '')}"))
        table.add_row("prompt", escape(d["prompt"]) if d["prompt"] is not None else "[dim](no text kept)[/dim]")
        table.add_row("response", escape(d["response"]) if d["response"] is not None else "[dim](no text kept)[/dim]")
        console.print(table)
    finally:
        s.close()


@requests_app.command("export")
def export_requests(
    out: Path = typer.Option(..., "--output", "-o", help="The file to write."),
    fmt: str = typer.Option("jsonl", "--format", "-f", help="jsonl or parquet."),
    deployment: str | None = typer.Option(None, "--deployment", "-d"),
    revision: int | None = typer.Option(None, "--revision", "-r"),
    model: str | None = typer.Option(None, "--model"),
    adapter: str | None = typer.Option(None, "--adapter"),
    outcome: str | None = typer.Option(None, "--outcome"),
    since: str | None = _SINCE,
    until: str | None = _UNTIL,
) -> None:
    """Every matching entry (newest first) to a JSON lines or Parquet file, for an audit."""
    if fmt not in ("jsonl", "parquet"):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"invalid format {fmt!r}: use jsonl or parquet", param="format")
    s = get_services(get_settings(), embedded=False)
    try:
        q = _query(s, deployment=deployment, revision=revision, model=model, adapter=adapter, outcome=outcome, since=since, until=until)
        chunks = s.requests.export(q, fmt)
        tmp = out.with_name(out.name + ".part")
        written = 0
        progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), DownloadColumn(), TransferSpeedColumn(), console=err_console
        )
        try:
            with progress, tmp.open("wb") as f:
                task = progress.add_task(f"exporting to {out.name}", total=None)
                for piece in chunks:
                    f.write(piece)
                    written += len(piece)
                    progress.update(task, completed=written)
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)
        console.print(f"wrote {escape(str(out))} ({written:,} bytes, {fmt})")
    finally:
        s.close()


@requests_app.command("quality")
def quality(
    deployment: str = typer.Argument(..., help="A deployment of the project."),
    window: str = typer.Option("1h", "--window", "-w", help="The window ending now (15m, 1h, 7d)."),
    revision: int | None = typer.Option(None, "--revision", "-r"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Quality signals per revision over the window: groundedness, refusals, guardrail blocks,
    negative feedback, errors, latency and time to first token."""
    s = get_services(get_settings(), embedded=False)
    try:
        q = s.requests.quality(deployment, window, revision=revision)
        if as_json:
            console.print_json(json.dumps(q))
            return
        table = Table(title=f"{escape(deployment)}: quality over the last {escape(window)}")
        cols = (
            ("requests", "requests", "n"),
            ("errors", "error_rate", "%"),
            ("blocked", "block_rate", "%"),
            ("refused", "refusal_rate", "%"),
            ("grounded", "groundedness_rate", "%"),
            ("neg. feedback", "negative_feedback_rate", "%"),
            ("latency p50", "latency_p50_s", "s"),
            ("p95", "latency_p95_s", "s"),
            ("TTFT p50", "ttft_p50_s", "s"),
            ("p95", "ttft_p95_s", "s"),
        )
        table.add_column("revision")
        for title, _, _ in cols:
            table.add_column(title, justify="right")
        rows = [(f"r{r['revision']}" if r["revision"] is not None else "-", r) for r in q["revisions"]]
        for label, r in [*rows, ("all", q["overall"])]:
            table.add_row(label, *(_cell(r[key], kind) for _, key, kind in cols))
        console.print(table)
    finally:
        s.close()


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "%":
        return f"{100 * value:.1f}%"
    if kind == "s":
        return f"{1000 * value:.0f} ms"
    return f"{value:,}"
