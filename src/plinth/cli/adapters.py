"""``plinth adapters``: LoRA adapters of catalog models, served as ``BASE:NAME``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from plinth.cli.common import console, get_services, get_settings, make_progress, size_text, tree_size
from plinth.errors import ErrorCode, PlinthError

adapters_app = typer.Typer(help="LoRA adapters of catalog models, served as BASE:NAME.", no_args_is_help=True)


# -- adapters --------------------------------------------------------------------------------
@adapters_app.command("add")
def adapters_add(
    base: str = typer.Argument(..., help="The base model in the catalog."),
    path: str = typer.Argument(..., help="A llama.cpp LoRA GGUF or a PEFT adapter directory."),
    name: str | None = typer.Option(None, "--name", help="Adapter name (default: from the file name)."),
) -> None:
    """Import a LoRA adapter; it is served at once as the model id BASE:NAME."""
    services = get_services(get_settings())
    try:
        src = Path(path).expanduser()
        with make_progress() as progress:
            task = progress.add_task(f"Importing {src.name}", total=tree_size(src) or None)
            record = services.catalog.add_adapter(base, src, name=name, progress=lambda n: progress.advance(task, n))
        console.print(f"[green]added[/] {record.model_id} ({record.format.value}, rank {record.rank}, {size_text(record.size_bytes)})")
    finally:
        services.close()


@adapters_app.command("list")
def adapters_list(
    base: str | None = typer.Argument(None, help="Only this base model's adapters."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List adapters."""
    services = get_services(get_settings())
    try:
        if base is not None:
            services.catalog.get(base)
        records = services.catalog.list_adapters(base)
        if as_json:
            console.print_json(json.dumps([r.public_dict() for r in records]))
            return
        table = Table(title="Adapters")
        for col in ("model id", "format", "rank", "alpha", "targets", "size", "llama.cpp form"):
            table.add_column(col)
        for r in records:
            table.add_row(
                r.model_id,
                r.format.value,
                str(r.rank or "-"),
                str(r.alpha or "-"),
                ",".join(r.target_modules),
                size_text(r.size_bytes),
                "yes" if r.gguf_digest else "no",
            )
        console.print(table)
    finally:
        services.close()


@adapters_app.command("rm")
def adapters_rm(model_id: str = typer.Argument(..., help="BASE:NAME")) -> None:
    """Remove an adapter."""
    base, sep, name = model_id.partition(":")
    if not sep or not name:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"expected BASE:NAME, got {model_id!r}")
    services = get_services(get_settings())
    try:
        services.catalog.remove_adapter(base, name)
        console.print(f"[green]removed[/] {model_id}")
    finally:
        services.close()
