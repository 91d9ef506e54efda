"""Authentication, authorisation, the project of each call and the HTTP side of the audit log:
one pure ASGI middleware.

With ``PLINTH_AUTH`` on, every route except ``/healthz``, ``/readyz`` and the login needs a
caller, found in this order:

1. an API key (``Authorization: Bearer pk-...`` or ``X-API-Key``): it acts in its own
   project, for its user (never beyond the user's role there) or for the local operator;
2. a login session cookie (``plinth_session``, from ``POST /api/v1/auth/login``): a changing
   request must repeat the session's CSRF token in ``X-CSRF-Token``;
3. a user named by a trusted single-sign-on proxy (``PLINTH_SSO_USER_HEADER``, believed only
   from ``PLINTH_TRUSTED_PROXIES``).

A user works in the project ``X-Plinth-Project`` names (or, for a browser without the header,
the console's ``plinth_project`` cookie; default: their only project, else ``default`` if they
may see it, else the first of their projects by name); a project the caller may not see
answers 404 like one that does not exist.
401 ``unauthenticated`` (with ``WWW-Authenticate: Bearer``) for no valid caller, 403
``permission_denied`` for a caller without the scope the route needs:

=====================================================  ==========================
``/v1/...``                                            ``inference``
``POST /api/v1/feedback``                              ``inference`` or ``manage``
``GET /api/v1/keys/self``, ``/api/v1/auth/...``,        any caller (the services check
``/api/v1/projects...``, ``/api/v1/users...``          owners and server admins)
``/api/v1/keys...``, ``/api/v1/audit...``              ``admin``
any other ``GET``/``HEAD``/``OPTIONS``                 ``read`` (``manage`` and ``admin`` imply it)
any other method                                       ``manage``
=====================================================  ==========================

With auth off every call is made by ``anonymous`` with every scope, in the project
``X-Plinth-Project`` names (default ``default``). Every store call the request makes runs in
its project's scope (:data:`plinth.domain.projects.current_scope`).

Every call gets a :class:`plinth.auth.context.CallInfo` (the principal, the sticky-routing
header, the client) in ``request.state.plinth_call`` and in the ``current_call`` context
variable. After a mutating management call (not ``/v1``, not feedback) the middleware writes
an audit entry with the method, route, path and status — unless a service already wrote a
detailed one with the state before and after.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plinth.api.errors import error_response, is_console_path
from plinth.auth.accounts import CSRF_HEADER, SESSION_COOKIE, AccountService
from plinth.auth.context import ANONYMOUS, CallInfo, current_call
from plinth.auth.service import AuthService
from plinth.console.app import login_redirect
from plinth.console.render import PROJECT_COOKIE
from plinth.domain.auth import AuditEntry, Principal
from plinth.domain.auth import Scope as KeyScope
from plinth.domain.projects import DEFAULT_PROJECT, StoreScope, current_scope, in_context
from plinth.errors import ErrorCode, PlinthError, not_found

log = logging.getLogger("plinth.api")

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/api/v1/auth/login"})
#: the console's assets and sign-in page (every other console page needs the read scope)
CONSOLE_OPEN = ("/console/static/", "/console/login")
#: paths any authenticated caller may call; the services decide what each may do there
_ANY_CALLER = ("/api/v1/projects", "/api/v1/users", "/api/v1/auth/")
PROJECT_HEADER = b"x-plinth-project"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NOT_AUDITED = ("/api/v1/feedback",)


def required_scopes(method: str, path: str) -> tuple[KeyScope, ...]:
    """The scopes of which a key needs one for ``method path`` (empty: none, an open path)."""
    if path in OPEN_PATHS or path.startswith(CONSOLE_OPEN):
        return ()
    if path == "/v1" or path.startswith("/v1/"):
        return (KeyScope.INFERENCE,)
    if path == "/api/v1/feedback" and method == "POST":
        return (KeyScope.INFERENCE, KeyScope.MANAGE)
    if path == "/api/v1/keys/self" and method in _READ_METHODS:  # a key may read itself, nothing more
        return tuple(KeyScope)
    if path.startswith(_ANY_CALLER):
        return tuple(KeyScope)
    if path.startswith(("/api/v1/keys", "/api/v1/audit")):
        return (KeyScope.ADMIN,)
    if method in _READ_METHODS:
        return (KeyScope.READ,)
    return (KeyScope.MANAGE,)


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", []):
        if k == name:
            return bytes(v).decode("latin-1")
    return None


def _cookie(scope: Scope, name: str) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip() or None
    return None


def _token(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value:
        kind, _, rest = value.partition(" ")
        return rest.strip() if kind.lower() == "bearer" else None
    return _header(scope, b"x-api-key")


class AuthMiddleware:
    def __init__(self, app: ASGIApp, services: Any) -> None:
        self.app = app
        self.services = services
        self.auth = services.auth
        self.accounts = getattr(services, "accounts", None)
        settings = services.settings
        self.sticky_header = settings.deploy_sticky_header.lower().encode()
        self.sso_header = (settings.sso_user_header or "").lower().encode() or None
        self.trusted = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method", "GET")
        client = scope.get("client")
        call = CallInfo(
            principal=ANONYMOUS,
            method=method,
            path=path,
            sticky=_header(scope, self.sticky_header),
            client=client[0] if client else None,
        )
        needed = required_scopes(method, path)
        try:
            call.principal = await self._principal(scope, method, needed)
        except PlinthError as e:
            await self._refuse(scope, receive, send, e)
            return
        token = current_call.set(call)
        scope_token = current_scope.set(StoreScope(project=call.principal.project))
        try:
            await self._serve(call, scope, receive, send, needed)
        finally:
            current_scope.reset(scope_token)
            current_call.reset(token)

    async def _serve(self, call: CallInfo, scope: Scope, receive: Receive, send: Send, needed: tuple[KeyScope, ...]) -> None:
        method, path = call.method, call.path
        if self.auth is not None and self.auth.enabled and needed:
            try:
                self.auth.authorize(call.principal, needed, f"call {method} {path}")
                if method == "POST" and path == "/v1/embeddings":  # generation reserves in the serving hook
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(None, in_context(lambda: self.auth.reserve(call.principal, requests=1, tokens=0)))
            except PlinthError as e:
                if e.code is ErrorCode.PERMISSION_DENIED and method in _MUTATING:
                    await self._audit(call, scope, 403, denied=e.message)
                await self._refuse(scope, receive, send, e)
                return
        scope.setdefault("state", {})["plinth_call"] = call
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if method in _MUTATING and not path.startswith(("/v1/", *_NOT_AUDITED)) and path != "/v1" and not call.audited:
                await self._audit(call, scope, status)

    async def _principal(self, scope: Scope, method: str, needed: tuple[KeyScope, ...]) -> Principal:
        """Who calls, in which project (see the module's docstring); PlinthError to refuse."""
        named = _header(scope, PROJECT_HEADER)
        if named is None and scope.get("path") != "/console/project":
            # A browser's page load or EventSource cannot send a header: the console's project
            # cookie names the project instead (never for an API key, which has its own).
            from_cookie = _cookie(scope, PROJECT_COOKIE)
            if from_cookie is not None and (is_console_path(scope.get("path", "")) or _token(scope) is None):
                named = from_cookie
        if named is not None:
            named = named.strip()
        loop = asyncio.get_running_loop()
        accounts: AccountService | None = self.accounts
        auth: AuthService | None = self.auth
        if auth is None or not auth.enabled or not needed:
            project = named or DEFAULT_PROJECT
            if named and accounts is not None:
                acc = accounts
                await loop.run_in_executor(None, in_context(lambda: acc.check_project_visible(None, True, project)))
            return Principal(actor=ANONYMOUS.actor, project=project)
        keys = auth
        token = _token(scope)
        if token is not None or accounts is None:
            principal: Principal = await loop.run_in_executor(None, in_context(lambda: keys.authenticate(token)))
            if named and named != principal.project:  # a key works in its own project only
                raise not_found("project", named)
            return principal
        users = accounts
        cookie = _cookie(scope, SESSION_COOKIE)
        if cookie is not None:
            session_id, user, csrf_hash = await loop.run_in_executor(None, in_context(lambda: users.session_user(cookie)))
            if method in _MUTATING and not users.csrf_ok(_header(scope, CSRF_HEADER.encode()), csrf_hash):
                raise PlinthError(ErrorCode.PERMISSION_DENIED, "a changing request with a session cookie needs its X-CSRF-Token header")
            found: Principal = await loop.run_in_executor(
                None, in_context(lambda: users.user_principal(user, named or None, session=session_id))
            )
            return found
        if self.sso_header is not None and self._from_trusted_proxy(scope):
            name = _header(scope, self.sso_header)
            if name:
                # The proxy's own cookie signs the browser in on any request, a cross-site form
                # too: a changing request must carry a header no other site can make a browser
                # send (any X-CSRF-Token; custom headers need a CORS preflight plinth never grants).
                if method in _MUTATING and not _header(scope, CSRF_HEADER.encode()):
                    raise PlinthError(
                        ErrorCode.PERMISSION_DENIED, "a changing request through the single-sign-on proxy needs an X-CSRF-Token header"
                    )
                named_user: Principal = await loop.run_in_executor(
                    None, in_context(lambda: users.user_principal(name.strip(), named or None))
                )
                return named_user
        return keys.authenticate(None)  # raises: nothing presented

    def _from_trusted_proxy(self, scope: Scope) -> bool:
        peer = scope.get("client")
        if not peer or not self.trusted:
            return False
        try:
            address = ipaddress.ip_address(peer[0])
        except ValueError:
            return False
        return any(address in net for net in self.trusted)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, err: PlinthError) -> None:
        self.services.metrics.errors.labels(err.code.value).inc()
        path = scope.get("path", "")
        if err.code is ErrorCode.UNAUTHENTICATED and scope.get("method") in _READ_METHODS:
            if is_console_path(path):  # a person, not a client: to the sign-in page and back
                await login_redirect(path, bytes(scope.get("query_string", b"")).decode("latin-1"))(scope, receive, send)
                return
            if path == "/" and "text/html" in (_header(scope, b"accept") or ""):  # a browser opening the server
                await login_redirect("/console/")(scope, receive, send)
                return
        response = error_response(path, err)
        if err.code is ErrorCode.UNAUTHENTICATED:
            response.headers["WWW-Authenticate"] = 'Bearer realm="plinth"'
        await response(scope, receive, send)

    async def _audit(self, call: CallInfo, scope: Scope, status: int, denied: str | None = None) -> None:
        audit = getattr(self.services, "audit", None)
        if audit is None:
            return
        route = getattr(scope.get("route"), "path", None) or call.path
        details: dict[str, Any] = {"method": call.method, "path": call.path, "status": status}
        if call.client:
            details["client"] = call.client
        if denied:
            details["denied"] = denied
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                None,
                in_context(
                    lambda: audit.store.add_audit(
                        AuditEntry(
                            actor=call.principal.actor,
                            action=f"http {call.method} {route}",
                            target_type="http",
                            target=call.path,
                            details=details,
                        )
                    )
                ),
            )
        except Exception:  # the call itself is done; a failed audit write is logged, not answered
            log.exception("writing the audit entry of %s %s failed", call.method, call.path)


# -- for routers --------------------------------------------------------------------------------
def call_of(request: Request) -> CallInfo:
    call = getattr(request.state, "plinth_call", None)
    return call if isinstance(call, CallInfo) else CallInfo(principal=ANONYMOUS)


def principal_of(request: Request) -> Principal:
    return call_of(request).principal


def actor_of(request: Request) -> str:
    return principal_of(request).actor


def check_deployment_access(request: Request, name: str) -> None:
    """A key with model patterns may manage only the deployments those patterns name."""
    principal = principal_of(request)
    if not principal.allows_model(name):
        raise PlinthError(
            ErrorCode.PERMISSION_DENIED,
            f"the API key {principal.key.name if principal.key else ''!r} may not act on deployment {name!r}",
            param="name",
        )
