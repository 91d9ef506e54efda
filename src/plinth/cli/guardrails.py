"""``plinth guardrails``: policies (list, show, versions, apply, rm), test a text, evaluate a
policy on a labelled file, events, detectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from plinth.cli.common import console, err_console, get_services, get_settings

guardrails_app = typer.Typer(
    help="Guardrails: policies of detectors (PII/PHI, secrets, toxicity, injection, topic, groundedness) that block, redact or flag.",
    no_args_is_help=True,
)


def _services() -> Any:
    return get_services(get_settings(), embedded=False)


def _attached(s: Any, name: str) -> list[str]:
    from plinth.guardrails.policy import split_ref

    return [m for m, a in s.store.list_attachments().items() if a.guardrail_policy and split_ref(a.guardrail_policy)[0] == name]


@guardrails_app.command("list")
def gr_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The policies, with their newest version and what they are attached to."""
    s = _services()
    try:
        policies = s.guardrails.list()
        attachments = s.store.list_attachments()
        rows = []
        for p in policies:
            attached = sorted(m for m, a in attachments.items() if a.guardrail_policy and a.guardrail_policy.split("@")[0] == p.name)
            rows.append({**p.public_dict(), "attached_to": attached})
        if as_json:
            console.print_json(json.dumps(rows))
            return
        table = Table(title="Guardrail policies")
        for col in ("name", "version", "description", "attached to"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(
                r["name"] + (" (built in)" if r["builtin"] else ""),
                str(r["latest_version"]),
                r["description"] or "-",
                ", ".join(r["attached_to"]) or "-",
            )
        console.print(table)
    finally:
        s.close()


@guardrails_app.command("show")
def gr_show(
    policy: str = typer.Argument(..., help="NAME or NAME@VERSION"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with the digest) instead of YAML."),
) -> None:
    """One version of a policy (the newest by default) as YAML."""
    s = _services()
    try:
        pv = s.guardrails.get(policy)
        if as_json:
            console.print_json(json.dumps(pv.public_dict()))
            return
        console.print(f"# {pv.ref}  {pv.digest}  created {pv.created_at:%Y-%m-%d %H:%M:%S %Z}", markup=False, highlight=False)
        console.print(s.guardrails.as_yaml(pv), markup=False, highlight=False, end="")
    finally:
        s.close()


@guardrails_app.command("versions")
def gr_versions(name: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every version of a policy."""
    s = _services()
    try:
        versions = s.guardrails.versions(name)
        if as_json:
            console.print_json(json.dumps([{k: v for k, v in pv.public_dict().items() if k != "spec"} for pv in versions]))
            return
        table = Table(title=f"Versions of {name}")
        for col in ("version", "created", "digest", "rules"):
            table.add_column(col)
        for pv in versions:
            rules = ", ".join(f"{r['id']}:{r['action']}" for r in pv.spec.get("rules", []))
            table.add_row(str(pv.version), f"{pv.created_at:%Y-%m-%d %H:%M:%S}", pv.digest[7:19], rules)
        console.print(table)
    finally:
        s.close()


@guardrails_app.command("apply")
def gr_apply(path: Path = typer.Argument(..., help="A policy file (YAML or JSON).")) -> None:
    """Validate a policy file and store it as the policy's next version (nothing changes when
    it equals the newest). Every problem in the file is reported at once."""
    s = _services()
    try:
        pv, created = s.guardrails.apply_file(path)
        if created:
            console.print(f"[green]stored[/] {pv.ref} ({len(pv.spec['rules'])} rules, {pv.digest[:19]})")
        else:
            console.print(f"unchanged: {pv.ref} already has this content")
    finally:
        s.close()


@guardrails_app.command("rm")
def gr_rm(name: str) -> None:
    """Remove a policy and all its versions (refused while it is attached to a model)."""
    s = _services()
    try:
        s.guardrails.delete(name, attached_to=_attached(s, name))
        console.print(f"[green]removed[/] {name}")
    finally:
        s.close()


@guardrails_app.command("test")
def gr_test(
    policy: str = typer.Argument(..., help="NAME or NAME@VERSION"),
    text: str = typer.Argument(..., help="The text to check."),
    direction: str = typer.Option("input", "--direction", "-d", help="input, output or retrieved."),
    passage: list[str] | None = typer.Option(None, "--passage", help="A retrieved passage, for groundedness (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check a text as the policy would on a request (or an answer with --direction output):
    the text after redaction, whether it is blocked, and every finding."""
    from plinth.domain.guardrails import Direction
    from plinth.errors import ErrorCode, PlinthError

    try:
        d = Direction(direction)
    except ValueError:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"--direction must be input, output or retrieved, not {direction!r}") from None
    s = _services()
    try:
        pv = s.guardrails.get(policy)
        result = s.guardrails.check(pv.ref, text, d, [{"text": p} for p in passage or []])
        findings = [f.public_dict() for f in result.findings]
        if as_json:
            console.print_json(
                json.dumps(
                    {
                        "policy": pv.ref,
                        "blocked": result.blocked,
                        "safe_answer": result.safe_answer,
                        "text": result.text,
                        "findings": findings,
                    }
                )
            )
            return
        if result.blocked:
            console.print(f"[bold red]BLOCKED[/] by {pv.ref}; the answer would be:")
            console.print("  " + escape(result.safe_answer or ""))
        else:
            console.print(f"[bold green]allowed[/] by {pv.ref}" + (" (redacted)" if result.redacted else ""))
            console.print("  " + escape(result.text))
        if findings:
            table = Table(title="Findings")
            for col in ("rule", "label", "action", "score", "span", "reason"):
                table.add_column(col, overflow="fold")
            for f in findings:
                span = f"{f['start']}-{f['end']}" if "start" in f else "-"
                table.add_row(f["detector"], f["label"], f["action"], f"{f['score']:.2f}", span, escape(f["reason"]))
            console.print(table)
        else:
            console.print("no findings")
    finally:
        s.close()


@guardrails_app.command("eval")
def gr_eval(
    policy: str = typer.Argument(..., help="NAME or NAME@VERSION"),
    data: Path = typer.Option(..., "--data", help="Labelled JSONL: PII spans, or toxicity / injection / topic labels."),
    detector: str | None = typer.Option(None, "--detector", help="The rule id, when the policy has several of the kind."),
    show: int = typer.Option(20, "--show", help="False positives and negatives listed at most (each)."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole report as JSON."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Also write the JSON report to this file."),
) -> None:
    """Precision, recall and F1 of the policy's rule on a labelled file (per entity type for
    PII), with the false positives and negatives."""
    from plinth.guardrails.evaluation import read_jsonl

    records = read_jsonl(data)
    s = _services()
    try:
        pv = s.guardrails.get(policy)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        ) as progress:
            task = progress.add_task(f"Evaluating {pv.ref} on {data.name}", total=len(records))
            report = s.guardrails.evaluate(pv.ref, records, detector=detector, progress=lambda n: progress.advance(task, n))
        out = report.as_dict()
        if output is not None:
            output.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if as_json:
            console.print_json(json.dumps(out, ensure_ascii=False))
            return
        _print_report(out, show)
    finally:
        s.close()


def _print_report(out: dict[str, Any], show: int) -> None:
    o = out["overall"]
    console.print(f"[bold]{out['policy']}[/] rule [bold]{out['detector']}[/] on {out['items']} {out['task']} items")
    table = Table(title="Precision / recall" + (" (exact span match)" if out["task"] == "pii" else ""))
    cols = ["label", "tp", "fp", "fn", "precision", "recall", "f1"]
    if "false_positive_rate" in o:
        cols += ["benign flagged", "accuracy"]
    for col in cols:
        table.add_column(col, justify="right" if col != "label" else "left")

    def row(label: str, c: dict[str, Any], bold: bool = False) -> None:
        cells = [label, str(c["tp"]), str(c["fp"]), str(c["fn"]), f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}"]
        if "false_positive_rate" in o:
            cells += [f"{c.get('false_positive_rate', 0):.3f}", f"{c.get('accuracy', 0):.3f}"]
        table.add_row(*[f"[bold]{x}[/]" if bold else x for x in cells])

    if out["task"] == "pii":
        for label, c in out["by_label"].items():
            row(label, c)
    row("all" if out["task"] == "pii" else out["task"], o, bold=True)
    console.print(table)
    for title, items in (("False positives", out["false_positives"]), ("False negatives", out["false_negatives"])):
        if not items:
            continue
        console.print(f"[bold]{title}[/] ({len(items)}{', first ' + str(show) if len(items) > show else ''}):")
        for it in items[:show]:
            if out["task"] == "pii":
                console.print(f"  {it['id']}  {it['label']}: {escape(it['context'])}", highlight=False)
            else:
                console.print(f"  {it['id']}  score {it['score']:.2f}: {escape(it['text'][:160])}", highlight=False)


@guardrails_app.command("events")
def gr_events(
    model: str | None = typer.Option(None, "--model", "-m", help="Only this served model id."),
    policy: str | None = typer.Option(None, "--policy", help="Only this policy."),
    limit: int = typer.Option(50, "--limit", "-n", help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Guardrail findings of served requests (labels and offsets, never the text)."""
    s = _services()
    try:
        events = s.guardrails.events(model_id=model, policy=policy, limit=limit)
        if as_json:
            console.print_json(json.dumps([e.public_dict() for e in events]))
            return
        table = Table(title="Guardrail events")
        for col in ("time", "model", "policy", "direction", "rule", "label", "action", "score", "span"):
            table.add_column(col, overflow="fold")
        for e in events:
            span = f"{e.start}-{e.end}" if e.start is not None else "-"
            when = f"{e.created_at:%Y-%m-%d %H:%M:%S}" if e.created_at else "-"
            table.add_row(
                when,
                e.model_id,
                f"{e.policy}@{e.policy_version}",
                e.direction.value,
                e.detector,
                e.label,
                e.action.value,
                f"{e.score:.2f}",
                span,
            )
        console.print(table)
    finally:
        s.close()


@guardrails_app.command("detectors")
def gr_detectors(as_json: bool = typer.Option(False, "--json", help="Print JSON with each kind's options.")) -> None:
    """The detector kinds a policy rule can use."""
    from plinth.guardrails.service import GuardrailService

    kinds = GuardrailService.detectors()
    if as_json:
        console.print_json(json.dumps(kinds))
        return
    table = Table(title="Detectors")
    for col in ("kind", "labels", "directions", "description"):
        table.add_column(col, overflow="fold")
    for k in kinds:
        table.add_row(k["kind"], ", ".join(k["labels"]), ", ".join(k["directions"]), k["description"])
    console.print(table)
