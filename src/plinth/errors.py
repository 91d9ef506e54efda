"""Transport-neutral errors.

Every failure plinth reports on purpose is a :class:`PlinthError` carrying an
:class:`ErrorCode`. One table (:data:`ERROR_TABLE`) maps each code to its HTTP status
and to the OpenAI error ``type`` used on ``/v1``; the API, the CLI and later the web
console all read it, so the same failure looks the same everywhere.

This module imports nothing of plinth's own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class ErrorCode(str, enum.Enum):
    INVALID_REQUEST = "invalid_request"
    INVALID_JSON = "invalid_json"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    REQUEST_TIMEOUT = "request_timeout"
    NOT_FOUND = "not_found"
    MODEL_NOT_FOUND = "model_not_found"
    ALREADY_EXISTS = "already_exists"
    CONFLICT = "conflict"
    INVALID_MODEL_FILE = "invalid_model_file"
    UNSUPPORTED_FORMAT = "unsupported_format"
    UNSUPPORTED = "unsupported"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"
    RATE_LIMITED = "rate_limited"
    SERVER_BUSY = "server_busy"
    RUNTIME_UNAVAILABLE = "runtime_unavailable"
    UPSTREAM_ERROR = "upstream_error"
    STORE_UNAVAILABLE = "store_unavailable"
    INTEGRITY_ERROR = "integrity_error"
    INTERNAL = "internal_error"


@dataclass(frozen=True)
class ErrorSpec:
    http_status: int
    openai_type: str


ERROR_TABLE: dict[ErrorCode, ErrorSpec] = {
    ErrorCode.INVALID_REQUEST: ErrorSpec(400, "invalid_request_error"),
    ErrorCode.INVALID_JSON: ErrorSpec(400, "invalid_request_error"),
    ErrorCode.CONTEXT_LENGTH_EXCEEDED: ErrorSpec(400, "invalid_request_error"),
    ErrorCode.PAYLOAD_TOO_LARGE: ErrorSpec(413, "invalid_request_error"),
    ErrorCode.REQUEST_TIMEOUT: ErrorSpec(408, "invalid_request_error"),
    ErrorCode.NOT_FOUND: ErrorSpec(404, "invalid_request_error"),
    ErrorCode.MODEL_NOT_FOUND: ErrorSpec(404, "invalid_request_error"),
    ErrorCode.ALREADY_EXISTS: ErrorSpec(409, "invalid_request_error"),
    ErrorCode.CONFLICT: ErrorSpec(409, "invalid_request_error"),
    ErrorCode.INVALID_MODEL_FILE: ErrorSpec(422, "invalid_request_error"),
    ErrorCode.UNSUPPORTED_FORMAT: ErrorSpec(415, "invalid_request_error"),
    ErrorCode.UNSUPPORTED: ErrorSpec(400, "invalid_request_error"),
    ErrorCode.UNAUTHENTICATED: ErrorSpec(401, "authentication_error"),
    ErrorCode.PERMISSION_DENIED: ErrorSpec(403, "permission_error"),
    ErrorCode.RATE_LIMITED: ErrorSpec(429, "rate_limit_error"),
    ErrorCode.SERVER_BUSY: ErrorSpec(429, "rate_limit_error"),
    ErrorCode.RUNTIME_UNAVAILABLE: ErrorSpec(503, "server_error"),
    ErrorCode.UPSTREAM_ERROR: ErrorSpec(502, "server_error"),
    ErrorCode.STORE_UNAVAILABLE: ErrorSpec(503, "server_error"),
    ErrorCode.INTEGRITY_ERROR: ErrorSpec(500, "server_error"),
    ErrorCode.INTERNAL: ErrorSpec(500, "server_error"),
}


class PlinthError(Exception):
    """An expected failure with a code, a human message naming the bad value, and details.

    ``param`` names the offending request field where there is one (OpenAI's ``param``).
    ``retry_after`` (seconds) is sent as the ``Retry-After`` header for 429/503 answers.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        param: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.details = details or {}
        self.retry_after = retry_after

    @property
    def http_status(self) -> int:
        return ERROR_TABLE[self.code].http_status

    @property
    def openai_type(self) -> str:
        return ERROR_TABLE[self.code].openai_type

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI error shape used on ``/v1``."""
        return {
            "error": {
                "message": self.message,
                "type": self.openai_type,
                "param": self.param,
                "code": self.code.value,
            }
        }

    def to_canonical(self) -> dict[str, Any]:
        """The one error shape of the management API (``/api/v1``) and everything else."""
        body: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.param is not None:
            body["param"] = self.param
        if self.details:
            body["details"] = self.details
        return {"error": body}

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"PlinthError({self.code.value!r}, {self.message!r})"


def not_found(kind: str, name: str) -> PlinthError:
    return PlinthError(ErrorCode.NOT_FOUND, f"{kind} {name!r} does not exist", details={"kind": kind, "name": name})


def transient(exc: BaseException) -> bool:
    """A failure a background loop retries as it is on its next round: the metadata store busy
    (SQLite locked by another writer) or unreachable for a moment. Such loops log it as a
    warning, not as a traceback."""
    return isinstance(exc, PlinthError) and exc.code is ErrorCode.STORE_UNAVAILABLE
