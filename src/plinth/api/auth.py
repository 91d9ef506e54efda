"""Authentication, authorisation and the HTTP side of the audit log: one pure ASGI middleware.

With ``PLINTH_AUTH`` on, every route except ``/healthz`` and ``/readyz`` needs a key
(``Authorization: Bearer pk-...`` or ``X-API-Key``): 401 ``unauthenticated`` for a missing or
invalid key (with ``WWW-Authenticate: Bearer``), 403 ``permission_denied`` for a key without
the scope the route needs:

=====================================================  ==========================
``/v1/...``                                            ``inference``
``POST /api/v1/feedback``                              ``inference`` or ``manage``
``GET /api/v1/keys/self``                              any key
``/api/v1/keys...``, ``/api/v1/audit...``              ``admin``
any other ``GET``/``HEAD``/``OPTIONS``                 ``read`` (``manage`` and ``admin`` imply it)
any other method                                       ``manage``
=====================================================  ==========================

(``admin`` implies every scope.) Errors use the error shape of the path, as every other
error does. With auth off every call is made by ``anonymous`` with every scope.

Every call gets a :class:`plinth.auth.context.CallInfo` (the principal, the sticky-routing
header, the client) in ``request.state.plinth_call`` and in the ``current_call`` context
variable. After a mutating management call (not ``/v1``, not feedback) the middleware writes
an audit entry with the method, route, path and status — unless a service already wrote a
detailed one with the state before and after.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plinth.api.errors import error_response
from plinth.auth.context import ANONYMOUS, CallInfo, current_call
from plinth.domain.auth import AuditEntry, Principal
from plinth.domain.auth import Scope as KeyScope
from plinth.errors import ErrorCode, PlinthError

log = logging.getLogger("plinth.api")

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NOT_AUDITED = ("/api/v1/feedback",)


def required_scopes(method: str, path: str) -> tuple[KeyScope, ...]:
    """The scopes of which a key needs one for ``method path`` (empty: none, an open path)."""
    if path in OPEN_PATHS:
        return ()
    if path == "/v1" or path.startswith("/v1/"):
        return (KeyScope.INFERENCE,)
    if path == "/api/v1/feedback" and method == "POST":
        return (KeyScope.INFERENCE, KeyScope.MANAGE)
    if path == "/api/v1/keys/self":
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
        self.sticky_header = services.settings.deploy_sticky_header.lower().encode()

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
        if self.auth is not None and self.auth.enabled and needed:
            try:
                call.principal = self.auth.authenticate(_token(scope))
                self.auth.authorize(call.principal, needed, f"call {method} {path}")
                if method == "POST" and path == "/v1/embeddings":  # generation reserves in the serving hook
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(None, lambda: self.auth.reserve(call.principal, requests=1, tokens=0))
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

        token = current_call.set(call)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            current_call.reset(token)
            if method in _MUTATING and not path.startswith(("/v1/", *_NOT_AUDITED)) and path != "/v1" and not call.audited:
                await self._audit(call, scope, status)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, err: PlinthError) -> None:
        self.services.metrics.errors.labels(err.code.value).inc()
        response = error_response(scope.get("path", ""), err)
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
                lambda: audit.store.add_audit(
                    AuditEntry(
                        actor=call.principal.actor,
                        action=f"http {call.method} {route}",
                        target_type="http",
                        target=call.path,
                        details=details,
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
