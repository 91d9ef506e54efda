"""The error table and the two error shapes (OpenAI on /v1, canonical elsewhere)."""

from __future__ import annotations

import json

import pytest

from plinth.errors import ERROR_TABLE, ErrorCode, PlinthError, not_found

OPENAI_TYPES = {
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "rate_limit_error",
    "server_error",
}


def test_every_code_has_a_table_entry() -> None:
    assert set(ERROR_TABLE) == set(ErrorCode)


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_code_maps_to_an_http_error_status_and_an_openai_type(code: ErrorCode) -> None:
    spec = ERROR_TABLE[code]
    assert 400 <= spec.http_status <= 599
    assert spec.openai_type in OPENAI_TYPES
    # client mistakes are 4xx, our own failures 5xx, and the OpenAI type says the same
    assert (spec.http_status >= 500) == (spec.openai_type == "server_error")


def test_code_values_are_unique_snake_case() -> None:
    values = [c.value for c in ErrorCode]
    assert len(values) == len(set(values))
    for v in values:
        assert v == v.lower() and " " not in v


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (ErrorCode.INVALID_REQUEST, 400),
        (ErrorCode.INVALID_JSON, 400),
        (ErrorCode.CONTEXT_LENGTH_EXCEEDED, 400),
        (ErrorCode.NOT_FOUND, 404),
        (ErrorCode.MODEL_NOT_FOUND, 404),
        (ErrorCode.PAYLOAD_TOO_LARGE, 413),
        (ErrorCode.ALREADY_EXISTS, 409),
        (ErrorCode.INVALID_MODEL_FILE, 422),
        (ErrorCode.UNSUPPORTED_FORMAT, 415),
        (ErrorCode.UNAUTHENTICATED, 401),
        (ErrorCode.SERVER_BUSY, 429),
        (ErrorCode.RUNTIME_UNAVAILABLE, 503),
        (ErrorCode.INTERNAL, 500),
    ],
)
def test_http_status_of_the_main_codes_is_pinned(code: ErrorCode, status: int) -> None:
    assert PlinthError(code, "x").http_status == status


def test_codes_are_pinned_by_value() -> None:
    # Clients match on these strings: renaming one is a breaking change.
    assert ErrorCode.INVALID_REQUEST.value == "invalid_request"
    assert ErrorCode.MODEL_NOT_FOUND.value == "model_not_found"
    assert ErrorCode.SERVER_BUSY.value == "server_busy"
    assert ErrorCode.CONTEXT_LENGTH_EXCEEDED.value == "context_length_exceeded"
    assert ErrorCode.INTERNAL.value == "internal_error"


def test_openai_shape_has_exactly_the_four_keys() -> None:
    err = PlinthError(ErrorCode.MODEL_NOT_FOUND, "model 'nope' does not exist", param="model", details={"name": "nope"}, retry_after=3)
    body = err.to_openai()
    assert list(body) == ["error"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"] == {
        "message": "model 'nope' does not exist",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    json.dumps(body)  # serialisable as is


def test_openai_shape_keeps_a_null_param() -> None:
    body = PlinthError(ErrorCode.SERVER_BUSY, "busy").to_openai()
    assert body["error"]["param"] is None
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["code"] == "server_busy"


def test_canonical_shape_minimal() -> None:
    body = PlinthError(ErrorCode.INTERNAL, "internal error").to_canonical()
    assert body == {"error": {"code": "internal_error", "message": "internal error"}}


def test_canonical_shape_with_param_and_details() -> None:
    err = PlinthError(ErrorCode.INVALID_REQUEST, "bad name 'a b'", param="name", details={"name": "a b"})
    assert err.to_canonical() == {
        "error": {"code": "invalid_request", "message": "bad name 'a b'", "param": "name", "details": {"name": "a b"}}
    }
    json.dumps(err.to_canonical())


def test_plinth_error_is_an_exception_carrying_its_message() -> None:
    err = PlinthError(ErrorCode.SERVER_BUSY, "model 'm' is saturated", retry_after=2.5)
    assert isinstance(err, Exception)
    assert str(err) == "model 'm' is saturated"
    assert err.retry_after == 2.5
    assert err.details == {}
    assert err.openai_type == "rate_limit_error"


def test_not_found_names_the_kind_and_the_value() -> None:
    err = not_found("model", "llama-7b")
    assert err.code == ErrorCode.NOT_FOUND
    assert err.http_status == 404
    assert "model" in err.message and "'llama-7b'" in err.message
    assert err.details == {"kind": "model", "name": "llama-7b"}


def test_only_a_store_unavailable_failure_is_transient() -> None:
    from plinth.errors import transient

    assert transient(PlinthError(ErrorCode.STORE_UNAVAILABLE, "metadata store x is unavailable: database is locked"))
    assert not transient(PlinthError(ErrorCode.INVALID_REQUEST, "bad"))
    assert not transient(RuntimeError("database is locked"))
