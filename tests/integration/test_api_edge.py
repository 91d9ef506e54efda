"""The API edge, as a class: every integer parameter of every route is bounded, and numbers past
64 bits, negative numbers, NUL bytes and garbage are answered 400 in the documented error shape
(OpenAI's on ``/v1``, the canonical one elsewhere), never a 5xx; the CLI prints one ``error:``
line for the same inputs, never a traceback.

The routes are walked from the application itself (``app.routes``, through FastAPI's route
contexts), so a route added later with an unbounded integer fails here until it declares its
bounds. Requests go to the shared live server (a real ``plinth up``, real SQLite).
"""

from __future__ import annotations

import html
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import annotated_types
import httpx
import pytest
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel

from plinth.domain.numbers import INT64_MAX
from tests.support import cli
from tests.support.live_server import LiveServer

INT64_MIN = -INT64_MAX - 1
BAD_VALUES = [str(2**64), str(10**30), "-1", "\x00", "garbage"]


# -- the application's routes -------------------------------------------------------------------
@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real application over real services on a scratch home (read for its routes only)."""
    from plinth.api.app import create_app
    from plinth.config import load_settings
    from plinth.services import build_services

    settings = load_settings(home=tmp_path_factory.mktemp("routes-home"), preload_default_model=False, jobs_local_worker=False)
    services = build_services(settings)
    try:
        yield create_app(services)
    finally:
        services.close()


def _is_int(annotation: Any) -> bool:
    return annotation is int or any(_is_int(a) for a in typing.get_args(annotation) if a is not type(None))


def _bounds(metadata: list[Any]) -> tuple[int | None, int | None]:
    lo = hi = None
    for m in metadata:
        if isinstance(m, (annotated_types.Ge, annotated_types.Gt)):
            lo = m.ge if isinstance(m, annotated_types.Ge) else m.gt + 1
        if isinstance(m, (annotated_types.Le, annotated_types.Lt)):
            hi = m.le if isinstance(m, annotated_types.Le) else m.lt - 1
    return lo, hi


def _body_ints(annotation: Any, prefix: str, metadata: list[Any]) -> Iterator[tuple[str, tuple[int | None, int | None]]]:
    """(dotted field, bounds) of every int inside a body annotation (models, unions, lists)."""
    if annotation is int:
        yield prefix, _bounds(metadata)
        return
    if typing.get_origin(annotation) is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        more = [m for e in extra for m in (getattr(e, "metadata", None) or [e])]
        yield from _body_ints(inner, prefix, metadata + more)
        return
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, f in annotation.model_fields.items():
            yield from _body_ints(f.annotation, f"{prefix}.{name}" if prefix else name, list(f.metadata))
        return
    origin = typing.get_origin(annotation)
    for arg in typing.get_args(annotation):
        if origin in (list, tuple, set, frozenset):
            yield from _body_ints(arg, f"{prefix}.0", [])
        elif origin is dict:
            continue  # free-form values: not declared, the services check them
        elif arg is not type(None):
            yield from _body_ints(arg, prefix, metadata)


def _int_params(app: Any) -> list[tuple[str, str, str, str, tuple[int | None, int | None], dict[str, str]]]:
    """(method, path, where, name, bounds, the route's other required query parameters) of
    every integer parameter of every route."""
    out = []
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            continue
        required = {p.alias: "1" for p in dependant.query_params if p.field_info.is_required()}
        for method in sorted(route.methods or ()):
            for where, params in (("path", dependant.path_params), ("query", dependant.query_params)):
                for p in params:
                    if _is_int(p.field_info.annotation):
                        out.append((method, route.path_format, where, p.alias, _bounds(p.field_info.metadata), required))
            for p in dependant.body_params:
                for name, bounds in _body_ints(p.field_info.annotation, "", []):
                    out.append((method, route.path_format, "body", name, bounds, required))
    return out


#: integers never stored, with their own documented range: OpenAI's sampling seed (a uint64 or
#: an int64), folded to the runtime's seed width by the serving code
NOT_STORED = {("/v1/chat/completions", "seed"): (INT64_MIN, 2**64 - 1), ("/v1/completions", "seed"): (INT64_MIN, 2**64 - 1)}


def test_every_integer_parameter_declares_bounds_the_store_can_hold(app: Any) -> None:
    params = _int_params(app)
    assert len(params) > 60, "the walk found too few integer parameters: is it still reading the routes?"
    unbounded = [
        f"{m} {path} {where} {name}: {lo}..{hi}"
        for m, path, where, name, (lo, hi), _ in params
        if NOT_STORED.get((path, name)) != (lo, hi) and (lo is None or hi is None or lo < INT64_MIN or hi > INT64_MAX)
    ]
    assert not unbounded, "integer parameters without bounds inside 64 bits:\n" + "\n".join(unbounded)


def _check_error(r: httpx.Response, path: str, what: str) -> dict[str, Any]:
    assert r.status_code < 500, f"{what}: {r.status_code} {r.text[:300]}"
    assert r.status_code == 400, f"{what}: expected 400, got {r.status_code} {r.text[:300]}"
    if path.startswith("/console"):  # a console page answers the same error as a page (ADR 0110)
        assert r.headers["content-type"].startswith("text/html"), what
        found = re.search(r'<p class="error-box" role="alert"><code>([a-z_]+)</code> (.*?)</p>', r.text, re.S)
        assert found, f"{what}: no error box in {r.text[:500]}"
        assert found.group(1) in ("invalid_request", "invalid_json"), what
        return {"code": found.group(1), "message": html.unescape(found.group(2))}
    assert r.headers["content-type"].startswith("application/json"), what
    err = r.json()["error"]
    if path.startswith("/v1/"):
        assert set(err) == {"message", "type", "param", "code"}, what
        assert err["type"] == "invalid_request_error", what
    else:
        assert {"code", "message"} <= set(err) <= {"code", "message", "param", "details"}, what
    assert err["code"] in ("invalid_request", "invalid_json"), what
    return err


def _fill(path: str, name: str | None = None, value: str = "") -> str:
    if name is not None:
        path = path.replace("{" + name + "}", value)
    return re.sub(r"\{[^}]+\}", "x", path)


def test_bad_numbers_in_paths_and_queries_are_400_naming_the_value(app: Any, live_server: LiveServer) -> None:
    seen = 0
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        for method, path, where, name, _, required in _int_params(app):
            if where == "body":
                continue
            for value in BAD_VALUES:
                if where == "path":
                    url, params = _fill(path, name, "%00" if value == "\x00" else value), dict(required)
                else:
                    url, params = _fill(path), {**required, name: value}
                r = http.request(method, url, params=params)
                err = _check_error(r, path, f"{method} {path} {where} {name}={value!r}")
                if value not in ("\x00",):
                    assert value in err["message"] or "(got " in err["message"], err["message"]
                seen += 1
    assert seen >= 20 * len(BAD_VALUES)


def _nested(name: str, value: Any) -> Any:
    body: Any = value
    for part in reversed(name.split(".")):
        body = [body] if part == "0" else {part: body}
    return body


def test_bad_numbers_in_bodies_are_400(app: Any, live_server: LiveServer) -> None:
    """Each integer field of each JSON body, alone, set to a number past 64 bits or -1 (or a
    string): validation refuses it before any work starts."""
    seen = 0
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        for method, path, where, name, (lo, _), _required in _int_params(app):
            if where != "body":
                continue
            for value in (2**64, 10**30, -(2**64), "garbage") + ((-1,) if (lo or 0) >= 0 else ()):
                r = http.request(method, _fill(path), json=_nested(name, value))
                _check_error(r, path, f"{method} {path} body {name}={value!r}")
                seen += 1
    assert seen > 150


def test_registry_and_dataset_references_past_the_store_range(live_server: LiveServer) -> None:
    """Numbers inside references (NAME@N) are parsed with the same bounds."""
    big = "99999999999999999999999"
    api = live_server.url + "/api/v1"
    for url, params in [
        (f"{api}/datasets/x/versions/{big}", {}),
        (f"{api}/datasets/x/versions/{big}/rows", {}),
        (f"{api}/datasets/x/diff", {"from": big}),
        (f"{api}/datasets/x/diff", {"from": f"x@{big}", "to": "1"}),
        (f"{api}/datasets/x/versions/²", {}),
    ]:
        _check_error(httpx.get(url, params=params, timeout=30), url, f"GET {url} {params}")
    # a registry or knowledge-base version past the range names no model: 404 on /v1, never 500
    for model in [f"x@{big}", "x@²"]:
        r = httpx.post(
            live_server.v1 + "/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}, timeout=30
        )
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "model_not_found"
    r = httpx.post(
        live_server.v1 + "/chat/completions",
        json={"model": "smollm2-135m-instruct", "knowledge_base": f"kb@{big}", "messages": [{"role": "user", "content": "hi"}]},
        timeout=60,
    )
    assert r.status_code == 400 and big in r.json()["error"]["message"], r.text


def test_405_names_every_allowed_method(live_server: LiveServer) -> None:
    r = httpx.put(live_server.url + "/api/v1/models/x", timeout=30)
    assert r.status_code == 405
    assert r.headers["allow"] == "DELETE, GET"
    assert r.json()["error"]["code"] == "invalid_request"


# -- the CLI --------------------------------------------------------------------------------------
def _plinth(home: Path, *args: str) -> CompletedProcess[str]:
    return cli.plinth(home, *args)  # in this process (tests/support/cli.py)


@pytest.mark.parametrize(
    "args",
    [
        ["registry", "show", "x@99999999999999999999999"],
        ["registry", "rm", f"x@{2**64}"],
        ["registry", "card", "x@²"],
        ["datasets", "show", "x@99999999999999999999999"],
        ["guardrails", "show", f"default@{2**64}"],
        ["kb", "show", f"kb@{10**30}"],
        ["deploy", "create", "d", "--model", f"m={2**64}"],
        ["queues", "create", "q", "--cpu", str(2**64), "--memory", "1GiB"],
        ["queues", "create", "q", "--cpu", "1", "--memory", "9" * 400 + "TiB"],
    ],
    ids=lambda a: " ".join(a)[:40],
)
def test_cli_prints_one_error_line_for_numbers_past_64_bits(tmp_path: Path, args: list[str]) -> None:
    proc = _plinth(tmp_path / "home", *args)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode != 0, proc.stdout
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]  # (a progress bar may come first)
    assert len(errors) == 1, proc.stderr
