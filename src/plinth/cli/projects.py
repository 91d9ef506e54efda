"""``plinth projects`` and ``plinth users``: shared use, from the server's own machine.

The CLI acts as the local operator (whoever can read the server's data directory is its
server admin): it creates the first admin user and the projects, adds members with their
roles, and sets quotas. Everything is in the audit log under ``cli:<user>@<host>``.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import sys
from collections.abc import Iterator
from typing import Any

import typer
from rich.table import Table

from plinth.auth.audit import cli_actor
from plinth.cli.common import console, err_console, get_services, get_settings, size_text
from plinth.domain.auth import Principal
from plinth.domain.projects import ProjectQuotas
from plinth.errors import ErrorCode, PlinthError

projects_app = typer.Typer(help="Projects (tenants): create, members and their roles, quotas.", no_args_is_help=True)
users_app = typer.Typer(help="Users: create (the first admin too), passwords, disable, delete.", no_args_is_help=True)


@contextlib.contextmanager
def _accounts() -> Iterator[tuple[Any, Principal]]:
    services = get_services(get_settings(), embedded=False)
    try:
        yield services.accounts, Principal(actor=cli_actor())  # the local operator: a server admin
    finally:
        services.close()


def _print(obj: Any, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(obj))
    else:
        for k, v in obj.items():
            console.print(f"[bold]{k}[/]: {v}", highlight=False)


def _password(prompt: bool, from_stdin: bool) -> str | None:
    if from_stdin:
        value = sys.stdin.readline().rstrip("\n")
        if not value:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "no password on standard input", param="password")
        return value
    if prompt:
        first = getpass.getpass("password: ")
        if first != getpass.getpass("again: "):
            raise PlinthError(ErrorCode.INVALID_REQUEST, "the passwords differ", param="password")
        return first
    return None


# -- projects ---------------------------------------------------------------------------------------------
@projects_app.command("list")
def projects_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every project."""
    with _accounts() as (a, me):
        projects = a.projects_for(me)
        if as_json:
            console.print_json(json.dumps([p.public_dict() for p in projects]))
            return
        table = Table(title="projects")
        for col in ("name", "description", "token budget", "storage quota", "created by"):
            table.add_column(col, overflow="fold")
        for p in projects:
            q = p.quotas
            table.add_row(
                p.name,
                p.description,
                f"{q.budget_tokens:,} / {q.budget_period}" if q.budget_tokens else "-",
                size_text(q.storage_bytes) if q.storage_bytes else "-",
                p.created_by,
            )
        console.print(table)


def _quotas(budget: int | None, period: str, storage: str | None) -> ProjectQuotas | None:
    if budget is None and storage is None:
        return None
    from plinth.jobs.resources import parse_bytes

    return ProjectQuotas(
        budget_tokens=budget, budget_period=period, storage_bytes=parse_bytes(storage, param="storage") if storage else None
    )


@projects_app.command("create")
def projects_create(
    name: str = typer.Argument(..., help="Lowercase letters, digits and '-'."),
    description: str = typer.Option("", "--description", "-d"),
    budget: int | None = typer.Option(None, "--budget", help="Tokens per budget period over all the project's keys."),
    period: str = typer.Option("month", "--period", help="hour, day, week or month (UTC)."),
    storage: str | None = typer.Option(None, "--storage", help="Storage quota, e.g. 20GiB."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a project."""
    with _accounts() as (a, me):
        p = a.create_project(me, name, description=description, quotas=_quotas(budget, period, storage))
        _print(p.public_dict(), as_json)


@projects_app.command("show")
def projects_show(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """A project with its members and what it holds."""
    with _accounts() as (a, me):
        out = a.get_project(me, name).public_dict()
        out["members"] = [m.public_dict() for m in a.members(me, name)]
        out["usage"] = a.project_usage(me, name)
        if as_json:
            console.print_json(json.dumps(out))
            return
        _print({k: v for k, v in out.items() if k not in ("members", "usage")}, False)
        console.print("[bold]members[/]: " + (", ".join(f"{m['user']} ({m['role']})" for m in out["members"]) or "none"))
        console.print(f"[bold]holds[/]: {out['usage']['resources'] or 'nothing'}; {size_text(out['usage']['storage_bytes'])} stored")


@projects_app.command("update")
def projects_update(
    name: str,
    description: str | None = typer.Option(None, "--description", "-d"),
    budget: int | None = typer.Option(None, "--budget", help="Tokens per budget period."),
    period: str = typer.Option("month", "--period"),
    storage: str | None = typer.Option(None, "--storage", help="Storage quota, e.g. 20GiB."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Change a project's description or quotas (quotas given replace all quotas)."""
    with _accounts() as (a, me):
        p = a.update_project(me, name, description=description, quotas=_quotas(budget, period, storage))
        _print(p.public_dict(), as_json)


@projects_app.command("delete")
def projects_delete(name: str) -> None:
    """Delete an empty project."""
    with _accounts() as (a, me):
        a.delete_project(me, name)
        err_console.print(f"deleted project {name}")


@projects_app.command("add-member")
def add_member(
    project: str,
    user: str,
    role: str = typer.Option("viewer", "--role", "-r", help="owner, editor, viewer or inference."),
) -> None:
    """Add a user to a project, or change their role."""
    with _accounts() as (a, me):
        m = a.set_member(me, project, user, role)
        err_console.print(f"{m.user} is {m.role.value} of {m.project}")


@projects_app.command("remove-member")
def remove_member(project: str, user: str) -> None:
    """Take a user out of a project (their keys there stop working)."""
    with _accounts() as (a, me):
        a.remove_member(me, project, user)
        err_console.print(f"{user} is no longer a member of {project}")


# -- users ------------------------------------------------------------------------------------------------
@users_app.command("list")
def users_list(as_json: bool = typer.Option(False, "--json")) -> None:
    with _accounts() as (a, me):
        users = a.list_users(me)
        if as_json:
            console.print_json(json.dumps([u.public_dict() for u in users]))
            return
        table = Table(title="users")
        for col in ("name", "admin", "password", "state", "projects"):
            table.add_column(col, overflow="fold")
        for u in users:
            projects = ", ".join(f"{m.project} ({m.role.value})" for m in a.memberships_of(u.name))
            table.add_row(u.name, "yes" if u.is_admin else "", "set" if u.has_password else "-", "disabled" if u.disabled else "", projects)
        console.print(table)


@users_app.command("create")
def users_create(
    name: str,
    admin: bool = typer.Option(False, "--admin", help="A server admin: manages users and projects."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
    no_password: bool = typer.Option(False, "--no-password", help="No password (single sign-on through a trusted proxy only)."),
    display_name: str = typer.Option("", "--display-name"),
) -> None:
    """Create a user (asks for a password unless --password-stdin or --no-password)."""
    password = None if no_password else _password(not password_stdin, password_stdin)
    with _accounts() as (a, me):
        u = a.create_user(me, name, password=password, is_admin=admin, display_name=display_name)
        err_console.print(f"created user {u.name}{' (server admin)' if u.is_admin else ''}")


@users_app.command("passwd")
def users_passwd(name: str, password_stdin: bool = typer.Option(False, "--password-stdin")) -> None:
    """Set a user's password (ends their sessions)."""
    password = _password(not password_stdin, password_stdin)
    with _accounts() as (a, me):
        a.update_user(me, name, password=password)
        err_console.print(f"password of {name} changed; their sessions are ended")


@users_app.command("disable")
def users_disable(name: str) -> None:
    """Disable a user: no login, and their keys stop working."""
    with _accounts() as (a, me):
        a.update_user(me, name, disabled=True)
        err_console.print(f"disabled {name}")


@users_app.command("enable")
def users_enable(name: str) -> None:
    with _accounts() as (a, me):
        a.update_user(me, name, disabled=False)
        err_console.print(f"enabled {name}")


@users_app.command("delete")
def users_delete(name: str) -> None:
    """Delete a user (their memberships and sessions go too)."""
    with _accounts() as (a, me):
        a.delete_user(me, name)
        err_console.print(f"deleted user {name}")
