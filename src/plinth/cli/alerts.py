"""``plinth alerts``: alert rules (list, show, create from flags or a YAML file, delete), evaluate
one now, test its actions, their history of state changes, the signals, and the rules as a
Prometheus rules file (ADR 0094)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from plinth.cli.common import console, err_console, get_services, get_settings
from plinth.errors import ErrorCode, PlinthError
from plinth.usage.service import parse_time

alerts_app = typer.Typer(
    help="Alert rules over monitoring signals, with a 'for' duration, history and actions (webhook, rollback, pipeline).",
    no_args_is_help=True,
)

_STATE_STYLE = {"firing": "bold red", "pending": "yellow", "inactive": "green", "resolved": "green"}


def _services() -> Any:
    return get_services(get_settings(), embedded=False)


def _value(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}"


def _state(state: str) -> str:
    return f"[{_STATE_STYLE.get(state, '')}]{state}[/]"


@alerts_app.command("list")
def alerts_list(
    deployment: str | None = typer.Option(None, "--deployment", "-d", help="Only the rules watching this deployment."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The rules with their state and last value."""
    s = _services()
    try:
        rules = [r.public_dict() for r in s.alerts.list(deployment=deployment)]
        if as_json:
            console.print_json(json.dumps(rules))
            return
        table = Table(title="Alert rules")
        for col in ("name", "state", "severity", "rule", "last value", "actions"):
            table.add_column(col, overflow="fold")
        for r in rules:
            table.add_row(
                escape(r["name"]) + ("" if r["enabled"] else " (disabled)"),
                _state(r["state"]),
                r["severity"],
                escape(r["description"]),
                _value(r["last_value"]),
                ", ".join(a["kind"] for a in r["actions"]) or "-",
            )
        console.print(table)
    finally:
        s.close()


@alerts_app.command("show")
def alerts_show(name: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """One rule: its definition, state and latest state changes."""
    s = _services()
    try:
        rule = s.alerts.get(name).public_dict()
        events = [e.public_dict() for e in s.alerts.events(rule=name, limit=10)]
        if as_json:
            console.print_json(json.dumps({**rule, "events": events}))
            return
        console.print(f"[bold]{escape(rule['name'])}[/] {_state(rule['state'])} since {rule['state_since'] or '-'}")
        console.print(f"  {escape(rule['description'])}")
        console.print(f"  severity {rule['severity']}, min samples {rule['min_samples']}, enabled {rule['enabled']}")
        if rule["runbook"]:
            console.print(f"  runbook: {escape(rule['runbook'])}")
        for a in rule["actions"]:
            console.print(f"  action: {escape(json.dumps(a))}")
        console.print(f"  last value {_value(rule['last_value'])} at {rule['last_evaluated_at'] or '-'}")
        _events_table(events, f"latest state changes of {name}")
    finally:
        s.close()


def _definitions(path: Path) -> list[dict[str, Any]]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"cannot read {path}: {e}", param="file") from None
    except yaml.YAMLError as e:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{path} is not valid YAML: {e}", param="file") from None
    if isinstance(doc, dict) and "rules" in doc:
        doc = doc["rules"]
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list) or not all(isinstance(d, dict) for d in doc):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{path}: a rule, a list of rules or 'rules:' with a list", param="file")
    return doc


@alerts_app.command("create")
def alerts_create(
    name: str | None = typer.Argument(None, help="The rule's name (not with -f)."),
    file: Path | None = typer.Option(None, "--file", "-f", help="A YAML file: one rule, a list, or 'rules:' with a list."),
    signal: str | None = typer.Option(None, "--signal", help="A signal (plinth alerts signals)."),
    deployment: str | None = typer.Option(None, "--deployment", "-d"),
    revision: str | None = typer.Option(None, "--revision", help="A revision number, stable or canary (default: all)."),
    comparison: str = typer.Option(">", "--comparison", help=">, <, >= or <="),
    threshold: float | None = typer.Option(None, "--threshold"),
    window: str = typer.Option("5m", "--window", help="The signal's window (90s, 5m, 1h)."),
    for_: str = typer.Option("0s", "--for", help="How long the condition must hold before the rule fires."),
    min_samples: int = typer.Option(1, "--min-samples"),
    severity: str = typer.Option("warning", "--severity", help="critical, warning or info."),
    runbook: str = typer.Option("", "--runbook", help="What to do (a URL is sent as runbook_url)."),
    webhook: list[str] = typer.Option([], "--webhook", help="Notify this URL (Alertmanager payload) on firing and resolved."),
    rollback: bool = typer.Option(False, "--rollback", help="Roll the deployment's canary back when the rule fires."),
    pipeline: str | None = typer.Option(None, "--pipeline", help="Start this pipeline when the rule fires."),
    replace: bool = typer.Option(False, "--replace", help="Replace rules of the same name (with -f)."),
) -> None:
    """Create a rule from flags, or every rule of a YAML file."""
    if file is not None:
        if name is not None or signal is not None:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "give either -f FILE or a name and flags, not both", param="file")
        definitions = _definitions(file)
    else:
        if name is None or signal is None or deployment is None or threshold is None:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "give NAME, --signal, --deployment and --threshold (or -f FILE)", param="name")
        actions: list[dict[str, Any]] = [{"kind": "webhook", "url": u} for u in webhook]
        if rollback:
            actions.append({"kind": "rollback"})
        if pipeline:
            actions.append({"kind": "pipeline", "pipeline": pipeline})
        d: dict[str, Any] = {
            "name": name,
            "signal": signal,
            "deployment": deployment,
            "comparison": comparison,
            "threshold": threshold,
            "window": window,
            "for": for_,
            "min_samples": min_samples,
            "severity": severity,
            "runbook": runbook,
            "actions": actions,
        }
        if revision is not None:
            d["revision"] = revision
        definitions = [d]
    s = _services()
    try:
        for i, d in enumerate(definitions):
            rule_name = d.get("name")
            if replace and isinstance(rule_name, str) and s.alerts.store.find_alert_rule(rule_name) is not None:
                rule = s.alerts.update(rule_name, d)
                verb = "replaced"
            else:
                try:
                    rule = s.alerts.create(d)
                except PlinthError as e:
                    if len(definitions) > 1:
                        raise PlinthError(e.code, f"rule {i + 1} ({rule_name!r}): {e.message}", param=e.param) from None
                    raise
                verb = "created"
            console.print(f"{verb} alert rule [bold]{escape(rule.name)}[/]: {escape(rule.public_dict()['description'])}")
    finally:
        s.close()


@alerts_app.command("delete")
def alerts_delete(name: str) -> None:
    """Delete a rule and its history."""
    s = _services()
    try:
        s.alerts.delete(name)
        console.print(f"deleted alert rule [bold]{escape(name)}[/]")
    finally:
        s.close()


@alerts_app.command("evaluate")
def alerts_evaluate(
    name: str | None = typer.Argument(None, help="One rule (default: every enabled rule)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Evaluate now: read the signal, change the state, run the actions of a change."""
    s = _services()
    try:
        results = [s.alerts.evaluate(name)] if name else s.alerts.evaluate_all()
        out = [r.public_dict() for r in results]
        if as_json:
            console.print_json(json.dumps(out))
            return
        for r in out:
            rule = r["rule"]
            line = f"[bold]{escape(rule['name'])}[/]: value {_value(r['value'])} ({r['samples']} samples), "
            line += "condition holds" if r["holds"] else "condition does not hold"
            line += f" -> {_state(rule['state'])}"
            if r["event"] is not None:
                line += f" ({r['event']['from_state']} -> {r['event']['to_state']})"
            console.print(line)
            for d in (r["event"] or {}).get("delivered", []):
                mark = "[green]ok[/]" if d["ok"] else "[red]failed[/]"
                console.print(f"  {d['kind']}: {mark} {escape(d['message'])}")
        if not out:
            console.print("no enabled alert rules")
    finally:
        s.close()


@alerts_app.command("test")
def alerts_test(name: str) -> None:
    """Run a rule's actions once with a test alert (rollback and pipeline change nothing)."""
    s = _services()
    try:
        for d in s.alerts.test(name):
            mark = "[green]ok[/]" if d["ok"] else "[red]failed[/]"
            console.print(f"{d['kind']}: {mark} {escape(d['message'])}")
    finally:
        s.close()


def _events_table(events: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title)
    for col in ("at", "rule", "change", "value", "actions"):
        table.add_column(col, overflow="fold")
    for e in events:
        acts = ", ".join(f"{d['kind']} {'ok' if d['ok'] else 'failed'}" for d in e["delivered"]) or "-"
        table.add_row((e["at"] or "")[:19], escape(e["rule"]), f"{e['from_state']} -> {_state(e['to_state'])}", _value(e["value"]), acts)
    console.print(table)


@alerts_app.command("events")
def alerts_events(
    rule: str | None = typer.Option(None, "--rule", "-r"),
    since: str | None = typer.Option(None, "--since", help="ISO time or a duration back from now (15m, 24h, 7d)."),
    limit: int = typer.Option(50, "-n"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The history of state changes, newest first."""
    s = _services()
    try:
        events = [e.public_dict() for e in s.alerts.events(rule=rule, since=parse_time(since, "since"), limit=limit)]
        if as_json:
            console.print_json(json.dumps(events))
            return
        _events_table(events, "Alert state changes")
    finally:
        s.close()


@alerts_app.command("signals")
def alerts_signals(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The signals a rule may watch and the action kinds."""
    s = _services()
    try:
        sigs, kinds = s.alerts.signals(), s.alerts.action_kinds()
        if as_json:
            console.print_json(json.dumps({"signals": sigs, "actions": kinds}))
            return
        table = Table(title="Alert signals")
        for col in ("signal", "unit", "source", "prometheus", "description"):
            table.add_column(col, overflow="fold")
        for sg in sigs:
            table.add_row(sg["name"], sg["unit"], sg["source"], "yes" if sg["prometheus"] else "no", escape(sg["description"]))
        console.print(table)
        for k in kinds:
            console.print(f"action [bold]{k['kind']}[/] (on {', '.join(k['on'])}): {escape(k['description'])}")
    finally:
        s.close()


@alerts_app.command("export")
def alerts_export(
    prometheus: bool = typer.Option(True, "--prometheus", help="A Prometheus rules file (the only format)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file (default: print)."),
) -> None:
    """The rules as a Prometheus rules file (promtool check rules accepts it); rules whose
    signal has no Prometheus equivalent are listed as left out."""
    s = _services()
    try:
        text, skipped = s.alerts.export_prometheus()
    finally:
        s.close()
    if output is None:
        console.file.write(text)  # as it is: no wrapping, no markup
    else:
        output.write_text(text, encoding="utf-8")
        err_console.print(f"wrote {output}")
    for sk in skipped:
        err_console.print(f"not exported: {escape(sk['rule'])}: {escape(sk['reason'])}")
