"""``plinth db`` (the metadata store's schema) and ``plinth doctor`` (what is installed)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys

import typer
from rich.table import Table

from plinth import __version__
from plinth.cli.common import console, get_settings, mask_url
from plinth.errors import PlinthError

db_app = typer.Typer(help="The metadata store.", no_args_is_help=True)


# -- db --------------------------------------------------------------------------------------
@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations to the metadata store."""
    from plinth.services import upgrade_store

    settings = get_settings()
    revision = upgrade_store(settings)
    console.print(f"[green]schema at revision[/] {revision} ({mask_url(settings.database_url or '')})")


# -- doctor ----------------------------------------------------------------------------------
def doctor() -> None:
    """What is installed, which runtimes are available, where data lives."""
    from plinth.services import embedded_model_file, runtime_status, store_revision

    settings = get_settings()
    table = Table(title=f"plinth {__version__} doctor", show_header=False)
    table.add_row("python", f"{platform.python_version()} ({sys.executable})")
    table.add_row("machine", f"{platform.machine()}, {os.cpu_count()} CPUs")
    table.add_row("home", str(settings.home))
    table.add_row("database", mask_url(settings.database_url or ""))
    try:
        revision = store_revision(settings)
        table.add_row("store", f"[green]ok[/], schema revision {revision or 'none (run plinth db upgrade)'}")
    except PlinthError as e:
        table.add_row("store", f"[red]{e.message}[/]")
    for rt in runtime_status():
        versions = ", ".join(f"{m} {_version(m)}" for m in rt.requires if m not in rt.missing)
        status = f"[green]available[/] ({versions})" if rt.available else f"[yellow]missing {', '.join(rt.missing)}[/]: {rt.install_hint}"
        table.add_row(f"runtime {rt.name}", status)
    try:
        table.add_row("embedded model", str(embedded_model_file()))
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
