"""The OpenAPI document at ``/openapi.json``: FastAPI's, completed with what the routes do not
say themselves, so that it describes the server as it answers with ``PLINTH_AUTH`` on (ADR 0060):

- the security schemes (``Authorization: Bearer pk-...`` or ``X-API-Key: pk-...``), required on
  every operation except ``/healthz`` and ``/readyz``;
- the error answers of each operation, in the shape of its path (OpenAI's on ``/v1``, the
  canonical one elsewhere): 400 where it takes parameters or a body, 401 (with
  ``WWW-Authenticate: Bearer``) and 403 where a key is needed, 404 where the path names a
  resource, 413 where it takes a body, and those a route declares with :func:`errors`;
  FastAPI's default 422 is dropped (validation errors are answered 400, ``api/errors.py``);
- the limits that are settings rather than code: ``max_tokens`` and ``n`` on ``/v1`` and the
  largest request body.

Routers declare what only they know with :func:`errors` (409, 415, 422, 429, 502, 503, a
second success status) and :func:`stream` (``text/event-stream``, ``application/x-ndjson``).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from fastapi import FastAPI

from plinth.api.auth import OPEN_PATHS
from plinth.config import Settings

OPENAI_ERROR = "OpenAIError"
CANONICAL_ERROR = "CanonicalError"

#: what each error status means, as the document says it
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "invalid request: a bad parameter or body (the message names the value)",
    401: "no API key, or one that is unknown, revoked or expired (PLINTH_AUTH on)",
    403: "the API key lacks the scope or the model this needs, or a server path is outside the import folders",
    404: "the resource (or model) named in the request does not exist",
    409: "conflicts with what exists (already exists, in use, wrong state)",
    413: "request body (or a file in it) over this server's limit",
    415: "the file's format is not one plinth reads",
    422: "the model or adapter file is damaged or not what it claims",
    429: "over a key's limit or the model's queue is full; retry after Retry-After seconds",
    502: "an upstream the server called failed: a remote model's engine, or a URL it fetched",
    503: "the model or the metadata store is unavailable now",
}

_SUCCESS_DESCRIPTIONS = {
    200: "Successful Response",
    201: "Created",
    202: "Accepted",
    204: "No Content",
}


#: answers beyond the generic ones, by operation ("METHOD path-regex" -> statuses), from what
#: the services raise: 404 where a body or query names a resource, 409 where a write can meet
#: an existing name, a resource in use or a wrong state, 415/422 where files are read, 503
#: where a model is loaded; 200 beside a 201 where an unchanged write is answered 200
DECLARED: list[tuple[str, tuple[int, ...]]] = [
    ("GET /api/v1/(runs|evaluations)/compare", (404,)),
    ("GET /api/v1/jobs", (404,)),
    ("POST /v1/embeddings", (404, 429, 503)),
    ("POST /api/v1/(models|datasets|feedback|jobs|deployments)", (404,)),
    ("POST /api/v1/(models|keys|knowledge-bases|queues|priority-classes|deployments)", (409,)),
    ("POST /api/v1/models(/[^/]+/adapters)?", (403, 415, 422)),
    ("POST /api/v1/models/[^/]+/load", (503,)),
    ("POST /api/v1/datasets(/[^/]+/versions)?", (403, 415, 200)),
    ("POST /api/v1/datasets", (502,)),  # a url that answered an error or could not be fetched
    ("POST /api/v1/jobs", (409, 200)),
    ("POST /api/v1/jobs/[^/]+/(cancel|retry)", (409,)),
    ("(POST|PUT) /api/v1/guardrails/policies(/[^/]+)?", (200,)),
    ("POST /api/v1/knowledge-bases/[^/]+/(search|eval)", (503,)),
    ("DELETE /api/v1/(jobs|queues|priority-classes|guardrails/policies|models|registry/models)/[^/]+(/versions/[^/]+)?", (409,)),
    ("(POST|PUT|PATCH|DELETE) /api/v1/deployments/.+", (409,)),
    ("(PUT|DELETE) /api/v1/registry/models/[^/]+/aliases/.+", (409,)),
    ("GET /readyz", (503,)),
    ("POST /api/v1/auth/login", (401, 429)),  # a wrong password; too many of them
    ("POST /api/v1/(projects|users)", (409,)),
    ("POST /api/v1/keys", (404,)),  # the user or project a server admin names
    ("(PATCH|DELETE) /api/v1/(projects|users)/[^/]+", (409,)),  # the default project, the last admin, not empty
]


#: request bodies a route reads itself (not through a model): an upload is the file's bytes
RAW_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/api/v1/datasets/{name}/versions"): {
        "required": True,
        "description": "the dataset file (JSONL, CSV or Parquet), by content type or the filename's extension",
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}}
            for media in ("application/x-ndjson", "text/csv", "application/vnd.apache.parquet", "application/octet-stream")
        },
    },
}

#: answers with an error status whose body is not an error (readiness says what is not ready)
_NOT_ERROR_SHAPED = {("/readyz", 503)}


def errors(*statuses: int, **success: str) -> dict[int | str, dict[str, Any]]:
    """Extra answers of one route for its ``responses=``: error statuses beyond those every
    route of its kind gets (their body shape is filled in by path), and ``ok_200="..."``-style
    success statuses besides the route's own."""
    out: dict[int | str, dict[str, Any]] = {s: {"description": ERROR_DESCRIPTIONS[s]} for s in statuses}
    for key, description in success.items():
        out[int(key.removeprefix("ok_"))] = {"description": description}
    return out


def stream(media_type: str, description: str, *, also_json: bool = False) -> dict[int | str, dict[str, Any]]:
    """A 200 that may be a stream (``text/event-stream`` or ``application/x-ndjson``) instead
    of, or besides, a JSON object."""
    content: dict[str, Any] = {media_type: {"schema": {"type": "string", "description": description}}}
    if also_json:
        content["application/json"] = {"schema": {"type": "object"}}
    return {200: {"description": description, "content": content}}


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Serve the completed document from ``app.openapi()`` (built once, on first use)."""
    generate = app.openapi
    built: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not built:
            built.update(complete(copy.deepcopy(generate()), settings))
        return built

    app.openapi = openapi  # type: ignore[method-assign]


def complete(doc: dict[str, Any], settings: Settings) -> dict[str, Any]:
    from plinth.api.errors import CanonicalError
    from plinth.serving.protocol import OpenAIError

    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (OpenAIError, CanonicalError):
        _add_model(schemas, model)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    doc["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "an API key, pk-... (with PLINTH_AUTH on)"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "the same key in X-API-Key"},
    }
    doc["info"]["description"] = (
        doc["info"].get("description", "")
        + f" Request bodies are at most {settings.max_body_bytes} bytes (413 above)."
        + " With PLINTH_AUTH on every operation but /healthz and /readyz needs an API key."
    )
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options"):
                _complete_operation(method, path, op)
    _settings_limits(schemas, settings)
    _name_limits(doc, schemas)
    return doc


def _add_model(schemas: dict[str, Any], model: Any) -> None:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    schemas[model.__name__] = schema


def _complete_operation(method: str, path: str, op: dict[str, Any]) -> None:
    if (method, path) in RAW_BODIES:
        op["requestBody"] = copy.deepcopy(RAW_BODIES[(method, path)])
    responses: dict[str, Any] = op.setdefault("responses", {})
    validation = responses.get("422", {})
    if "HTTPValidationError" in str(validation.get("content", "")):
        del responses["422"]  # FastAPI's own: plinth answers validation errors with 400
    takes_input = bool(op.get("parameters")) or "requestBody" in op
    wanted = {status for pattern, statuses in DECLARED if re.fullmatch(pattern, f"{method.upper()} {path}") for status in statuses}
    if takes_input:
        wanted.add(400)
    if "requestBody" in op:
        wanted.add(413)
    if "{" in path:
        wanted.add(404)
    if path in OPEN_PATHS:
        op["security"] = []
    else:
        op["security"] = [{"bearer": []}, {"apiKey": []}]
        wanted |= {401, 403}
    for extra in wanted:
        description = ERROR_DESCRIPTIONS.get(extra) or _SUCCESS_DESCRIPTIONS.get(extra, "")
        responses.setdefault(str(extra), {"description": description})
    shape = OPENAI_ERROR if path == "/v1" or path.startswith("/v1/") else CANONICAL_ERROR
    for status, response in responses.items():
        code = int(status)
        if code < 400 or (path, code) in _NOT_ERROR_SHAPED:
            if code != 204:
                response.setdefault("content", {"application/json": {"schema": {"type": "object"}}})
            continue
        response["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{shape}"}}}
        if code == 401:
            response["headers"] = {
                "WWW-Authenticate": {"required": True, "schema": {"type": "string"}, "description": 'Bearer realm="plinth"'}
            }
        if code == 429:
            response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}}
    op["responses"] = dict(sorted(responses.items()))


def _pattern(regex: re.Pattern[str]) -> str:
    """A service's own regex as a JSON Schema pattern (they are written in the common subset)."""
    return regex.pattern


def _name_limits(doc: dict[str, Any], schemas: dict[str, Any]) -> None:
    """The name patterns and enums the services check, declared where names enter."""
    from plinth.auth.service import MODEL_PATTERN_RE
    from plinth.domain.auth import KEY_NAME_RE, BudgetPeriod, Scope
    from plinth.domain.datasets import DATASET_NAME_RE
    from plinth.domain.deployments import DEPLOYMENT_NAME_RE
    from plinth.domain.jobs import NAME_RE as JOBS_NAME_RE
    from plinth.domain.jobs import JobState
    from plinth.domain.knowledge import KB_NAME_RE
    from plinth.domain.tracking import ALIAS_RE
    from plinth.guardrails.policy import NAME_RE as POLICY_NAME_RE
    from plinth.jobs.executors import executor_entries
    from plinth.usage.service import RATINGS, RESPONSE_ID_RE

    version = r"(latest|[1-9][0-9]{0,8})"
    states = "|".join(s.value for s in JobState)
    params = [  # (path prefix, parameter, pattern)
        ("/api/v1/datasets/{name}", "name", _pattern(DATASET_NAME_RE)),
        ("/api/v1/datasets/{name}/versions/{version}", "version", f"^{version}$"),
        ("/api/v1/datasets/{name}/diff", "from", f"^({version}|[A-Za-z0-9][A-Za-z0-9._-]{{0,127}}@{version})$"),
        ("/api/v1/datasets/{name}/diff", "to", f"^({version}|[A-Za-z0-9][A-Za-z0-9._-]{{0,127}}@{version})$"),
        ("/api/v1/knowledge-bases/{name}", "name", _pattern(KB_NAME_RE)),
        ("/api/v1/queues/{name}", "name", _pattern(JOBS_NAME_RE)),
        ("/api/v1/priority-classes/{name}", "name", _pattern(JOBS_NAME_RE)),
        ("/api/v1/guardrails/policies/{name}", "name", _pattern(POLICY_NAME_RE)),
        ("/api/v1/registry/models/{name}/aliases/{alias}", "alias", _pattern(ALIAS_RE)),
        ("/api/v1/jobs", "state", f"^({states})(,({states}))*$"),
        ("/api/v1/jobs", "label", "^[^=]+=.*$"),
    ]
    for path, item in doc.get("paths", {}).items():
        for op in item.values():
            for p in op.get("parameters", []) if isinstance(op, dict) else []:
                for prefix, name, pattern in params:
                    if p.get("name") == name and (path == prefix or path.startswith(prefix + "/")):
                        schema = p.setdefault("schema", {})
                        (schema.get("items") if schema.get("type") == "array" else schema)["pattern"] = pattern
    bodies = [  # (component, property, JSON Schema keywords)
        ("CreateQueue", "name", {"pattern": _pattern(JOBS_NAME_RE)}),
        ("CreatePriorityClass", "name", {"pattern": _pattern(JOBS_NAME_RE)}),
        ("CreateKb", "name", {"pattern": _pattern(KB_NAME_RE)}),
        ("CreateKey", "name", {"pattern": _pattern(KEY_NAME_RE)}),
        ("CreateDeployment", "name", {"pattern": _pattern(DEPLOYMENT_NAME_RE)}),
        ("ImportDataset", "name", {"pattern": _pattern(DATASET_NAME_RE)}),
        ("ImportDataset", "path", {"minLength": 1}),
        ("ImportAdapter", "path", {"minLength": 1}),
        ("SubmitJob", "kind", {"enum": [e.kind for e in executor_entries()]}),
        ("CreateKey", "budget_period", {"enum": [p.value for p in BudgetPeriod]}),
        ("FeedbackBody", "response_id", {"pattern": _pattern(RESPONSE_ID_RE)}),
        (
            "FeedbackBody",
            "rating",
            {"anyOf": [{"type": "integer", "minimum": -1, "maximum": 1}, {"type": "string", "enum": sorted(RATINGS)}]},
        ),
        ("CreateKey", "models", {"items": {"type": "string", "pattern": _pattern(MODEL_PATTERN_RE)}}),
        (
            "UpdateKey",
            "models",
            {"anyOf": [{"type": "array", "items": {"type": "string", "pattern": _pattern(MODEL_PATTERN_RE)}}, {"type": "null"}]},
        ),
        ("CreateKey", "scopes", {"minItems": 1, "items": {"type": "string", "enum": [s.value for s in Scope]}}),
        (
            "UpdateKey",
            "scopes",
            {"anyOf": [{"type": "array", "minItems": 1, "items": {"type": "string", "enum": [s.value for s in Scope]}}, {"type": "null"}]},
        ),
        ("LimitsBody", "budget_period", {"enum": [p.value for p in BudgetPeriod]}),
    ]
    for component, prop, keywords in bodies:
        target = schemas.get(component, {}).get("properties", {}).get(prop)
        if target is not None:
            target.update(keywords)


def _settings_limits(schemas: dict[str, Any], settings: Settings) -> None:
    """The maxima that are settings: ``max_tokens`` (``max_output_tokens``) and ``n`` of the /v1 generation requests."""
    limits = {
        "max_tokens": settings.max_tokens_limit,
        "max_completion_tokens": settings.max_tokens_limit,
        "max_output_tokens": settings.max_tokens_limit,
        "n": settings.max_n,
    }
    for name in ("ChatCompletionRequest", "CompletionRequest", "ResponsesRequest"):
        props = schemas.get(name, {}).get("properties", {})
        for field, limit in limits.items():
            if field in props:
                _set_maximum(props[field], limit)


def _set_maximum(prop: dict[str, Any], limit: int) -> None:
    for branch in [prop, *prop.get("anyOf", [])]:
        if branch.get("type") == "integer":
            branch["maximum"] = limit
