"""Structured outputs (``response_format``) on the live server's llama.cpp engine, driven by
the official openai client: answers parse and validate, streamed or not, inside batches
with unconstrained requests whose answers stay what they are alone."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jsonschema
import openai
import pydantic
import pytest

from tests.support.live_server import MODEL, LiveServer

CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 40},
        "country": {"type": "string", "maxLength": 40},
        "population": {"type": "integer"},
        "coastal": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["big", "old", "green"]}, "maxItems": 3},
    },
    "required": ["city", "country", "population", "coastal", "tags"],
    "additionalProperties": False,
}
ASK = [{"role": "user", "content": "Describe Paris as JSON."}]


def _schema_format(schema: dict, name: str = "city") -> dict:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def test_json_schema_answers_parse_and_validate(client) -> None:
    r = client.chat.completions.create(model=MODEL, messages=ASK, response_format=_schema_format(CITY), max_tokens=120, temperature=0)
    choice = r.choices[0]
    assert choice.finish_reason == "stop"
    jsonschema.validate(json.loads(choice.message.content), CITY)


def test_json_object_answers_are_objects(client) -> None:
    ask = [{"role": "user", "content": "Give the colour and size of an apple as JSON."}]
    r = client.chat.completions.create(model=MODEL, messages=ask, response_format={"type": "json_object"}, max_tokens=120, temperature=0)
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(r.choices[0].message.content), dict)
    else:  # cut by max_tokens: still a prefix of an object
        assert r.choices[0].message.content.startswith("{")


def test_streamed_answer_is_the_non_streamed_one_and_every_prefix_is_on_the_grammar(client) -> None:
    kw = dict(model=MODEL, messages=ASK, response_format=_schema_format(CITY), max_tokens=120, temperature=0)
    full = client.chat.completions.create(**kw).choices[0].message.content
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **kw) if c.choices]
    assert "".join(pieces) == full
    assert full.startswith(('{"city"', '{ "city"'))
    jsonschema.validate(json.loads(full), CITY)


def test_sampled_answers_validate_too(client) -> None:
    for seed in range(3):
        r = client.chat.completions.create(
            model=MODEL, messages=ASK, response_format=_schema_format(CITY), max_tokens=160, temperature=0.9, seed=seed
        )
        if r.choices[0].finish_reason == "stop":
            jsonschema.validate(json.loads(r.choices[0].message.content), CITY)


def test_an_answer_cut_by_max_tokens_finishes_with_length(client) -> None:
    r = client.chat.completions.create(model=MODEL, messages=ASK, response_format=_schema_format(CITY), max_tokens=5, temperature=0)
    assert r.choices[0].finish_reason == "length"
    assert r.choices[0].message.content.startswith("{")


def test_the_openai_parse_helper_gets_a_pydantic_object(client) -> None:
    class Animal(pydantic.BaseModel):
        name: str = pydantic.Field(max_length=30)
        legs: int
        can_fly: bool

    r = client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "Describe a cat."}], response_format=Animal, max_tokens=80, temperature=0
    )
    animal = r.choices[0].message.parsed
    assert isinstance(animal, Animal)


def test_constrained_and_unconstrained_requests_share_batches(client) -> None:
    questions = ["Name a large animal.", "What colour is grass?", "Say hello politely."]
    kw = dict(model=MODEL, max_tokens=32, temperature=0)
    alone = [client.chat.completions.create(messages=[{"role": "user", "content": q}], **kw).choices[0].message.content for q in questions]
    results: dict[str, object] = {}

    def plain(i: int) -> None:
        msgs = [{"role": "user", "content": questions[i]}]
        results[f"plain{i}"] = client.chat.completions.create(messages=msgs, **kw).choices[0].message.content

    def constrained(i: int) -> None:
        r = client.chat.completions.create(model=MODEL, messages=ASK, response_format=_schema_format(CITY), max_tokens=120, temperature=0)
        results[f"json{i}"] = r.choices[0].message.content

    threads = [threading.Thread(target=plain, args=(i,)) for i in range(3)] + [
        threading.Thread(target=constrained, args=(i,)) for i in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert [results[f"plain{i}"] for i in range(3)] == alone
    for i in range(2):
        jsonschema.validate(json.loads(str(results[f"json{i}"])), CITY)


@pytest.mark.parametrize(
    ("response_format", "param"),
    [
        (_schema_format({"type": "integer", "minimum": 0}), "response_format.json_schema.schema"),
        (_schema_format({"type": 5}), "response_format.json_schema.schema"),
        (_schema_format({"oneOf": [{"type": "string"}, {"type": "integer"}]}), "response_format.json_schema.schema"),
        ({"type": "json_schema"}, "response_format"),
        ({"type": "json_schema", "json_schema": {"name": "bad name!", "schema": {}}}, "response_format.json_schema.name"),
        ({"type": "xml"}, "response_format.type"),
    ],
)
def test_bad_response_formats_are_400_naming_the_field(live_server: LiveServer, response_format: dict, param: str) -> None:
    r = httpx.post(
        f"{live_server.v1}/chat/completions",
        json={"model": MODEL, "messages": ASK, "response_format": response_format, "max_tokens": 8},
        timeout=60,
    )
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param, err
    assert err["type"] == "invalid_request_error"


def test_the_client_sees_a_bad_request_error(client) -> None:
    with pytest.raises(openai.BadRequestError, match="minimum"):
        client.chat.completions.create(model=MODEL, messages=ASK, response_format=_schema_format({"type": "integer", "minimum": 1}))


class _EchoEngine(BaseHTTPRequestHandler):
    """A remote OpenAI-compatible engine that answers with the response_format it was sent."""

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        sent = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        chunk = {"choices": [{"index": 0, "delta": {"content": json.dumps(sent.get("response_format"))}, "finish_reason": None}]}
        done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in (chunk, done)) + b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_remote_engine_gets_response_format_unchanged(live_server: LiveServer) -> None:
    """Unchanged, keywords the local engines do not enforce (minimum) included: the remote
    engine enforces the schema itself."""
    engine = ThreadingHTTPServer(("127.0.0.1", 0), _EchoEngine)
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{engine.server_address[1]}/v1"
        r = httpx.post(
            f"{live_server.url}/api/v1/models",
            json={"name": "upstream-echo-format", "base_url": base, "upstream_model": "fake", "context_length": 2048},
            timeout=30,
        )
        assert r.status_code in (201, 409), r.text
        fmt = _schema_format({**CITY, "properties": {**CITY["properties"], "population": {"type": "integer", "minimum": 0}}})
        body = {"model": "upstream-echo-format", "messages": ASK, "max_tokens": 8, "response_format": fmt}
        answer = httpx.post(f"{live_server.v1}/chat/completions", json=body, timeout=60).json()
        assert json.loads(answer["choices"][0]["message"]["content"]) == fmt
    finally:
        engine.shutdown()
        engine.server_close()
