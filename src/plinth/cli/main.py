"""The ``plinth`` command line. Builds the services, calls them, prints; errors become a clear
message and a non-zero exit code, never a traceback."""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from plinth import __version__
from plinth.cli import datasets as datasets_cli
from plinth.cli import jobs as jobs_cli
from plinth.cli.guardrails import guardrails_app
from plinth.cli import tuning as tuning_cli
from plinth.cli.common import (
    State,
    console,
    ensure_embedded,
    err_console,
    get_services,
    get_settings,
    make_progress,
    mask_url,
)
from plinth.config import Settings
from plinth.errors import ErrorCode, PlinthError

app = typer.Typer(
    name="plinth",
    help="plinth: tune, track, register, evaluate, serve, guard and monitor language models on your own machines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="The model catalog: list, add, show, rm.", no_args_is_help=True)
db_app = typer.Typer(help="The metadata store.", no_args_is_help=True)
adapters_app = typer.Typer(help="LoRA adapters of catalog models, served as BASE:NAME.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(adapters_app, name="adapters")
app.add_typer(db_app, name="db")
app.add_typer(jobs_cli.jobs_app, name="jobs")
app.add_typer(jobs_cli.queues_app, name="queues")
app.add_typer(jobs_cli.classes_app, name="priority-classes")
app.command("worker")(jobs_cli.worker)
app.add_typer(datasets_cli.datasets_app, name="datasets")
from plinth.cli.kb import kb_app  # noqa: E402  (command groups register after the root app)

app.add_typer(kb_app, name="kb")
app.add_typer(guardrails_app, name="guardrails")
app.command("tune")(tuning_cli.tune)
app.add_typer(tuning_cli.runs_app, name="runs")
app.add_typer(tuning_cli.registry_app, name="registry")
app.add_typer(tuning_cli.eval_app, name="eval")
app.command("export")(tuning_cli.export)
from plinth.cli.deploy import deploy_app  # noqa: E402
from plinth.cli.keys import keys_app  # noqa: E402
from plinth.cli import usage as usage_cli  # noqa: E402

app.add_typer(deploy_app, name="deploy")
app.add_typer(keys_app, name="keys")
app.command("usage")(usage_cli.usage)
app.command("audit")(usage_cli.audit)


@app.callback()
def _root(
    home: Path | None = typer.Option(None, "--home", help="Data directory (PLINTH_HOME)."),
    config: Path | None = typer.Option(None, "--config", help="Config file, YAML or TOML (PLINTH_CONFIG)."),
    database_url: str | None = typer.Option(None, "--database-url", help="Metadata store URL (PLINTH_DATABASE_URL)."),
) -> None:
    State.overrides = {"home": home, "config": config, "database_url": database_url}


# -- serve -----------------------------------------------------------------------------------
@app.command()
def up(
    host: str | None = typer.Option(None, help="Bind address (PLINTH_HOST, default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (PLINTH_PORT, default 8000)."),
) -> None:
    """Start the platform: OpenAI-compatible API on /v1, management API, metrics and docs."""
    import logging

    import uvicorn

    from plinth.api.app import create_app

    settings = get_settings(host=host, port=port)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _check_port_free(settings)
    services = get_services(settings)
    base = settings.base_url
    console.print(f"[bold green]plinth {__version__}[/] serving with data in [cyan]{settings.home}[/]")
    console.print(f"  OpenAI-compatible API  [cyan]{base}/v1[/]   (model: {settings.default_model})")
    console.print(f"  Management API         [cyan]{base}/api/v1[/]")
    console.print(f"  Metrics                [cyan]{base}/metrics[/]")
    console.print(f"  Docs                   [cyan]{base}/docs[/]  (OpenAPI: {base}/openapi.json)")
    console.print(f"  Metadata store         {mask_url(settings.database_url or '')}")
    if settings.jobs_local_worker:
        worker = services.jobs.start_local_worker()
        console.print(f"  Job worker             {worker.id} (jobs run in child processes; PLINTH_JOBS_LOCAL_WORKER=false turns it off)")
    console.print("  Press Ctrl+C to stop.")
    uvicorn.run(
        create_app(services),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=5,
        access_log=settings.log_level == "debug",
    )


def _check_port_free(settings: Settings) -> None:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((settings.host, settings.port))
        except OSError as e:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"cannot listen on {settings.host}:{settings.port}: {e.strerror}; is plinth already running? "
                "Choose another port with --port or PLINTH_PORT",
            ) from None


# -- chat ------------------------------------------------------------------------------------
@app.command()
def chat(
    model: str | None = typer.Option(None, "--model", "-m", help="Model to chat with (default: the default model)."),
    url: str | None = typer.Option(None, help="Talk to a running server (e.g. http://127.0.0.1:8000/v1) instead of in-process."),
    system: str | None = typer.Option(None, help="System prompt."),
    max_tokens: int = typer.Option(256, help="Longest answer in tokens."),
    temperature: float = typer.Option(0.7, help="Sampling temperature (0 = greedy)."),
    message: str | None = typer.Option(None, "--message", help="Ask one question, print the answer and exit."),
) -> None:
    """Chat with a model in the terminal, streaming the answer."""
    settings = get_settings()
    model = model or settings.default_model
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    if url:
        send = _remote_sender(url, model, max_tokens, temperature)
        services = None
    else:
        services = get_services(settings)
        send = _local_sender(services, model, max_tokens, temperature)
    try:
        if message is not None:
            _chat_turn(send, history, message)
            return
        console.print(f"[bold]Chatting with {model}[/] — empty line or Ctrl+D to quit.")
        while True:
            try:
                text = console.input("[bold cyan]you> [/]")
            except (EOFError, KeyboardInterrupt):
                console.print()
                break
            if not text.strip():
                break
            _chat_turn(send, history, text)
    finally:
        if services is not None:
            services.close()


def _chat_turn(send: Any, history: list[dict[str, str]], text: str) -> None:
    history.append({"role": "user", "content": text})
    console.print("[bold magenta]assistant> [/]", end="")
    answer = []
    for piece in send(history):
        answer.append(piece)
        console.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
    console.print()
    history.append({"role": "assistant", "content": "".join(answer)})


def _local_sender(services: Any, model: str, max_tokens: int, temperature: float) -> Any:
    """Generate in this process: each turn is a generator of text pieces as they stream."""
    from plinth.serving.protocol import ChatCompletionRequest

    loop = asyncio.new_event_loop()

    def send(history: list[dict[str, str]]) -> Any:
        req = ChatCompletionRequest(model=model, messages=history, max_tokens=max_tokens, temperature=temperature)
        job = loop.run_until_complete(services.completions.start_chat(req))
        pieces = job.choices().__aiter__()
        try:
            while True:
                try:
                    _idx, piece, _finish = loop.run_until_complete(pieces.__anext__())
                except StopAsyncIteration:
                    break
                if piece:
                    yield piece
        finally:
            loop.run_until_complete(pieces.aclose())
            job.close()

    return send


def _remote_sender(url: str, model: str, max_tokens: int, temperature: float) -> Any:
    import httpx

    def send(history: list[dict[str, str]]) -> Any:
        body = {"model": model, "messages": history, "max_tokens": max_tokens, "temperature": temperature, "stream": True}
        try:
            with httpx.stream("POST", url.rstrip("/") + "/chat/completions", json=body, timeout=600) as r:
                if r.status_code >= 400:
                    r.read()
                    try:
                        msg = r.json()["error"]["message"]
                    except (ValueError, KeyError, TypeError):
                        msg = r.text[:300]
                    raise PlinthError(ErrorCode.UPSTREAM_ERROR, f"server answered {r.status_code}: {msg}")
                for line in r.iter_lines():
                    if not line.startswith("data:") or line.strip() == "data: [DONE]":
                        continue
                    event = json.loads(line[5:])
                    if "error" in event:
                        raise PlinthError(ErrorCode.UPSTREAM_ERROR, event["error"].get("message", "error"))
                    for choice in event.get("choices", []):
                        piece = choice.get("delta", {}).get("content")
                        if piece:
                            yield piece
        except httpx.HTTPError as e:
            raise PlinthError(ErrorCode.UPSTREAM_ERROR, f"cannot reach {url}: {e}") from None

    return send


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
                _size(r.size_bytes),
                r.license or "-",
                (r.digest or "-")[7:19],
            )
        console.print(table)
    finally:
        services.close()


@models_app.command("add")
def models_add(
    path: str = typer.Argument(..., help="A GGUF file or a Hugging Face safetensors directory."),
    name: str | None = typer.Option(None, "--name", help="Catalog name (default: from the file name)."),
    runtime: str | None = typer.Option(None, "--runtime", help="llamacpp (GGUF) or torch (safetensors)."),
    license: str | None = typer.Option(None, "--license", help="Licence, when the files do not say."),
) -> None:
    """Import a model: validated, copied into the content-addressed store, recorded."""
    services = get_services(get_settings())
    try:
        src = Path(path).expanduser()
        services.catalog.inspect(src)  # refuse a bad file before drawing a progress bar
        total = _tree_size(src)
        with make_progress() as progress:
            task = progress.add_task(f"Importing {src.name}", total=total or None)
            record = services.catalog.add(src, name=name, runtime=runtime, license=license, progress=lambda n: progress.advance(task, n))
        console.print(f"[green]added[/] {record.name} ({record.format.value}, {_size(record.size_bytes)}, {record.digest})")
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
            a = services.store.get_attachments(model_id)
            services.catalog.check_model_id(model_id)
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


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def _tree_size(p: Path) -> int:
    try:
        if p.is_file():
            return p.stat().st_size
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
    except OSError:
        return 0


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
            task = progress.add_task(f"Importing {src.name}", total=_tree_size(src) or None)
            record = services.catalog.add_adapter(base, src, name=name, progress=lambda n: progress.advance(task, n))
        console.print(f"[green]added[/] {record.model_id} ({record.format.value}, rank {record.rank}, {_size(record.size_bytes)})")
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
                _size(r.size_bytes),
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


# -- db --------------------------------------------------------------------------------------
@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations to the metadata store."""
    from plinth.store import open_store

    settings = get_settings()
    store = open_store(settings.database_url or "")
    try:
        store.migrate()
        console.print(f"[green]schema at revision[/] {store.schema_revision()} ({mask_url(settings.database_url or '')})")
    finally:
        store.close()


# -- doctor ----------------------------------------------------------------------------------
@app.command()
def doctor() -> None:
    """What is installed, which runtimes are available, where data lives."""
    from plinth.formats import locate_embedded_gguf
    from plinth.runtimes import missing_requirements, runtime_entry, runtime_names
    from plinth.store import open_store

    settings = get_settings()
    table = Table(title=f"plinth {__version__} doctor", show_header=False)
    table.add_row("python", f"{platform.python_version()} ({sys.executable})")
    table.add_row("machine", f"{platform.machine()}, {os.cpu_count()} CPUs")
    table.add_row("home", str(settings.home))
    table.add_row("database", mask_url(settings.database_url or ""))
    try:
        store = open_store(settings.database_url or "")
        try:
            store.ping()
            table.add_row("store", f"[green]ok[/], schema revision {store.schema_revision() or 'none (run plinth db upgrade)'}")
        finally:
            store.close()
    except PlinthError as e:
        table.add_row("store", f"[red]{e.message}[/]")
    for name in runtime_names():
        missing = missing_requirements(name)
        entry = runtime_entry(name)
        versions = ", ".join(f"{m} {_version(m)}" for m in entry.requires if m not in missing)
        status = f"[green]available[/] ({versions})" if not missing else f"[yellow]missing {', '.join(missing)}[/]: {entry.install_hint}"
        table.add_row(f"runtime {name}", status)
    try:
        table.add_row("embedded model", str(locate_embedded_gguf()))
    except PlinthError as e:
        table.add_row("embedded model", f"[red]{e.message}[/]")
    table.add_row("cuda", _cuda_state())
    console.print(table)


def _version(module: str) -> str:
    dist = {"llama_cpp": "llama-cpp-python"}.get(module, module)
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _cuda_state() -> str:
    if importlib.util.find_spec("torch") is None:
        return "torch not installed"
    if os.path.exists("/proc/driver/nvidia/version"):
        return "NVIDIA driver present"
    return "no GPU driver found (CPU only)"


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"plinth {__version__}")


def main() -> None:
    try:
        app()
    except PlinthError as e:
        # soft_wrap: never hard-wrap the message at the terminal width (it would split paths).
        err_console.print(f"[bold red]error:[/] {e.message}", highlight=False, soft_wrap=True)
        sys.exit(2 if e.code in (ErrorCode.INVALID_REQUEST,) else 1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
