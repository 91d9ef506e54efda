"""``plinth explain RESPONSE_ID``: which cited passages and which words of the question a logged
chat answer depends on (leave-one-out ablation and occlusion on the torch runtime; ADR 0096)."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from plinth.cli.common import console, get_services, get_settings


def explain(
    response_id: str = typer.Argument(..., help="A /v1 chat response id (chatcmpl-...), as the request log holds it."),
    max_passages: int = typer.Option(8, "--max-passages", min=1, max=16, help="Cited passages to ablate."),
    max_spans: int = typer.Option(16, "--max-spans", min=0, max=48, help="Spans of the question to occlude."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Explain one logged answer: the passages and question words it depends on."""
    s = get_services(get_settings())
    try:
        with console.status("scoring the answer with each passage and question span left out"):
            out = s.explain.explain_blocking(response_id, max_passages, max_spans)
        if as_json:
            console.print_json(json.dumps(out))
            return
        console.print(f"[bold]{escape(out['response_id'])}[/] answered by {escape(out['served_model'])}")
        console.print(f"[dim]question (as logged, redacted):[/] {escape(out['question'])}")
        console.print(f"[dim]answer (as logged, redacted):[/] {escape(out['answer'][:500])}")
        console.print(
            f"[dim]log-likelihood {out['log_likelihood']:.2f} nats over {out['answer_tokens']} tokens; "
            f"{out['cost']['forward_passes']} forward passes in {out['cost']['seconds']:.2f} s[/]"
        )
        if out["passages"]:
            table = Table(title="passages the answer depends on (drop in log-likelihood without each)")
            for col in ("rank", "[n]", "document", "heading", "drop (nats)", "per token"):
                table.add_column(col, overflow="fold")
            for rank, p in enumerate(out["passages"], start=1):
                style = "bold green" if rank == 1 and p["drop"] > 0 else None
                table.add_row(
                    str(rank),
                    str(p["index"]),
                    escape(str(p["document"])),
                    escape(str(p["heading"] or "")),
                    f"{p['drop']:+.3f}",
                    f"{p['drop_per_token']:+.4f}",
                    style=style,
                )
            console.print(table)
            wp = out.get("without_passages") or {}
            console.print(f"[dim]without any passage: drop {wp.get('drop', 0):+.3f} nats[/]")
        else:
            console.print("[dim]no passages were retrieved for this answer[/]")
        if out["prompt_tokens"]:
            top = max((abs(t["drop"]) for t in out["prompt_tokens"]), default=0.0) or 1.0
            line = []
            for t in out["prompt_tokens"]:
                weight = t["drop"] / top
                style = "bold red" if weight > 0.5 else "red" if weight > 0.2 else "dim" if weight < 0.05 else ""
                line.append(f"[{style}]{escape(t['text'])}[/]" if style else escape(t["text"]))
            console.print("question words that mattered (stronger red: more): " + " ".join(line))
    finally:
        s.close()
