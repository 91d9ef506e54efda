"""``plinth datasets``: add, list, show, versions, rows, diff, rm."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from plinth.cli.common import console, get_services, get_settings, make_progress
from plinth.errors import ErrorCode, PlinthError

datasets_app = typer.Typer(help="Versioned datasets: add, list, show, rows, diff, rm.", no_args_is_help=True)


@contextlib.contextmanager
def _session() -> Iterator[Any]:
    # The embedded model is registered if needed: its tokenizer counts the tokens.
    services = get_services(get_settings())
    try:
        yield services
    finally:
        services.close()


@datasets_app.command("add")
def add(
    path: Path | None = typer.Argument(None, help="A JSONL (chat messages or prompt/completion), CSV or Parquet file."),
    name: str = typer.Option(..., "--name", "-n", help="Dataset name; a new version if it exists."),
    url: str | None = typer.Option(
        None, "--url", help="Fetch the file from an http(s) URL instead (through the outbound rules); recorded as the source."
    ),
    format: str | None = typer.Option(None, "--format", help="jsonl, csv or parquet (default: from the file)."),
    validation_fraction: float = typer.Option(0.1, "--validation-fraction", help="Rows held out for validation (0-0.5)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the train/validation split."),
    note: str | None = typer.Option(None, "--note", help="What changed in this version."),
    description: str | None = typer.Option(None, "--description", help="What the dataset is."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model whose tokenizer counts tokens (default: the default model)."),
) -> None:
    """Validate a file or a URL's file (every problem with its line) and add it as a new version."""
    if (path is None) == (url is None):
        raise PlinthError(ErrorCode.INVALID_REQUEST, "give a dataset file PATH, or --url (not both)")
    with _session() as services:
        if url is not None:
            version, created = services.datasets.add_url(
                url,
                name,
                source_format=format,
                validation_fraction=validation_fraction,
                seed=seed,
                note=note,
                description=description,
                model=model,
            )
            _print_added(version, created)
            return
        assert path is not None
        try:
            size = path.stat().st_size if path.is_file() else None
        except (OSError, ValueError):  # unreadable, or a NUL byte: the add itself says why
            size = None
        with make_progress() as progress:
            task = progress.add_task(f"Validating {path.name}", total=size)
            version, created = services.datasets.add(
                path,
                name,
                source_format=format,
                validation_fraction=validation_fraction,
                seed=seed,
                note=note,
                description=description,
                model=model,
                progress=lambda n: progress.advance(task, n),
            )
        _print_added(version, created)


def _print_added(version: Any, created: bool) -> None:
    if created:
        console.print(
            f"[green]added[/] {version.ref}: {version.rows} rows ({version.format.value}), "
            f"{version.train_rows} train / {version.validation_rows} validation, {_tokens(version)}"
        )
    else:
        console.print(f"[yellow]unchanged[/]: {version.ref} already has exactly these rows and split")


def _tokens(v: Any) -> str:
    tokens = v.stats.get("tokens")
    if not tokens:
        return f"tokens not counted ({v.stats.get('tokenizer', {}).get('error', 'no tokenizer')})"
    return f"{tokens['total']} tokens (mean {tokens['mean']}/row, max {tokens['max']}) with {v.stats['tokenizer']['model']}"


@datasets_app.command("list")
def list_datasets(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Datasets with their latest version."""
    with _session() as services:
        items = services.datasets.list()
        if as_json:
            console.print_json(json.dumps([{**d.public_dict(), "latest": v.public_dict()} for d, v in items]))
            return
        table = Table(title="Datasets")
        for col in ("name", "latest", "form", "rows", "train/val", "tokens", "updated"):
            table.add_column(col)
        for d, v in items:
            tokens = v.stats.get("tokens") or {}
            table.add_row(
                d.name,
                v.ref,
                v.format.value,
                str(v.rows),
                f"{v.train_rows}/{v.validation_rows}",
                str(tokens.get("total", "-")),
                d.updated_at.strftime("%Y-%m-%d %H:%M") if d.updated_at else "-",
            )
        console.print(table)


@datasets_app.command("show")
def show(
    ref: str = typer.Argument(..., help="NAME or NAME@VERSION."),
    rows: int = typer.Option(3, "--rows", help="Rows to preview."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """A version: rows, split, token statistics, digests, source; and a preview."""
    with _session() as services:
        v = services.datasets.get(ref)
        if as_json:
            console.print_json(json.dumps(v.public_dict()))
            return
        table = Table(show_header=False, title=v.ref)
        table.add_row("form", v.format.value)
        table.add_row(
            "rows",
            f"{v.rows} ({v.train_rows} train, {v.validation_rows} validation; "
            f"fraction {v.split.get('validation_fraction')}, seed {v.split.get('seed')})",
        )
        st = v.stats
        if st.get("tokens"):
            t, tr = st["tokens"], st["trained_tokens"]
            table.add_row(
                "tokens",
                f"{t['total']} (per row min {t['min']}, mean {t['mean']}, p50 {t['p50']}, "
                f"p95 {t['p95']}, max {t['max']}) with {st['tokenizer']['model']}",
            )
            table.add_row("trained tokens", f"{tr['total']} (assistant / completion; mean {tr['mean']} per row)")
            table.add_row("train / validation tokens", f"{st['train_tokens']} / {st['validation_tokens']}")
            if st.get("rows_over_context"):
                table.add_row(
                    "over the context", f"[yellow]{st['rows_over_context']} rows longer than {st['tokenizer']['context_length']} tokens[/]"
                )
        else:
            table.add_row("tokens", f"not counted: {st.get('tokenizer', {}).get('error', '-')}")
        if st.get("messages"):
            table.add_row("messages per row", f"mean {st['messages']['mean']}, max {st['messages']['max']}")
        table.add_row("duplicates", str(st.get("duplicates", 0)))
        if st.get("ignored_fields"):
            table.add_row("ignored fields", ", ".join(f"{k} ({n})" for k, n in st["ignored_fields"].items()))
        table.add_row("digest", v.digest)
        table.add_row("source", f"{v.source_name} ({v.source_format.value}, {v.source_digest})")
        if v.note:
            table.add_row("note", escape(v.note))
        table.add_row("created", v.created_at.isoformat(timespec="seconds") if v.created_at else "-")
        console.print(table)
        if rows > 0:
            page, total = services.datasets.rows(v.ref, split="all", limit=min(rows, 1000))
            for row in page:
                console.print(escape(json.dumps(row, ensure_ascii=False)), highlight=False, soft_wrap=True)
            if total > len(page):
                console.print(f"[dim]... {total - len(page)} more (plinth datasets rows {v.ref})[/]")


@datasets_app.command("versions")
def versions(name: str = typer.Argument(..., help="Dataset name.")) -> None:
    """Every version of a dataset."""
    with _session() as services:
        table = Table(title=f"Versions of {name}")
        for col in ("version", "rows", "train/val", "tokens", "source", "note", "created"):
            table.add_column(col)
        for v in services.datasets.versions(name):
            table.add_row(
                v.ref,
                str(v.rows),
                f"{v.train_rows}/{v.validation_rows}",
                str((v.stats.get("tokens") or {}).get("total", "-")),
                v.source_name or "-",
                escape(v.note or ""),
                v.created_at.strftime("%Y-%m-%d %H:%M") if v.created_at else "-",
            )
        console.print(table)


@datasets_app.command("rows")
def rows_cmd(
    ref: str = typer.Argument(..., help="NAME or NAME@VERSION."),
    split: str = typer.Option("all", "--split", help="train, validation or all."),
    offset: int = typer.Option(0, "--offset"),
    limit: int = typer.Option(20, "--limit"),
) -> None:
    """Print rows as JSON lines (normalised form; with --split all each row has its split)."""
    with _session() as services:
        page, _total = services.datasets.rows(ref, split=split, offset=offset, limit=limit)
        for row in page:
            console.print(escape(json.dumps(row, ensure_ascii=False)), highlight=False, soft_wrap=True)


@datasets_app.command("diff")
def diff(
    before: str = typer.Argument(..., help="NAME@VERSION"),
    after: str = typer.Argument(None, help="NAME@VERSION, or a version number of the same dataset (default: its latest)."),
    samples: int = typer.Option(3, "--samples", help="Rows to show of each kind."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Rows added, removed and changed between two versions."""
    from plinth.tuning.datasets import parse_ref

    base = parse_ref(before)
    if after is None:
        after = base.name
    elif after.isdigit():
        after = f"{base.name}@{after}"
    with _session() as services:
        d = services.datasets.diff(before, after, samples=samples)
        if as_json:
            console.print_json(json.dumps(d.public_dict()))
            return
        console.print(
            f"{d.before} -> {d.after}: [green]+{d.added} added[/], [red]-{d.removed} removed[/], "
            f"[yellow]~{d.changed} changed[/], {d.unchanged} unchanged, {d.moved_split} moved between train and validation"
        )
        for kind, colour, sign in (("added", "green", "+"), ("removed", "red", "-")):
            for row in d.samples.get(kind, []):
                console.print(f"[{colour}]{sign} {escape(json.dumps(row, ensure_ascii=False))}[/]", highlight=False, soft_wrap=True)
        for pair in d.samples.get("changed", []):
            console.print(f"[yellow]~ {escape(json.dumps(pair['before'], ensure_ascii=False))}[/]", highlight=False, soft_wrap=True)
            console.print(f"[yellow]  -> {escape(json.dumps(pair['after'], ensure_ascii=False))}[/]", highlight=False, soft_wrap=True)


@datasets_app.command("rm")
def rm(name: str = typer.Argument(..., help="Dataset name."), yes: bool = typer.Option(False, "--yes", help="Do not ask.")) -> None:
    """Remove a dataset with all its versions."""
    if not yes and not typer.confirm(f"remove dataset {name} and all its versions?"):
        raise PlinthError(ErrorCode.INVALID_REQUEST, "not removed")
    with _session() as services:
        removed = services.datasets.delete(name)
        console.print(f"[green]removed[/] {name} ({len(removed)} versions)")
