"""Run the ``plinth`` command line as a person does, in this process by default.

:func:`plinth` runs one command line with Click's test runner through
:func:`plinth.cli.main.main` (the function ``python -m plinth`` runs, with its errors -> one
``error:`` line and an exit code), in the environment a fresh process on ``home`` would have:
no ``PLINTH_*`` of the test process, ``PLINTH_HOME``, offline Hugging Face, ``COLUMNS`` unset
(80 columns, as on a pipe) unless the caller sets it, then the caller's variables; all of it
restored afterwards. It answers a :class:`subprocess.CompletedProcess` either way, so tests
assert on ``returncode``/``stdout``/``stderr`` without knowing how the command ran.

``subprocess=True`` runs ``python -m plinth`` instead (``timeout`` applies to it; in this
process pytest's timeout does), for what only a real process shows: start-up imports, the
absence of a traceback at the interpreter's top level, a real pipe's width, signals.

In this process, as in a fresh one:

* stdout and stderr are captured apart (Click >= 8.2) and at the file-descriptor level too
  (``capture="fd"``), so what llama.cpp or another C library writes lands in them;
* the CLI's Rich consoles are built for the call from its environment and its (non-terminal)
  streams, as at start-up, then put back: width from ``COLUMNS`` or 80, no colours;
* a warning or error logged by the command reaches stderr, as Python's last-resort handler
  prints it in a process without logging configured (pytest's own handlers would keep it);
* what the command loaded is released when it ends: its services are closed by the CLI
  (a leak there is a CLI bug), the embedders it loaded by :func:`_embedders_released`;
* an exception that escapes the CLI (a traceback in a real process) fails the test, with
  the command line and its output.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess as _subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner

PROG = "python -m plinth"  # what Click calls the program when run as ``python -m plinth``


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The whole environment of a ``plinth`` process on ``home`` (for subprocesses)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(_base_env(home))
    env.pop("COLUMNS", None)  # the CLI must behave at the default 80 columns of a pipe
    env.update(extra)
    return env


def _base_env(home: Path) -> dict[str, str]:
    return {"PLINTH_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def _env_overrides(home: Path, extra: Mapping[str, str]) -> dict[str, str | None]:
    """:func:`cli_env` as changes to this process's environment (None: unset)."""
    changes: dict[str, str | None] = {k: None for k in os.environ if k.startswith("PLINTH_")}
    changes["COLUMNS"] = None
    changes.update(_base_env(home))
    changes.update(extra)
    return changes


def plinth(home: Path, *args: str, subprocess: bool = False, timeout: float = 240, **extra_env: str) -> _subprocess.CompletedProcess[str]:
    """``plinth ARGS`` on ``home``; ``extra_env`` is added to its environment."""
    if subprocess:
        return _subprocess.run(
            [sys.executable, "-m", "plinth", *args], env=cli_env(home, **extra_env), capture_output=True, text=True, timeout=timeout
        )
    return _in_process(list(args), _env_overrides(home, extra_env))


class _Main(click.Command):
    """What ``python -m plinth`` runs, as a command Click's runner can invoke."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, **_: Any) -> None:
        from plinth.cli.main import main

        # inside the runner's isolation: the call's environment and streams are in place
        with _consoles_built_now(), _last_resort_logging(), _embedders_released():
            main(list(args or ()), prog_name=prog_name)


def _in_process(args: list[str], env: dict[str, str | None]) -> _subprocess.CompletedProcess[str]:
    result = CliRunner(capture="fd").invoke(_Main(PROG), args, env=env, prog_name=PROG)
    stdout, stderr = _text(result.stdout_bytes), _text(result.stderr_bytes)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # a real process would have printed this traceback and exited 1
        raise AssertionError(f"plinth {' '.join(args)} raised {result.exception!r}\n--- stdout\n{stdout}\n--- stderr\n{stderr}") from (
            result.exception
        )
    return _subprocess.CompletedProcess([PROG, *args], result.exit_code, stdout, stderr)


@contextmanager
def _consoles_built_now() -> Iterator[None]:
    """The CLI's Rich consoles as a fresh process builds them at start-up, from the call's
    environment (COLUMNS, NO_COLOR, FORCE_COLOR...) and streams (no terminal: no colours),
    instead of the test process's at import; the originals come back afterwards."""
    from rich.console import Console

    from plinth.cli import common

    consoles = (common.console, common.err_console)
    saved = [dict(vars(c)) for c in consoles]
    try:
        for c in consoles:
            fresh = Console(stderr=c.stderr)
            vars(c).clear()
            vars(c).update(vars(fresh))
        yield
    finally:
        for c, state in zip(consoles, saved, strict=True):
            vars(c).clear()
            vars(c).update(state)


@contextmanager
def _last_resort_logging() -> Iterator[None]:
    """Warnings and errors logged by the command on stderr, message only, as Python's
    ``logging.lastResort`` prints them in a process that configured no logging (here pytest's
    handlers on the root logger would take them instead)."""
    handler = logging.StreamHandler(sys.stderr)  # the runner's stderr of this call
    handler.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


@contextmanager
def _embedders_released() -> Iterator[None]:
    """The embedders the command loaded (``plinth kb``), closed when it ends as at a process's
    exit: the registry keeps one per process, and this process runs hundreds of commands. One
    loaded before the call (a test's own) is left alone."""
    from plinth.embeddings import registry

    before = set(registry._INSTANCES)
    try:
        yield
    finally:
        with registry._LOCK:
            loaded = [registry._INSTANCES.pop(key) for key in set(registry._INSTANCES) - before]
        for emb in loaded:
            emb.close()


def _text(data: bytes) -> str:
    """Bytes as ``subprocess.run(text=True)`` decodes them (universal newlines)."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=None).read()
