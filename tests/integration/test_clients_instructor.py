"""instructor (``instructor.from_openai``) against the live server in its TOOLS, JSON and
JSON_SCHEMA modes: each returns a validated instance of the response model. instructor is
installed with --no-deps (see the Makefile); any connection other than to the server fails the
test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.clients import PERSON_ASK, PERSON_EXAMPLE, Person, loopback_only
from tests.support.live_server import MODEL, LiveServer


@pytest.fixture(scope="module", autouse=True)
def offline() -> Iterator[None]:
    with loopback_only() as attempts:
        yield
    assert attempts == [], f"a client tried to reach the network: {attempts}"


def _client(live_server: LiveServer, mode_name: str) -> Any:
    import instructor
    from openai import OpenAI

    raw = OpenAI(base_url=live_server.v1, api_key="x", max_retries=0, timeout=240)
    return instructor.from_openai(raw, mode=getattr(instructor.Mode, mode_name))


@pytest.mark.parametrize(
    ("mode_name", "messages", "sent"),
    [
        # a forced call of a function named after the model, its parameters the model's schema
        ("TOOLS", [{"role": "user", "content": PERSON_ASK}], "tool_choice"),
        # response_format json_schema
        ("JSON_SCHEMA", [{"role": "user", "content": PERSON_ASK}], "response_format"),
        # response_format json_object with the schema in a system message: only "some JSON
        # object" is enforced, so the small model gets one worked example (tests/support/clients.py)
        ("JSON", PERSON_EXAMPLE, "response_format"),
    ],
)
def test_mode_returns_a_validated_instance(live_server: LiveServer, mode_name: str, messages: list[dict[str, str]], sent: str) -> None:
    client = _client(live_server, mode_name)
    person, completion = client.chat.completions.create_with_completion(
        model=MODEL, response_model=Person, messages=messages, max_retries=1, max_tokens=80, temperature=0
    )
    assert isinstance(person, Person) and person.name.strip()
    choice = completion.choices[0]
    if mode_name == "TOOLS":
        assert choice.finish_reason == "tool_calls"
        assert [c.function.name for c in choice.message.tool_calls] == ["Person"]
        assert Person.model_validate_json(choice.message.tool_calls[0].function.arguments) == person
    else:
        assert choice.finish_reason == "stop" and choice.message.tool_calls is None
        assert Person.model_validate_json(choice.message.content) == person


def test_a_list_of_instances_in_tools_mode(live_server: LiveServer) -> None:
    """A list response model (instructor wraps it in an object with an array property)."""
    client = _client(live_server, "TOOLS")
    ask = "Alice is 30 years old and Bob is 41 years old. List both people with their ages."
    people = client.chat.completions.create(
        model=MODEL, response_model=list[Person], messages=[{"role": "user", "content": ask}], max_retries=1, max_tokens=120, temperature=0
    )
    assert isinstance(people, list) and all(isinstance(p, Person) for p in people)
