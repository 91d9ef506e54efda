"""Mounting the console on the API's FastAPI app: static assets, sign-in and every page module.

Pages are ordinary routes under ``/console`` behind the API's auth middleware, so they see the
same caller in the same project as the API would, with the same scopes; they are left out of
the OpenAPI document (``include_in_schema=False``). Changes are made by the pages' scripts
calling the JSON API (``/api/v1``, ``/v1``) with the session's CSRF token, so every change goes
through the one implementation and the one audit log.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from plinth.auth.accounts import SESSION_COOKIE
from plinth.console.pages import catalog, knowledge, operations, overview, training
from plinth.console.render import CSRF_COOKIE, PROJECT_COOKIE, SECURITY_HEADERS, STATIC, render
from plinth.domain.projects import in_context
from plinth.errors import PlinthError

#: paths of the console anyone may load (the rest need a caller with the read scope)
OPEN_PREFIXES = ("/console/static/", "/console/login")
LOGIN_CSRF_COOKIE = "plinth_login_csrf"
_MAX_FORM_BYTES = 16 * 1024

router = APIRouter(prefix="/console", include_in_schema=False)


def install_console(app: FastAPI) -> None:
    app.mount("/console/static", StaticFiles(directory=str(STATIC)), name="console-static")
    app.include_router(router)
    for module in (overview, catalog, training, knowledge, operations):
        app.include_router(module.router, prefix="/console", include_in_schema=False)


def login_redirect(path: str, query: str = "") -> Response:
    """Where an unauthenticated page load goes: the sign-in page, coming back afterwards."""
    target = path + (f"?{query}" if query else "")
    return RedirectResponse(f"/console/login?next={quote(target, safe='')}", status_code=303, headers={"Cache-Control": "no-store"})


def _safe_next(value: str | None) -> str:
    """Only a console path of this server (never ``//host`` or ``/\\host``): no open redirect."""
    if not value or not value.startswith("/console") or value.startswith(("//", "/\\")) or "\\" in value:
        return "/console/"
    return value


def _login_page(request: Request, *, error: str = "", user: str = "", nxt: str = "/console/", status_code: int = 200) -> HTMLResponse:
    services = request.app.state.services
    token = secrets.token_urlsafe(24)
    html = render(
        "login.html",
        auth_enabled=bool(services.auth is not None and services.auth.enabled),
        error=error,
        user=user,
        next=_safe_next(nxt),
        login_csrf=token,
    )
    resp = HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/console/login", max_age=3600)
    return resp


@router.get("/login")
def login_form(request: Request, next: str = "/console/") -> HTMLResponse:
    return _login_page(request, nxt=next)


@router.post("/login")
async def login(request: Request) -> Response:
    """Sign in from the form: the session cookie (as ``POST /api/v1/auth/login`` sets it) and a
    readable CSRF cookie the pages' scripts repeat in ``X-CSRF-Token``."""
    services = request.app.state.services
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        return _login_page(request, error="the sign-in form is too large", status_code=413)
    form: dict[str, Any] = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    nxt = _safe_next(form.get("next"))
    user = str(form.get("user", ""))[:128]
    if services.accounts is None or services.auth is None or not services.auth.enabled:
        return RedirectResponse(nxt, status_code=303)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or not secrets.compare_digest(expected, str(form.get("login_csrf", ""))):
        return _login_page(request, error="the sign-in form expired; please try again", user=user, nxt=nxt, status_code=403)
    try:
        result = await run_in_threadpool(in_context(lambda: services.accounts.login(user, str(form.get("password", "")))))
    except PlinthError as e:
        return _login_page(request, error=e.message, user=user, nxt=nxt, status_code=e.http_status)
    settings = services.settings
    resp = RedirectResponse(nxt, status_code=303, headers={"Cache-Control": "no-store"})
    common: dict[str, Any] = {
        "max_age": int(settings.session_ttl_s),
        "secure": settings.session_cookie_secure,
        "samesite": "strict",
        "path": "/",
    }
    resp.set_cookie(SESSION_COOKIE, result.cookie, httponly=True, **common)
    resp.set_cookie(CSRF_COOKIE, result.csrf_token, httponly=False, **common)
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    return resp


@router.get("/project")
def choose_project(request: Request, name: str = "") -> Response:
    """Switch the project the console works in (a cookie the auth middleware reads for pages;
    the next page load checks that the caller may see it). No name: the caller's default."""
    resp = RedirectResponse("/console/", status_code=303)
    if name:
        resp.set_cookie(PROJECT_COOKIE, name[:64], httponly=False, samesite="strict", path="/")
    else:
        resp.delete_cookie(PROJECT_COOKIE, path="/")
    return resp


@router.get("")
def console_root() -> Response:
    return RedirectResponse("/console/", status_code=308)
