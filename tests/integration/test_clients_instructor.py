"""instructor (``instructor.from_openai``) against the live server in its TOOLS, JSON and
JSON_SCHEMA modes: each returns a validated instance of the response model. instructor is
installed with --no-deps (see the Makefile); any connection other than to the server fails the
test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.clients import PERSON_ASK, PERSON_EXAMPLE, Person, loopback_only
from tests.support.live_server import MODEL, LiveServer


@pytest.fixture(scope="module", autouse=True)
def offline() -> Iterator[None]:
    with loopback_only() as attempts:
        yield
    assert attempts == [], f"a client tried to reach the network: {attempts}"


def _client(live_server: LiveServer, mode_name: str, sent: list[dict[str, Any]] | None = None) -> Any:
    """An instructor client in that mode; the request bodies it sends are appended to ``sent``."""
    import instructor
    from openai import OpenAI

    def record(request: httpx.Request) -> None:
        if sent is not None and request.url.path.endswith("/chat/completions"):
            sent.append(json.loads(request.content))

    http = httpx.Client(event_hooks={"request": [record]}, timeout=240)
    raw = OpenAI(base_url=live_server.v1, api_key="x", max_retries=0, http_client=http)
    return instructor.from_openai(raw, mode=getattr(instructor.Mode, mode_name))


@pytest.mark.parametrize(
    ("mode_name", "messages", "expected"),
    [
        # a forced call of a function named after the model, its parameters the model's schema
        ("TOOLS", [{"role": "user", "content": PERSON_ASK}], ("tool_choice", {"type": "function", "function": {"name": "Person"}})),
        # response_format json_schema
        ("JSON_SCHEMA", [{"role": "user", "content": PERSON_ASK}], ("response_format", "json_schema")),
        # response_format json_object with the schema in a system message: only "some JSON
        # object" is enforced, so the small model gets one worked example (tests/support/clients.py)
        ("JSON", PERSON_EXAMPLE, ("response_format", "json_object")),
    ],
)
def test_mode_returns_a_validated_instance(
    live_server: LiveServer, mode_name: str, messages: list[dict[str, str]], expected: tuple[str, Any]
) -> None:
    sent: list[dict[str, Any]] = []
    client = _client(live_server, mode_name, sent)
    person, completion = client.chat.completions.create_with_completion(
        model=MODEL, response_model=Person, messages=messages, max_retries=1, max_tokens=80, temperature=0
    )
    assert isinstance(person, Person) and person.name.strip()
    # what the mode sent: the call forced by name, or the response_format type
    field, value = expected
    assert sent and (sent[-1][field] == value if field == "tool_choice" else sent[-1][field]["type"] == value), sent[-1]
    choice = completion.choices[0]
    if mode_name == "TOOLS":
        assert choice.finish_reason == "tool_calls"
        assert [c.function.name for c in choice.message.tool_calls] == ["Person"]
        answer = choice.message.tool_calls[0].function.arguments
    else:
        assert choice.finish_reason == "stop" and choice.message.tool_calls is None
        answer = choice.message.content
    # instructor returns its own subclass of the model: compare the fields
    assert Person.model_validate_json(answer).model_dump() == person.model_dump()


def test_a_list_of_instances_in_tools_mode(live_server: LiveServer) -> None:
    """A list response model (instructor wraps it in an object with an array property)."""
    client = _client(live_server, "TOOLS")
    ask = "Alice is 30 years old and Bob is 41 years old. List both people with their ages."
    people = client.chat.completions.create(
        model=MODEL, response_model=list[Person], messages=[{"role": "user", "content": ask}], max_retries=1, max_tokens=400, temperature=0
    )
    assert isinstance(people, list) and all(isinstance(p, Person) for p in people)
