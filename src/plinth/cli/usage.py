"""``plinth usage`` (requests and tokens by key, deployment, revision, model version, over
time) and ``plinth audit`` (the audit log)."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from plinth.cli.common import console, get_services, get_settings
from plinth.usage.service import parse_time


def usage(
    by: str = typer.Option("deployment,revision", "--by", help="Group by: key, deployment, revision, model, model_version, outcome."),
    since: str = typer.Option("24h", "--since", help="ISO time or a duration back from now (15m, 24h, 7d)."),
    until: str | None = typer.Option(None, "--until"),
    bucket: str | None = typer.Option(None, "--bucket", help="Time buckets, e.g. 1h."),
    deployment: str | None = typer.Option(None, "--deployment", "-d"),
    key: str | None = typer.Option(None, "--key", help="A key id or name."),
    model: str | None = typer.Option(None, "--model"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Requests and tokens, grouped; the share of each row shows the traffic split."""
    s = get_services(get_settings(), embedded=False)
    try:
        key_id = s.auth.get_key(key).id if key else None
        out = s.usage.summary(
            group_by=by.split(","), since=since, until=until, bucket=bucket, key=key_id, deployment=deployment, model=model
        )
        if as_json:
            console.print_json(json.dumps(out))
            return
        names = {k.id: k.name for k in s.auth.list_keys(include_revoked=True)}
        cols = (["bucket"] if out["bucket_s"] else []) + out["group_by"]
        table = Table(title=f"usage since {(out['since'] or 'the start')[:19]}")
        for c in cols:
            table.add_column(c, overflow="fold")
        for c in ("requests", "share", "errors", "blocked", "prompt tokens", "completion tokens", "total tokens"):
            table.add_column(c, justify="right")
        total = out["totals"]["requests"] or 1
        for r in out["rows"]:
            values = [escape(str(names.get(r[c], r[c]) if c == "key" else (r[c] if r[c] is not None else "-"))) for c in cols]
            table.add_row(
                *values,
                f"{r['requests']:,}",
                f"{100 * r['requests'] / total:.1f}%",
                f"{r['errors']:,}",
                f"{r['blocked']:,}",
                f"{r['prompt_tokens']:,}",
                f"{r['completion_tokens']:,}",
                f"{r['total_tokens']:,}",
            )
        t = out["totals"]
        table.add_section()
        table.add_row(
            *(["total"] + [""] * (len(cols) - 1)),
            f"{t['requests']:,}",
            "100%" if t["requests"] else "-",
            f"{t['errors']:,}",
            f"{t['blocked']:,}",
            f"{t['prompt_tokens']:,}",
            f"{t['completion_tokens']:,}",
            f"{t['total_tokens']:,}",
        )
        console.print(table)
    finally:
        s.close()


def audit(
    actor: str | None = typer.Option(None, "--actor"),
    target: str | None = typer.Option(None, "--target", help="e.g. a deployment name or key id"),
    action: str | None = typer.Option(None, "--action", help="A prefix: deployment., key., http"),
    since: str | None = typer.Option(None, "--since", help="ISO time or a duration back from now"),
    limit: int = typer.Option(50, "-n"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The audit log of management actions, newest first."""
    s = get_services(get_settings(), embedded=False)
    try:
        entries = s.audit.list(actor=actor, target=target, action=action, since=parse_time(since, "since"), limit=limit)
        if as_json:
            console.print_json(json.dumps([e.public_dict() for e in entries]))
            return
        table = Table(title="audit log (newest first)")
        for col in ("id", "when (UTC)", "actor", "action", "target", "details"):
            table.add_column(col, overflow="fold")
        for e in entries:
            details = ", ".join(f"{k}={v}" for k, v in e.details.items() if not isinstance(v, dict | list))
            table.add_row(
                str(e.id),
                f"{e.at:%Y-%m-%d %H:%M:%S}" if e.at else "-",
                escape(e.actor),
                escape(e.action),
                escape(f"{e.target_type}:{e.target}"),
                escape(details),
            )
        console.print(table)
    finally:
        s.close()
