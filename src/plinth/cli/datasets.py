"""``plinth datasets``: versioned datasets."""

from __future__ import annotations

import typer

datasets_app = typer.Typer(help="Versioned datasets: add, list, show, diff.", no_args_is_help=True)
