"""The ``plinth`` command line: the root app, where each command group registers, and
``main()``, which turns errors into a clear message and a non-zero exit code, never a
traceback. Each group lives in its own module (``serve``, ``models``, ``adapters``,
``system``, ``jobs``, ``datasets``, ``kb``, ``guardrails``, ``tuning``, ``deploy``, ``keys``,
``usage``) over the helpers of ``common``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import typer

from plinth import __version__
from plinth.cli import datasets as datasets_cli
from plinth.cli import explain as explain_cli
from plinth.cli import jobs as jobs_cli
from plinth.cli import project as project_cli
from plinth.cli import serve as serve_cli
from plinth.cli import system as system_cli
from plinth.cli import tuning as tuning_cli
from plinth.cli import usage as usage_cli
from plinth.cli.adapters import adapters_app
from plinth.cli.alerts import alerts_app
from plinth.cli.bias import bias_app
from plinth.cli.common import State, console, err_console
from plinth.cli.deploy import deploy_app
from plinth.cli.guardrails import guardrails_app
from plinth.cli.k8s import k8s_app
from plinth.cli.kb import kb_app
from plinth.cli.keys import keys_app
from plinth.cli.models import models_app
from plinth.cli.monitor import monitor_app
from plinth.cli.pipelines import pipelines_app, triggers_app
from plinth.cli.projects import projects_app, users_app
from plinth.cli.requests import requests_app
from plinth.domain.projects import DEFAULT_PROJECT, StoreScope, current_scope
from plinth.errors import ErrorCode, PlinthError

app = typer.Typer(
    name="plinth",
    help="plinth: tune, track, register, evaluate, serve, guard and monitor language models on your own machines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(models_app, name="models")
app.add_typer(adapters_app, name="adapters")
app.add_typer(system_cli.db_app, name="db")
app.add_typer(jobs_cli.jobs_app, name="jobs")
app.add_typer(jobs_cli.queues_app, name="queues")
app.add_typer(jobs_cli.classes_app, name="priority-classes")
app.command("worker")(jobs_cli.worker)
app.add_typer(datasets_cli.datasets_app, name="datasets")
app.add_typer(kb_app, name="kb")
app.add_typer(guardrails_app, name="guardrails")
app.command("tune")(tuning_cli.tune)
app.add_typer(tuning_cli.runs_app, name="runs")
app.add_typer(tuning_cli.registry_app, name="registry")
app.add_typer(tuning_cli.eval_app, name="eval")
# `plinth export`: project files (DIR), Kubernetes (k8s DIR) or a model (NAME@VERSION), ADR 0100
app.command("export", context_settings=project_cli.EXPORT_CONTEXT)(project_cli.export)
app.command("validate")(project_cli.validate)
app.command("plan")(project_cli.plan)
app.command("apply")(project_cli.apply)
app.command("sync")(project_cli.sync)
app.add_typer(deploy_app, name="deploy")
app.add_typer(alerts_app, name="alerts")
app.add_typer(keys_app, name="keys")
app.add_typer(projects_app, name="projects")
app.add_typer(users_app, name="users")
app.add_typer(requests_app, name="requests")
app.add_typer(monitor_app, name="monitor")
app.add_typer(bias_app, name="bias")
app.add_typer(pipelines_app, name="pipelines")
app.add_typer(triggers_app, name="triggers")
app.command("explain")(explain_cli.explain)
app.command("usage")(usage_cli.usage)
app.command("audit")(usage_cli.audit)
app.command("up")(serve_cli.up)
app.command("chat")(serve_cli.chat)
app.command("doctor")(system_cli.doctor)
app.add_typer(k8s_app, name="k8s")


@app.callback()
def _root(
    home: Path | None = typer.Option(None, "--home", help="Data directory (PLINTH_HOME)."),
    config: Path | None = typer.Option(None, "--config", help="Config file, YAML or TOML (PLINTH_CONFIG)."),
    database_url: str | None = typer.Option(None, "--database-url", help="Metadata store URL (PLINTH_DATABASE_URL)."),
    project: str = typer.Option(
        DEFAULT_PROJECT, "--project", "-p", envvar="PLINTH_PROJECT", help="The project commands work in (PLINTH_PROJECT)."
    ),
) -> None:
    State.overrides = {"home": home, "config": config, "database_url": database_url}
    # The local operator works in one project at a time (names, listings, new resources);
    # `plinth up` serves every project, each request in its own.
    current_scope.set(StoreScope(project=project))


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"plinth {__version__}")


def main(args: Sequence[str] | None = None, prog_name: str | None = None) -> None:
    """Run a command line (``args``; default ``sys.argv[1:]``); errors end the process with
    one ``error:`` line on stderr and exit code 2 (bad input) or 1, as ``SystemExit``."""
    token = current_scope.set(None)
    try:
        app(args=args, prog_name=prog_name)
    except PlinthError as e:
        # soft_wrap: never hard-wrap the message at the terminal width (it would split paths).
        err_console.print(f"[bold red]error:[/] {e.message}", highlight=False, soft_wrap=True)
        sys.exit(2 if e.code in (ErrorCode.INVALID_REQUEST,) else 1)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        current_scope.reset(token)


if __name__ == "__main__":  # pragma: no cover
    main()
