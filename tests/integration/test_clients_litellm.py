"""litellm against the live server as an ``openai/<model>`` with ``api_base``: tool calls, JSON
answers (json_object and json_schema) and ``litellm.responses`` (the Responses API). litellm
runs offline: its price map from its own package (LITELLM_LOCAL_MODEL_COST_MAP, set before it
is imported), its offline mode on, and any connection other than to the server fails the test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.clients import PERSON_ASK, WEATHER_ASK, WEATHER_TOOL, Person, assert_weather_args, loopback_only
from tests.support.live_server import MODEL, LiveServer


@pytest.fixture(scope="module")
def litellm() -> Iterator[Any]:
    mp = pytest.MonkeyPatch()
    mp.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    mp.setenv("LITELLM_OFFLINE_MODE", "true")
    mp.setenv("LITELLM_TELEMETRY", "False")
    with loopback_only() as attempts:
        import litellm

        quiet = litellm.suppress_debug_info
        litellm.suppress_debug_info = True  # its "Provider List" hints, printed while it prices an answer
        yield litellm
        litellm.suppress_debug_info = quiet
    mp.undo()
    assert attempts == [], f"litellm tried to reach the network: {attempts}"


@pytest.fixture(scope="module")
def kw(live_server: LiveServer) -> dict[str, Any]:
    return {"model": f"openai/{MODEL}", "api_base": live_server.v1, "api_key": "x", "temperature": 0, "timeout": 240, "num_retries": 0}


def test_completion_with_a_required_tool(litellm: Any, kw: dict[str, Any]) -> None:
    r = litellm.completion(
        messages=[{"role": "user", "content": WEATHER_ASK}], tools=[WEATHER_TOOL], tool_choice="required", max_tokens=60, **kw
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls and calls[0].function.name == "get_weather" and calls[0].id.startswith("call_")
    assert_weather_args(calls[0].function.arguments)


def test_streamed_tool_call(litellm: Any, kw: dict[str, Any]) -> None:
    stream = litellm.completion(
        messages=[{"role": "user", "content": WEATHER_ASK}], tools=[WEATHER_TOOL], tool_choice="required", max_tokens=60, stream=True, **kw
    )
    chunks = list(stream)
    whole = litellm.stream_chunk_builder(chunks)
    calls = whole.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_weather"
    assert_weather_args(calls[0].function.arguments)


def test_json_object(litellm: Any, kw: dict[str, Any]) -> None:
    ask = 'Alice is 30 years old. Reply with a JSON object with the keys "name" and "age".'
    r = litellm.completion(messages=[{"role": "user", "content": ask}], response_format={"type": "json_object"}, max_tokens=80, **kw)
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_json_schema_from_a_pydantic_model(litellm: Any, kw: dict[str, Any]) -> None:
    """litellm turns the model class into response_format json_schema; the answer validates."""
    r = litellm.completion(messages=[{"role": "user", "content": PERSON_ASK}], response_format=Person, max_tokens=60, **kw)
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(Person.model_validate_json(r.choices[0].message.content), Person)


def test_responses_text_and_follow_up(litellm: Any, kw: dict[str, Any]) -> None:
    first = litellm.responses(input="Say hello.", max_output_tokens=20, **kw)
    assert first.status in ("completed", "incomplete")
    texts = [c.text for item in first.output if item.type == "message" for c in item.content if c.type == "output_text"]
    assert texts and texts[0].strip()
    assert first.usage.output_tokens > 0
    # a follow-up on the stored conversation (litellm encodes the provider into the id it returns)
    second = litellm.responses(input="Say it again.", previous_response_id=first.id, max_output_tokens=20, **kw)
    assert second.status in ("completed", "incomplete") and second.output


def test_responses_with_a_required_tool(litellm: Any, kw: dict[str, Any]) -> None:
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": WEATHER_TOOL["function"]["parameters"],
    }
    r = litellm.responses(input=WEATHER_ASK, tools=[tool], tool_choice="required", max_output_tokens=60, **kw)
    calls = [item for item in r.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather" and calls[0].call_id
    assert_weather_args(calls[0].arguments)


def test_responses_streamed(litellm: Any, kw: dict[str, Any]) -> None:
    events = list(litellm.responses(input="Say hello.", max_output_tokens=20, stream=True, **kw))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] in ("response.completed", "response.incomplete"), kinds
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas.strip()
