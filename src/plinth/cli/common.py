"""What every command group of the CLI shares: consoles, settings, services, progress bars.

Command groups live in their own modules, one per area (``main.py`` only registers them),
and use these helpers, so every command builds settings and services the same way and errors
reach :func:`plinth.cli.main.main`, which prints them as one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from plinth.config import Settings, load_settings

console = Console()
err_console = Console(stderr=True)


class State:
    overrides: ClassVar[dict[str, Any]] = {}


def get_settings(**more: Any) -> Settings:
    return load_settings(**{**State.overrides, **more})


def make_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


def get_services(settings: Settings, *, embedded: bool = True, strict: bool = False) -> Any:
    from plinth.services import build_services

    services = build_services(settings, strict=strict)
    try:
        _check_project(services)
    except BaseException:
        services.close()
        raise
    if embedded:
        try:
            ensure_embedded(services)
        except BaseException:  # the caller gets no services to close: close them here
            services.close()
            raise
    return services


def ensure_embedded(services: Any) -> None:
    from plinth.config import EMBEDDED_MODEL_NAME

    existing = services.store.find_model(EMBEDDED_MODEL_NAME)
    if existing is not None and existing.digest and services.artifacts.exists(existing.digest):
        return
    with make_progress() as progress:
        task = progress.add_task(f"Preparing the embedded model {EMBEDDED_MODEL_NAME}", total=None)
        services.catalog.ensure_embedded(
            progress=lambda n: progress.advance(task, n),
            on_start=lambda total: progress.update(task, total=total),
        )


def mask_url(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def size_text(n: int) -> str:
    """A byte count for people: 1.5 MB."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def tree_size(p: Path) -> int:
    """Bytes of a file, or of the regular files under a directory (0 when unreadable)."""
    try:
        if p.is_file():
            return p.stat().st_size
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
    except (OSError, ValueError):  # unreadable, or a NUL byte: the import itself says why
        return 0


def _check_project(services: Any) -> None:
    """The project ``--project`` names must exist (``default`` always does)."""
    from plinth.domain.projects import current_scope, system_scope
    from plinth.errors import not_found

    scope = current_scope.get()
    if scope is None or scope.everything:
        return
    with system_scope():
        if services.store.find_project(scope.project) is None:
            raise not_found("project", scope.project)
