"""``plinth models``: the model catalog, and what is attached to model ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from plinth.cli.common import console, get_services, get_settings, make_progress, size_text, tree_size
from plinth.domain.numbers import INT32_MAX
from plinth.errors import ErrorCode, PlinthError

models_app = typer.Typer(help="The model catalog: list, add, show, rm.", no_args_is_help=True)


# -- models ----------------------------------------------------------------------------------
@models_app.command("list")
def models_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the models in the catalog."""
    services = get_services(get_settings())
    try:
        records = services.catalog.list()
        if as_json:
            console.print_json(json.dumps([r.public_dict() for r in records]))
            return
        table = Table(title="Models")
        table.add_column("name", no_wrap=True)
        for col in ("format", "runtime", "arch", "context", "size", "licence", "digest"):
            table.add_column(col, overflow="fold")
        for r in records:
            table.add_row(
                r.name + (" (built in)" if r.builtin else ""),
                r.format.value,
                r.runtime,
                r.architecture or "-",
                str(r.context_length or "-"),
                size_text(r.size_bytes),
                r.license or "-",
                (r.digest or "-")[7:19],
            )
        console.print(table)
    finally:
        services.close()


@models_app.command("add")
def models_add(
    path: str | None = typer.Argument(None, help="A GGUF file or a Hugging Face safetensors directory."),
    name: str | None = typer.Option(None, "--name", help="Catalog name (default: from the file name; required with --url)."),
    runtime: str | None = typer.Option(None, "--runtime", help="llamacpp (GGUF) or torch (safetensors)."),
    license: str | None = typer.Option(None, "--license", help="Licence, when the files do not say."),
    url: str | None = typer.Option(
        None, "--url", help="Register a remote OpenAI-compatible engine instead (its /v1 base URL); checked by the outbound rules."
    ),
    upstream_model: str | None = typer.Option(
        None, "--upstream-model", help="With --url: the engine's name of the model (default: --name)."
    ),
    api_key_secret: str | None = typer.Option(
        None, "--api-key-secret", help="With --url: the named secret (PLINTH_SECRETS) sent as the engine's API key."
    ),
    context_length: int | None = typer.Option(None, "--context-length", help="With --url: the engine's context window in tokens."),
) -> None:
    """Import a model (validated, copied into the content-addressed store, recorded), or
    register a remote engine with --url."""
    if (path is None) == (url is None):
        raise PlinthError(ErrorCode.INVALID_REQUEST, "give a model PATH to import, or --url of a remote engine (not both)")
    if url is not None and not name:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "a remote model needs --name")
    if context_length is not None and not 1 <= context_length <= INT32_MAX:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"--context-length must be 1 to {INT32_MAX}; got {context_length}")
    services = get_services(get_settings())
    try:
        if url is not None:
            record = services.catalog.add_remote(
                name or "", base_url=url, upstream_model=upstream_model, api_key_secret=api_key_secret, context_length=context_length
            )
            console.print(f"[green]added[/] {record.name} (remote engine {record.source}, model {record.parameters['upstream_model']})")
            return
        assert path is not None
        src = Path(path).expanduser()
        services.catalog.inspect(src)  # refuse a bad file before drawing a progress bar
        total = tree_size(src)
        with make_progress() as progress:
            task = progress.add_task(f"Importing {src.name}", total=total or None)
            record = services.catalog.add(src, name=name, runtime=runtime, license=license, progress=lambda n: progress.advance(task, n))
        console.print(f"[green]added[/] {record.name} ({record.format.value}, {size_text(record.size_bytes)}, {record.digest})")
    finally:
        services.close()


@models_app.command("show")
def models_show(name: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show one model with its digest, format, architecture, context length and licence."""
    services = get_services(get_settings())
    try:
        r = services.catalog.get(name)
        data = r.public_dict()
        if as_json:
            data["chat_template"] = r.chat_template
            console.print_json(json.dumps(data))
            return
        table = Table(show_header=False, title=r.name)
        for k, v in data.items():
            table.add_row(k, json.dumps(v) if isinstance(v, dict) else str(v))
        table.add_row("chat_template", (r.chat_template or "-")[:200] + ("…" if r.chat_template and len(r.chat_template) > 200 else ""))
        console.print(table)
    finally:
        services.close()


@models_app.command("rm")
def models_rm(name: str) -> None:
    """Remove a model from the catalog (its bytes too, when nothing else uses them)."""
    services = get_services(get_settings())
    try:
        services.catalog.remove(name)
        console.print(f"[green]removed[/] {name}")
    finally:
        services.close()


@models_app.command("attach")
def models_attach(
    model_id: str = typer.Argument(..., help="A model name or BASE:ADAPTER."),
    kb: str | None = typer.Option(None, "--kb", help="Knowledge base to answer from: NAME or NAME@VERSION."),
    guardrails: str | None = typer.Option(None, "--guardrails", help="Guardrail policy: NAME or NAME@VERSION."),
    system_prompt: str | None = typer.Option(None, "--system-prompt", help="System prompt for requests without one."),
) -> None:
    """Attach a knowledge base, a guardrail policy or a system prompt to a model id (`""` detaches)."""
    services = get_services(get_settings())
    try:
        if kb is None and guardrails is None and system_prompt is None:
            a = services.attachments.show(model_id)
        else:
            a = services.attachments.update(model_id, knowledge_base=kb, guardrail_policy=guardrails, system_prompt=system_prompt)
        _print_attachments(model_id, a)
    finally:
        services.close()


@models_app.command("detach")
def models_detach(model_id: str = typer.Argument(..., help="A model name or BASE:ADAPTER.")) -> None:
    """Remove everything attached to a model id."""
    from plinth.domain.serving import Attachments

    services = get_services(get_settings())
    try:
        services.attachments.set(model_id, Attachments())
        console.print(f"[green]detached[/] everything from {model_id}")
    finally:
        services.close()


def _print_attachments(model_id: str, a: Any) -> None:
    table = Table(show_header=False, title=f"attached to {model_id}")
    table.add_row("knowledge base", (a.knowledge_base if a else None) or "-")
    table.add_row("guardrail policy", (a.guardrail_policy if a else None) or "-")
    table.add_row("system prompt", (a.system_prompt if a else None) or "-")
    console.print(table)
