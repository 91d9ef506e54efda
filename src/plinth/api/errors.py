"""Error handlers: every error leaves in the documented shape.

``/v1/...`` answers in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``;
everything else in plinth's canonical shape ``{"error": {"code", "message", ...}}``. No
traceback ever reaches a client; unexpected exceptions are logged and answered as
``internal_error``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from plinth.api.server_paths import hide_paths
from plinth.console.render import error_page
from plinth.errors import ErrorCode, PlinthError

log = logging.getLogger("plinth.api")


class CanonicalErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: ErrorCode
    message: str
    param: str | None = Field(None, description="the request field at fault, when there is one")
    details: dict[str, Any] | None = Field(None, description="more about the failure, by code")


class CanonicalError(BaseModel):
    """The error shape of the management API (``/api/v1``) and every path outside ``/v1``."""

    model_config = ConfigDict(extra="forbid")
    error: CanonicalErrorBody


def is_console_path(path: str) -> bool:
    return (path == "/console" or path.startswith("/console/")) and not path.startswith("/console/static/")


def is_openai_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def error_response(path: str, err: PlinthError) -> Response:
    if is_console_path(path):  # a page: the same error as a page, not as JSON
        return error_page(err)
    body = err.to_openai() if is_openai_path(path) else err.to_canonical()
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(err.retry_after)))
    if err.http_status == 401:  # every 401 says how to authenticate (RFC 9110)
        headers["WWW-Authenticate"] = 'Bearer realm="plinth"'
    return JSONResponse(body, status_code=err.http_status, headers=headers)


def _validation_error(exc: RequestValidationError) -> PlinthError:
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return PlinthError(
            ErrorCode.INVALID_JSON, f"the request body is not valid JSON: {first.get('ctx', {}).get('error', '')}".rstrip(": ")
        )
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "path", "query", "header")]
    # Drop pydantic's union-branch names (e.g. "str", "list[TextPart]", "constrained-int") from the location.
    loc = [
        p
        for p in loc
        if not (p[:1].islower() and ("[" in p or p in _BRANCH_NAMES or p.startswith(("constrained-", "function-", "`function-"))))
    ]
    param = ".".join(loc) or None
    if first.get("type") == "missing":
        message = f"missing required field {param!r}" if param else "missing required body"
    else:
        msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        message = f"invalid value for {param!r}: {msg}" if param else msg
        message += _shown_input(first.get("input"))
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return PlinthError(ErrorCode.INVALID_REQUEST, message, param=param)


_BRANCH_NAMES = frozenset({"str", "int", "float", "bool"})


def _shown_input(value: object) -> str:
    """`` (got VALUE)`` for a scalar input, so the message names the bad value; long values
    are cut (a message is not a place for a 10,000-digit number)."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    text = repr(value)
    return f" (got {text[:60]}...{text[-10:]})" if len(text) > 80 else f" (got {text})"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PlinthError)
    async def _plinth(request: Request, exc: PlinthError) -> Response:
        _count(request, exc)
        return error_response(request.url.path, hide_paths(request, exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        err = _validation_error(exc)
        _count(request, err)
        return error_response(request.url.path, err)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            err = PlinthError(ErrorCode.NOT_FOUND, f"no route {request.method} {request.url.path}")
        elif exc.status_code == 405:
            err = PlinthError(ErrorCode.INVALID_REQUEST, f"method {request.method} is not allowed on {request.url.path}")
        elif exc.status_code == 400:
            # FastAPI raises this when the body cannot be decoded (invalid UTF-8, ...).
            err = PlinthError(ErrorCode.INVALID_JSON, f"the request body could not be parsed: {exc.detail}")
        else:
            code = {401: ErrorCode.UNAUTHENTICATED, 403: ErrorCode.PERMISSION_DENIED, 413: ErrorCode.PAYLOAD_TOO_LARGE}.get(
                exc.status_code, ErrorCode.INVALID_REQUEST if exc.status_code < 500 else ErrorCode.INTERNAL
            )
            err = PlinthError(code, str(exc.detail))
        _count(request, err)
        resp = error_response(request.url.path, err)
        resp.status_code = exc.status_code if exc.status_code != 400 else err.http_status
        for name, value in (exc.headers or {}).items():
            resp.headers[name] = value
        if exc.status_code == 405:  # Starlette's Allow names one route's methods; a path may have several routes
            resp.headers["Allow"] = ", ".join(_allowed_methods(request))
        return resp

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # not inside an except block: the traceback comes from exc, not from the current exception
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        err = PlinthError(ErrorCode.INTERNAL, "internal error; the server log has the details")
        _count(request, err)
        return error_response(request.url.path, err)


def _allowed_methods(request: Request) -> list[str]:
    """Every method of the resource this path names: the routes with the path template of the
    first route that matches (``/api/v1/keys/self`` is its own resource, not ``/keys/{ref}``)."""
    template = None
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is None or not route.methods:
            continue
        if template is None and regex.match(request.url.path):
            template = route.path_format
        if template is not None and route.path_format == template:
            methods |= set(route.methods)
    return sorted(methods)


def _count(request: Request, err: PlinthError) -> None:
    services = getattr(request.app.state, "services", None)
    if services is not None:
        services.metrics.errors.labels(err.code.value).inc()
