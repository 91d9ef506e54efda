"""``plinth deploy``: deployments (create, canary, promote, rollback, update, status, history,
rules, list, rm). The CLI works on the metadata store directly, like the API; a running
server sees a change within two seconds (at once when it made it)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from plinth.auth.audit import cli_actor
from plinth.cli.common import console, get_services, get_settings
from plinth.domain.numbers import whole_number
from plinth.errors import ErrorCode, PlinthError

deploy_app = typer.Typer(
    help="Deployments: stable names on /v1 with revisions, canary rollouts, promotion and rollback (manual and automatic).",
    no_args_is_help=True,
)

_MODEL_HELP = "MODEL[=WEIGHT]: a catalog model, BASE:ADAPTER or a registry version (acme-faq@2); repeat for a split inside the revision."
_GATE_RE = re.compile(r"^([A-Za-z0-9_./-]+)\s*(>=|<=)\s*([-+0-9.eE]+)(?:@([^:\s]+)(?::([A-Za-z_]+))?)?$")
_RULE_RE = re.compile(r"^([a-z_0-9]+):(delta|ratio|absolute):([0-9.eE+-]+)(?::(\d+))?$")


@contextlib.contextmanager
def _session(embedded: bool = False) -> Iterator[Any]:
    services = get_services(get_settings(), embedded=embedded)
    try:
        yield services
    finally:
        services.close()


def _targets(
    models: list[str],
    kb: str | None,
    guardrails: str | None,
    system_prompt: str | None,
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
) -> list[dict[str, Any]]:
    defaults = {k: v for k, v in (("temperature", temperature), ("top_p", top_p), ("max_tokens", max_tokens)) if v is not None}
    out = []
    for m in models:
        model, sep, weight = m.rpartition("=") if "=" in m else (m, "", "")
        spec: dict[str, Any] = {"model": model if sep else m}
        if sep:
            number = whole_number(weight)
            if number is None:
                raise PlinthError(
                    ErrorCode.INVALID_REQUEST, f"invalid --model {m!r}: the weight after '=' must be a whole number", param="model"
                )
            spec["weight"] = number  # the service checks the range
        for key, value in (("knowledge_base", kb), ("guardrail_policy", guardrails), ("system_prompt", system_prompt)):
            if value:
                spec[key] = value
        if defaults:
            spec["defaults"] = dict(defaults)
        out.append(spec)
    return out


def parse_gate_rule(text: str) -> dict[str, Any]:
    """``rouge_l>=0.3@acme-faq:validation`` -> a gate rule."""
    m = _GATE_RE.match(text.strip())
    if m is None:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid --gate {text!r}: use METRIC>=VALUE or METRIC<=VALUE, optionally @DATASET[:SPLIT] (e.g. rouge_l>=0.3@acme-faq)",
            param="gate",
        )
    metric, op, value, dataset, split = m.groups()
    return {"metric": metric, "min" if op == ">=" else "max": float(value), "dataset": dataset, "split": split}


def parse_rule(text: str) -> dict[str, Any]:
    """``error_rate:delta:0.05[:10]`` -> a rollout rule."""
    m = _RULE_RE.match(text.strip())
    if m is None:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid --rule {text!r}: use METRIC:delta|ratio|absolute:THRESHOLD[:MIN_SAMPLES] (e.g. error_rate:delta:0.05:10)",
            param="rule",
        )
    metric, comparison, threshold, n = m.groups()
    rule: dict[str, Any] = {"metric": metric, "comparison": comparison, "threshold": float(threshold)}
    if n:
        rule["min_samples"] = int(n)
    return rule


# -- commands ------------------------------------------------------------------------------------
@deploy_app.command("create")
def create(
    name: str = typer.Argument(..., help="The deployment name clients call as the model (e.g. acme-assistant)."),
    model: list[str] = typer.Option(..., "--model", "-m", help=_MODEL_HELP),
    kb: str | None = typer.Option(None, "--kb", help="Knowledge base (NAME or NAME@V) for every target."),
    guardrails: str | None = typer.Option(None, "--guardrails", help="Guardrail policy for every target."),
    system_prompt: str | None = typer.Option(None, "--system-prompt", help="System prompt when a request has none."),
    temperature: float | None = typer.Option(None, help="Default temperature."),
    top_p: float | None = typer.Option(None, "--top-p", help="Default top_p."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Default max_tokens."),
    description: str = typer.Option("", "--description", "-d"),
    window: int | None = typer.Option(None, "--window", help="Rule window in seconds (PLINTH_DEPLOY_WINDOW_S)."),
    gate: list[str] = typer.Option([], "--gate", help="Evaluation gate, e.g. rouge_l>=0.3@acme-faq (repeatable)."),
    auto_rollback: bool = typer.Option(True, "--auto-rollback/--no-auto-rollback", help="Roll a breaching canary back by itself."),
    note: str = typer.Option("", "--note"),
) -> None:
    """Create a deployment: revision 1 gets all traffic."""
    with _session(embedded=True) as s:
        dep = s.deployments.create(
            name,
            _targets(model, kb, guardrails, system_prompt, temperature, top_p, max_tokens),
            actor=cli_actor(),
            description=description,
            window_s=window,
            gate=[parse_gate_rule(g) for g in gate] or None,
            auto_rollback=auto_rollback,
            note=note,
        )
        console.print(f'created [bold]{dep.name}[/] (revision 1); call it with model="{dep.name}" on /v1', highlight=False)
        _draw_status(s.deployments.status(name))


@deploy_app.command("canary")
def canary(
    name: str = typer.Argument(...),
    model: list[str] = typer.Option([], "--model", "-m", help=_MODEL_HELP + " Without --model: change the running canary's share."),
    percent: float = typer.Option(10.0, "--percent", "-p", help="Share of requests the canary gets (0-100)."),
    kb: str | None = typer.Option(None, "--kb"),
    guardrails: str | None = typer.Option(None, "--guardrails"),
    system_prompt: str | None = typer.Option(None, "--system-prompt"),
    temperature: float | None = typer.Option(None),
    top_p: float | None = typer.Option(None, "--top-p"),
    max_tokens: int | None = typer.Option(None, "--max-tokens"),
    note: str = typer.Option("", "--note"),
) -> None:
    """Put a candidate on a share of the traffic (the evaluation gate applies), or change the share."""
    with _session(embedded=bool(model)) as s:
        specs = _targets(model, kb, guardrails, system_prompt, temperature, top_p, max_tokens) if model else None
        dep = s.deployments.canary(name, specs, percent=percent, actor=cli_actor(), note=note)
        console.print(f"{dep.name}: canary revision {dep.canary_revision} on {dep.canary_percent:g}% of requests", highlight=False)
        _draw_status(s.deployments.status(name))


@deploy_app.command("promote")
def promote(name: str = typer.Argument(...), note: str = typer.Option("", "--note")) -> None:
    """Make the canary the stable revision (all traffic)."""
    with _session() as s:
        dep = s.deployments.promote(name, actor=cli_actor(), note=note)
        console.print(f"{dep.name}: revision {dep.stable_revision} is stable and gets all traffic", highlight=False)


@deploy_app.command("rollback")
def rollback(
    name: str = typer.Argument(...),
    to: int | None = typer.Option(
        None, "--to", help="Make this revision stable (default: drop the canary, or go back to the previous stable)."
    ),
    reason: str = typer.Option("", "--reason"),
) -> None:
    """Send all traffic back to the stable revision, or the stable revision back to an earlier one."""
    with _session() as s:
        dep = s.deployments.rollback(name, actor=cli_actor(), reason=reason, to_revision=to)
        console.print(f"{dep.name}: revision {dep.stable_revision} is stable and gets all traffic", highlight=False)


@deploy_app.command("update")
def update(
    name: str = typer.Argument(...),
    model: list[str] = typer.Option(..., "--model", "-m", help=_MODEL_HELP),
    kb: str | None = typer.Option(None, "--kb"),
    guardrails: str | None = typer.Option(None, "--guardrails"),
    system_prompt: str | None = typer.Option(None, "--system-prompt"),
    temperature: float | None = typer.Option(None),
    top_p: float | None = typer.Option(None, "--top-p"),
    max_tokens: int | None = typer.Option(None, "--max-tokens"),
    note: str = typer.Option("", "--note"),
) -> None:
    """A new revision that takes all traffic at once (no canary; the gate applies)."""
    with _session(embedded=True) as s:
        dep = s.deployments.replace(
            name, _targets(model, kb, guardrails, system_prompt, temperature, top_p, max_tokens), actor=cli_actor(), note=note
        )
        console.print(f"{dep.name}: revision {dep.stable_revision} is stable and gets all traffic", highlight=False)


@deploy_app.command("rules")
def rules(
    name: str = typer.Argument(...),
    rule: list[str] = typer.Option(
        [], "--rule", help="METRIC:delta|ratio|absolute:THRESHOLD[:MIN_SAMPLES]; replaces every rule (repeatable)."
    ),
    gate: list[str] = typer.Option([], "--gate", help="METRIC>=VALUE[@DATASET[:SPLIT]]; replaces the gate (repeatable)."),
    no_gate: bool = typer.Option(False, "--no-gate", help="Remove the evaluation gate."),
    window: int | None = typer.Option(None, "--window", help="Rule window in seconds."),
    auto_rollback: bool | None = typer.Option(None, "--auto-rollback/--no-auto-rollback"),
) -> None:
    """Show or change the rollout rules, the evaluation gate and the window."""
    with _session() as s:
        gates = [] if no_gate else ([parse_gate_rule(g) for g in gate] or None)
        dep = s.deployments.configure(
            name,
            actor=cli_actor(),
            rules=[parse_rule(r) for r in rule] or None,
            gate=gates,
            window_s=window,
            auto_rollback=auto_rollback,
        )
        table = Table(title=f"{dep.name}: rollout rules (window {dep.window_s} s, auto-rollback {'on' if dep.auto_rollback else 'off'})")
        table.add_column("rule")
        table.add_column("min samples", justify="right")
        for r in dep.rules:
            table.add_row(r.describe(), str(r.min_samples))
        for g in dep.gate:
            table.add_row(f"gate: {g.describe()}", "-")
        console.print(table)


@deploy_app.command("status")
def status(name: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """The traffic split, the revisions' targets, the rule window and each rule's state."""
    with _session() as s:
        st = s.deployments.status(name)
        if as_json:
            console.print_json(json.dumps(st))
            return
        _draw_status(st)


@deploy_app.command("history")
def history(
    name: str = typer.Argument(...),
    limit: int = typer.Option(50, "-n", help="Newest events to show."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """What happened to a deployment: created, canary, traffic, promoted, rolled back (and why)."""
    with _session() as s:
        events = s.deployments.history(name, limit)
        if as_json:
            console.print_json(json.dumps([e.public_dict() for e in events]))
            return
        table = Table(title=f"{name}: history (newest first)")
        for col in ("when (UTC)", "event", "revision", "by", "reason / details"):
            table.add_column(col, overflow="fold")
        for e in events:
            extra = e.reason or ", ".join(f"{k} {v}" for k, v in e.details.items() if not isinstance(v, list | dict))
            style = "bold red" if e.kind.value in ("auto_rollback", "gate_refused") else None
            table.add_row(
                f"{e.at:%Y-%m-%d %H:%M:%S}" if e.at else "-",
                Text(e.kind.value, style=style or ""),
                str(e.revision or "-"),
                e.actor,
                escape(extra),
            )
        console.print(table)


@deploy_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """Deployments with their traffic split."""
    with _session() as s:
        deps = s.deployments.list()
        if as_json:
            console.print_json(json.dumps([d.public_dict() for d in deps]))
            return
        table = Table(title="Deployments")
        for col in ("name", "stable", "canary", "traffic", "updated (UTC)"):
            table.add_column(col, overflow="fold")
        for d in deps:
            canary = f"r{d.canary_revision} ({d.canary_percent:g}%)" if d.canary_revision else "-"
            table.add_row(
                d.name,
                f"r{d.stable_revision}",
                canary,
                _split_text(d.traffic(), d),
                f"{d.updated_at:%Y-%m-%d %H:%M}" if d.updated_at else "-",
            )
        console.print(table)


@deploy_app.command("rm")
def rm(name: str = typer.Argument(...)) -> None:
    """Delete a deployment and its history (usage and feedback stay)."""
    with _session() as s:
        s.deployments.delete(name, actor=cli_actor())
        console.print(f"removed deployment {name}")


# -- drawing --------------------------------------------------------------------------------------
def _split_text(traffic: dict[int, float], dep: Any) -> str:
    return " / ".join(f"r{k} {v:g}%" for k, v in traffic.items())


def _bar(percent: float, width: int = 40, style: str = "green") -> Text:
    filled = round(width * percent / 100.0)
    t = Text("█" * filled, style=style)
    t.append("░" * (width - filled), style="dim")
    return t


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}%" if pct else (f"{v:.3g}" if isinstance(v, float) else str(v))


def _draw_status(st: dict[str, Any]) -> None:
    name = st["name"]
    console.print(
        f"[bold]{escape(name)}[/]  generation {st['generation']}  auto-rollback {'on' if st['auto_rollback'] else 'off'}", highlight=False
    )
    roles = {st["stable_revision"]: "stable"}
    if st["canary_revision"]:
        roles[st["canary_revision"]] = "canary"
    split = Table.grid(padding=(0, 1))
    for rev, pct in st["traffic"].items():
        role = roles.get(int(rev), "")
        split.add_row(f"r{rev} {role:<6}", _bar(pct, style="yellow" if role == "canary" else "green"), f"{pct:g}%")
    console.print(split)
    targets = Table(title="targets")
    for col in ("revision", "role", "model", "model version", "weight", "knowledge base", "guardrails"):
        targets.add_column(col, overflow="fold")
    for key in ("stable", "canary"):
        rev = st.get(key)
        if not rev:
            continue
        for t in rev["targets"]:
            targets.add_row(
                f"r{rev['number']}",
                key,
                escape(t["model"]),
                escape(t.get("version", "")),
                str(t["weight"]),
                escape(t.get("knowledge_base") or "-"),
                escape(t.get("guardrail_policy") or "-"),
            )
    console.print(targets)
    w = st["window"]
    window = Table(title=f"window: last {w['window_s']} s (since {w['since'][11:19]} UTC)")
    for col in ("revision", "requests", "error rate", "block rate", "p95 latency", "ratings", "negative"):
        window.add_column(col, justify="right")
    for rev, v in w["revisions"].items():
        window.add_row(
            f"r{rev} {roles.get(int(rev), '')}",
            str(v["requests"]),
            _fmt(v["error_rate"], True),
            _fmt(v["guardrail_block_rate"], True),
            f"{v['latency_p95_s']:.2f} s" if v["latency_p95_s"] is not None else "-",
            str(v["ratings"]),
            _fmt(v["negative_feedback_rate"], True),
        )
    console.print(window)
    if st["checks"]:
        checks = Table(title="rollout rules (canary vs stable)")
        for col in ("rule", "canary", "stable", "samples", "state"):
            checks.add_column(col)
        for c in st["checks"]:
            pct = c["rule"]["metric"] != "latency_p95"
            state = (
                Text("BREACH", style="bold red")
                if c["breached"]
                else Text("ok", style="green")
                if c["judged"]
                else Text(f"waiting ({c['samples']}/{c['rule']['min_samples']})", style="dim")
            )
            checks.add_row(c["description"], _fmt(c["canary"], pct), _fmt(c["stable"], pct), str(c["samples"]), state)
        console.print(checks)
