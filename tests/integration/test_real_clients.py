"""The official openai SDK's helpers against the live server, beyond plain ``create``: the
``parse`` helpers (structured answers and tool arguments as pydantic objects), the ``stream``
helper's tool events, streamed ``delta.tool_calls`` accumulated as a client does, a tool
round trip, and the legacy ``functions`` mapping. The other real clients have their own files
(test_clients_langchain.py, _litellm, _instructor, _agents)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pydantic
import pytest

from tests.support.clients import PERSON_ASK, WEATHER_ASK, WEATHER_TOOL, Person, assert_weather_args
from tests.support.live_server import MODEL


class GetWeather(pydantic.BaseModel):
    """The weather in a city now."""

    city: str


class People(pydantic.BaseModel):
    people: list[Person]


ASK = [{"role": "user", "content": WEATHER_ASK}]


@pytest.mark.parametrize("helper", ["chat", "beta"])
def test_parse_helper_with_a_nested_model(client: Any, helper: str) -> None:
    """A model with a nested one ($defs/$ref in the schema), through ``chat.completions.parse``
    and its older home ``beta.chat.completions.parse`` where the SDK still has it."""
    completions = client.chat.completions if helper == "chat" else getattr(getattr(client.beta, "chat", None), "completions", None)
    assert completions is not None, "this openai SDK has no beta.chat.completions (update the test)"
    ask = [{"role": "user", "content": "Alice is 30 years old and Bob is 41 years old. List both."}]
    r = completions.parse(model=MODEL, messages=ask, response_format=People, max_tokens=80, temperature=0)
    parsed = r.choices[0].message.parsed
    assert isinstance(parsed, People) and all(isinstance(p, Person) for p in parsed.people)


def test_parse_helper_gives_tool_arguments_as_the_model(client: Any) -> None:
    """``pydantic_function_tool`` sends a strict tool; the SDK parses the call's arguments."""
    r = client.chat.completions.parse(
        model=MODEL, messages=ASK, tools=[openai.pydantic_function_tool(GetWeather)], tool_choice="required", max_tokens=40, temperature=0
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.function.name == "GetWeather"
    assert isinstance(call.function.parsed_arguments, GetWeather) and call.function.parsed_arguments.city.strip()


def test_streamed_tool_calls_accumulate_to_the_whole_call(client: Any) -> None:
    """What a client does with ``delta.tool_calls``: the first delta of an index carries its id,
    type and name, the arguments arrive in pieces; joined, they equal the non-streamed call."""
    kw: dict[str, Any] = dict(model=MODEL, messages=ASK, tools=[WEATHER_TOOL], tool_choice="required", max_tokens=40, temperature=0)
    whole = client.chat.completions.create(**kw).choices[0].message.tool_calls
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for chunk in client.chat.completions.create(stream=True, **kw):
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        assert not choice.delta.content, "a forced call streams no text"
        for d in choice.delta.tool_calls or []:
            if d.index not in calls:
                assert d.id and d.id.startswith("call_") and d.type == "function" and d.function.name
                calls[d.index] = {"id": d.id, "name": d.function.name, "arguments": ""}
            calls[d.index]["arguments"] += d.function.arguments or ""
    assert finish == "tool_calls"
    assert sorted(calls) == list(range(len(calls))) and len(calls) == len(whole)
    for i, call in calls.items():
        assert call["name"] == whole[i].function.name == "get_weather"
        assert json.loads(call["arguments"]) == json.loads(whole[i].function.arguments)
        assert_weather_args(call["arguments"])


def test_stream_helper_emits_tool_argument_events(client: Any) -> None:
    with client.chat.completions.stream(
        model=MODEL, messages=ASK, tools=[openai.pydantic_function_tool(GetWeather)], tool_choice="required", max_tokens=40, temperature=0
    ) as stream:
        done = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()
    assert done and done[0].name == "GetWeather" and isinstance(done[0].parsed_arguments, GetWeather)
    call = final.choices[0].message.tool_calls[0]
    assert isinstance(call.function.parsed_arguments, GetWeather) and final.choices[0].finish_reason == "tool_calls"


def test_tool_round_trip_and_parallel_tool_calls_off(client: Any) -> None:
    first = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER_TOOL], tool_choice="required", parallel_tool_calls=False, max_tokens=40, temperature=0
    )
    message = first.choices[0].message
    assert len(message.tool_calls) == 1
    call = message.tool_calls[0]
    history = [
        *ASK,
        message.model_dump(exclude_none=True),  # the assistant message as the SDK returned it, content null
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 degrees."},
    ]
    final = client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER_TOOL], max_tokens=30, temperature=0)
    choice = final.choices[0]
    assert choice.finish_reason in ("stop", "length", "tool_calls")
    assert choice.message.content or choice.message.tool_calls


def test_tool_choice_none_answers_in_text(client: Any) -> None:
    r = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER_TOOL], tool_choice="none", max_tokens=20, temperature=0)
    choice = r.choices[0]
    assert choice.message.tool_calls is None and choice.message.content and choice.finish_reason in ("stop", "length")


def test_legacy_functions_are_answered_with_function_call(client: Any) -> None:
    """Old clients send ``functions``/``function_call``: mapped to tools, answered in the old shape."""
    r = client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        functions=[WEATHER_TOOL["function"]],
        function_call={"name": "get_weather"},
        max_tokens=40,
        temperature=0,
    )
    choice = r.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.function_call is not None and choice.message.function_call.name == "get_weather"
    assert_weather_args(choice.message.function_call.arguments)


def test_a_tool_choice_naming_an_unknown_tool_is_a_400(client: Any) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=MODEL, messages=ASK, tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "nope"}}, max_tokens=8
        )
    body = e.value.body
    assert isinstance(body, dict) and body["type"] == "invalid_request_error" and "nope" in body["message"]


def test_responses_parse_helper(client: Any) -> None:
    """``responses.parse`` with a pydantic ``text_format`` (text.format json_schema)."""
    r = client.responses.parse(model=MODEL, input=PERSON_ASK, text_format=Person, max_output_tokens=60, temperature=0)
    assert isinstance(r.output_parsed, Person)
