"""``plinth keys``: API keys (create, list, show, update, revoke). The key is printed once,
when it is created; only its hash is stored. This is also how the first admin key of a server
with ``PLINTH_AUTH=true`` is made."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import typer
from rich.table import Table

from plinth.auth.audit import cli_actor
from plinth.auth.service import make_limits
from plinth.cli.common import console, err_console, get_services, get_settings
from plinth.usage.service import parse_duration

keys_app = typer.Typer(help="API keys: scopes, model patterns, rate limits and token budgets.", no_args_is_help=True)


@contextlib.contextmanager
def _session() -> Iterator[Any]:
    services = get_services(get_settings(), embedded=False)
    try:
        yield services
    finally:
        services.close()


def _num(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


@keys_app.command("create")
def create(
    name: str = typer.Argument(..., help="A name people recognise (unique)."),
    scope: list[str] = typer.Option(["inference"], "--scope", "-s", help="inference, read, manage or admin (repeatable)."),
    model: list[str] = typer.Option(
        [], "--model", "-m", help="Model id or deployment name the key may use (* and ? allowed; repeatable; none: all)."
    ),
    rpm: int | None = typer.Option(None, "--rpm", help="Requests per minute."),
    tpm: int | None = typer.Option(None, "--tpm", help="Tokens per minute (prompt + max_tokens reserved, settled to what was used)."),
    budget: int | None = typer.Option(None, "--budget", help="Tokens per budget period."),
    period: str = typer.Option("month", "--period", help="Budget period: hour, day, week, month (UTC)."),
    expires: str | None = typer.Option(None, "--expires", help="Lifetime, e.g. 30d or 12h."),
    user: str | None = typer.Option(
        None, "--user", "-u", help="The user the key acts for (never beyond their role in the project); none: the operator."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a key in the project (--project) and print it (once)."""
    with _session() as s:
        expires_at = datetime.now(UTC) + parse_duration(expires, "expires") if expires else None
        key, token = s.auth.create_key(
            name,
            scopes=scope,
            models=model,
            limits=make_limits(rpm, tpm, budget, period),
            expires_at=expires_at,
            actor=cli_actor(),
            user=user,
        )
        if as_json:
            console.print_json(json.dumps({**key.public_dict(), "key": token}))
            return
        console.print(token, highlight=False, markup=False)
        err_console.print(
            f"created key {key.name} ({key.id}) with scopes {', '.join(sorted(x.value for x in key.scopes))}; "
            "it is shown only now: store it safely",
            highlight=False,
        )


@keys_app.command("list")
def list_(all_: bool = typer.Option(False, "--all", help="Include revoked keys."), as_json: bool = typer.Option(False, "--json")) -> None:
    """The keys (never their secrets)."""
    with _session() as s:
        keys = s.auth.list_keys(include_revoked=all_)
        if as_json:
            console.print_json(json.dumps([k.public_dict() for k in keys]))
            return
        table = Table(title="API keys")
        for col in ("id", "name", "scopes", "models", "rpm", "tpm", "budget", "last used (UTC)", "state"):
            table.add_column(col, overflow="fold")
        now = datetime.now(UTC)
        for k in keys:
            lim = k.limits
            budget = f"{_num(lim.budget_tokens)}/{lim.budget_period.value}" if lim.budget_tokens else "-"
            state = "revoked" if k.revoked_at else ("expired" if not k.is_active(now) else "active")
            table.add_row(
                k.id,
                k.name,
                ",".join(sorted(x.value for x in k.scopes)),
                ",".join(k.models) or "all",
                _num(lim.requests_per_minute),
                _num(lim.tokens_per_minute),
                budget,
                f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "-",
                state,
            )
        console.print(table)


@keys_app.command("show")
def show(ref: str = typer.Argument(..., help="Key id or name."), as_json: bool = typer.Option(False, "--json")) -> None:
    """A key with what it used this minute and this budget period."""
    with _session() as s:
        key, windows = s.auth.windows(ref)
        view = {**key.public_dict(), "usage": windows.public_dict(key.limits)}
        if as_json:
            console.print_json(json.dumps(view))
            return
        u = view["usage"]
        console.print(
            f"[bold]{key.name}[/] ({key.id})  scopes {', '.join(view['scopes'])}  models {', '.join(key.models) or 'all'}", highlight=False
        )
        console.print(
            f"  this minute: {u['minute']['requests']} requests (limit {_num(key.limits.requests_per_minute)}), "
            f"{u['minute']['tokens']} tokens (limit {_num(key.limits.tokens_per_minute)})",
            highlight=False,
        )
        b = u["budget"]
        if b["limit"] is not None:
            console.print(
                f"  budget: {b['used']:,} of {b['limit']:,} tokens used this {b['period']} (until {b['end'][:16]} UTC)", highlight=False
            )


@keys_app.command("update")
def update(
    ref: str = typer.Argument(...),
    scope: list[str] = typer.Option([], "--scope", "-s", help="Replace the scopes."),
    model: list[str] = typer.Option([], "--model", "-m", help="Replace the model patterns."),
    all_models: bool = typer.Option(False, "--all-models", help="Allow every model."),
    rpm: int | None = typer.Option(None, "--rpm"),
    tpm: int | None = typer.Option(None, "--tpm"),
    budget: int | None = typer.Option(None, "--budget"),
    period: str | None = typer.Option(None, "--period"),
) -> None:
    """Change scopes, model patterns or limits (limits given replace the old ones; others stay)."""
    with _session() as s:
        key = s.auth.get_key(ref)
        limits = None
        if any(v is not None for v in (rpm, tpm, budget, period)):
            old = key.limits
            limits = make_limits(
                rpm if rpm is not None else old.requests_per_minute,
                tpm if tpm is not None else old.tokens_per_minute,
                budget if budget is not None else old.budget_tokens,
                period or old.budget_period,
            )
        models = [] if all_models else (model or None)
        updated = s.auth.update_key(ref, actor=cli_actor(), scopes=scope or None, models=models, limits=limits)
        console.print(f"updated key {updated.name} ({updated.id})", highlight=False)


@keys_app.command("revoke")
def revoke(ref: str = typer.Argument(..., help="Key id or name.")) -> None:
    """Revoke a key: it stops working at once (within PLINTH_AUTH_CACHE_TTL_S on other servers)."""
    with _session() as s:
        key = s.auth.revoke_key(ref, actor=cli_actor())
        console.print(f"revoked key {key.name} ({key.id})", highlight=False)
