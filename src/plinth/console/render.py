"""Rendering console pages: one Jinja2 environment, autoescaping everything, and the headers
every page carries (ADR 0110).

Every string a user or a model wrote (names, model cards, documents, prompts, answers) reaches
a page only through ``{{ ... }}``, which escapes it; nothing is marked safe except markup built
here. Pages load scripts only from ``/console/static`` (the Content-Security-Policy forbids
inline scripts), so data for charts travels in ``<script type="application/json">`` blocks
that browsers never execute.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from plinth import __version__
from plinth.auth.context import ANONYMOUS, CallInfo
from plinth.domain.auth import Principal
from plinth.errors import PlinthError

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
#: the read-only CSRF cookie a login sets beside the session cookie; console scripts repeat it in X-CSRF-Token
CSRF_COOKIE = "plinth_csrf"
#: the project the console works in (the API reads X-Plinth-Project; a page load cannot send headers)
PROJECT_COOKIE = "plinth_project"

#: (section, label, path): the navigation, in order; a section's pages set ``section`` to its key
NAV: tuple[tuple[str, str, str], ...] = (
    ("overview", "Overview", "/console/"),
    ("chat", "Chat", "/console/chat"),
    ("models", "Models", "/console/models"),
    ("datasets", "Datasets", "/console/datasets"),
    ("jobs", "Jobs", "/console/jobs"),
    ("runs", "Runs", "/console/runs"),
    ("registry", "Registry", "/console/registry"),
    ("evaluations", "Evaluations", "/console/evaluations"),
    ("knowledge", "Knowledge", "/console/knowledge"),
    ("guardrails", "Guardrails", "/console/guardrails"),
    ("deployments", "Deployments", "/console/deployments"),
    ("monitoring", "Monitoring", "/console/monitoring"),
    ("pipelines", "Pipelines", "/console/pipelines"),
    ("usage", "Usage", "/console/usage"),
    ("keys", "Keys", "/console/keys"),
    ("audit", "Audit", "/console/audit"),
)

SECURITY_HEADERS = {
    # no inline script, no eval, nothing from another origin; styles may be set by scripts (charts)
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _ago(value: Any, now: datetime | None = None) -> str:
    """'3 min ago' for a datetime (or ISO string); '' for None."""
    when = _as_datetime(value)
    if when is None:
        return ""
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            text = f"{int(seconds // size)} {unit}"
            break
    else:
        text = f"{int(seconds)} s"
    return f"in {text}" if future else f"{text} ago"


def _as_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _when(value: Any) -> str:
    """'2026-12-07 12:13:06 UTC' (seconds precision)."""
    when = _as_datetime(value)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if when else ""


def _num(value: Any, digits: int = 3) -> str:
    """A number for people: integers with thousands separators, floats to ``digits`` significant digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.{digits}g}"
        return f"{value:,.{digits}g}" if abs(value) >= 1000 else f"{value:.{digits}g}"
    return str(value)


def _size(value: Any) -> str:
    """Bytes as 'KiB/MiB/GiB'."""
    if value is None:
        return ""
    n = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(value)  # pragma: no cover - the loop always returns


def _pct(value: Any, digits: int = 1) -> str:
    return "" if value is None else f"{float(value) * 100:.{digits}f}%"


def json_data(value: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` block: ``<``, ``>``, ``&`` and the line
    separators are escaped, so no string inside can close the block or open a comment."""
    text = json.dumps(value, separators=(",", ":"), default=str, allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(text)  # escaped above for exactly this context


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(ago=_ago, when=_when, num=_num, size=_size, pct=_pct, json_data=json_data)
    env.globals.update(nav=NAV, version=__version__)
    return env


def call_of(request: Request) -> CallInfo:
    call = getattr(request.state, "plinth_call", None)
    return call if isinstance(call, CallInfo) else CallInfo(principal=ANONYMOUS)


def principal_of(request: Request) -> Principal:
    return call_of(request).principal


def _projects(services: Any, principal: Principal) -> list[str]:
    """The projects the caller may switch to (the header's selector)."""
    if services.accounts is None:
        return [principal.project]
    try:
        names = [p.name for p in services.accounts.projects_for(principal)]
    except PlinthError:
        return [principal.project]
    return names if principal.project in names else [principal.project, *names]


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def page(request: Request, template: str, *, title: str, section: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A whole console page: ``template`` extends ``base.html``."""
    services = request.app.state.services
    principal = principal_of(request)
    html = render(
        template,
        request=request,
        title=title,
        section=section,
        me=principal,
        projects=_projects(services, principal),
        auth_enabled=bool(services.auth is not None and services.auth.enabled),
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def fragment(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A piece of a page for htmx to swap in (no layout)."""
    return HTMLResponse(render(template, **context), status_code=status_code, headers=SECURITY_HEADERS)


def error_page(err: PlinthError) -> HTMLResponse:
    """A refused or failed console request as a page (the API answers the same error as JSON)."""
    html = render("error.html", err=err, title=f"Error {err.http_status}")
    headers = dict(SECURITY_HEADERS)
    if err.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(err.retry_after)))
    return HTMLResponse(html, status_code=err.http_status, headers=headers)
