"""LangChain's OpenAI integration (``langchain-openai``) against the live server, as an
application would use it: chat and streaming, ``with_structured_output`` in its three methods,
``bind_tools``. All offline: any connection other than to the server fails the test
(tests/support/clients.py). ``OpenAIEmbeddings`` with its defaults (cl100k token-id arrays,
tiktoken's file from plinth's copy) is tested in test_embeddings_inputs.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.clients import (
    PERSON_ASK,
    PERSON_EXAMPLE,
    WEATHER_ASK,
    Person,
    assert_weather_args,
    loopback_only,
)
from tests.support.live_server import MODEL, LiveServer


@pytest.fixture(scope="module", autouse=True)
def offline() -> Iterator[None]:
    with loopback_only() as attempts:
        yield
    assert attempts == [], f"a client tried to reach the network: {attempts}"


@pytest.fixture(scope="module")
def llm(live_server: LiveServer) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model=MODEL, base_url=live_server.v1, api_key="x", max_retries=0, timeout=240, temperature=0, max_tokens=30)


def get_weather(city: str) -> str:
    """The weather in a city now.

    Args:
        city: the city's name
    """
    return f"sunny in {city}"


def test_invoke_and_stream(llm: Any) -> None:
    from langchain_core.messages import AIMessage, AIMessageChunk

    answer = llm.invoke("Say hello.")
    assert isinstance(answer, AIMessage) and isinstance(answer.content, str) and answer.content.strip()
    assert answer.response_metadata["finish_reason"] in ("stop", "length")
    assert answer.usage_metadata["output_tokens"] > 0
    chunks = list(llm.stream("Say hello."))
    assert chunks and all(isinstance(c, AIMessageChunk) for c in chunks)
    text = "".join(str(c.content) for c in chunks)
    assert text.strip() and len([c for c in chunks if c.content]) > 1  # streamed in pieces
    assert text == answer.content  # temperature 0: the streamed answer is the whole one


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_structured_output_enforced_methods(llm: Any, method: str) -> None:
    """json_schema (response_format json_schema) and function_calling (a forced tool call):
    both constrained by the server, so the parsed object is a Person whatever the model says."""
    out = llm.with_structured_output(Person, method=method, include_raw=True).invoke(PERSON_ASK)
    assert out["parsing_error"] is None, out
    assert isinstance(out["parsed"], Person), out
    if method == "function_calling":
        calls = out["raw"].tool_calls
        assert [c["name"] for c in calls] == ["Person"] and out["raw"].response_metadata["finish_reason"] == "tool_calls"
    else:
        Person.model_validate_json(out["raw"].content)


def test_structured_output_json_mode(llm: Any) -> None:
    """json_mode sends response_format json_object (any JSON object; the prompt says which):
    the answer is a JSON object LangChain parses into a Person."""
    out = llm.bind(max_tokens=80).with_structured_output(Person, method="json_mode", include_raw=True).invoke(PERSON_EXAMPLE)
    assert out["parsing_error"] is None, out
    assert isinstance(out["parsed"], Person), out


def test_bind_tools_auto_gives_a_message(llm: Any) -> None:
    """auto: the model decides (the 135M model mostly answers in text); whatever it chose, the
    answer is a well-formed AIMessage and any call it made names the tool with valid arguments."""
    from langchain_core.messages import AIMessage

    answer = llm.bind_tools([get_weather]).invoke(WEATHER_ASK)
    assert isinstance(answer, AIMessage)
    assert answer.tool_calls or (isinstance(answer.content, str) and answer.content.strip())
    for call in answer.tool_calls:
        assert call["name"] == "get_weather"
        assert_weather_args(call["args"])
    assert not answer.invalid_tool_calls


def _forced_call(llm: Any, tool_choice: str) -> Any:
    from langchain_core.messages import AIMessage

    answer = llm.bind_tools([get_weather], tool_choice=tool_choice).invoke(WEATHER_ASK)
    assert isinstance(answer, AIMessage) and answer.tool_calls and not answer.invalid_tool_calls
    assert answer.response_metadata["finish_reason"] == "tool_calls"
    call = answer.tool_calls[0]
    assert call["name"] == "get_weather" and call["id"].startswith("call_")
    assert_weather_args(call["args"])
    return answer


def test_bind_tools_with_the_tool_named(llm: Any) -> None:
    _forced_call(llm, "get_weather")


def test_bind_tools_required_and_the_result_sent_back(llm: Any) -> None:
    """The round trip an agent makes: the call, the tool's result back, an answer in text."""
    from langchain_core.messages import AIMessage, ToolMessage

    answer = _forced_call(llm, "required")
    call = answer.tool_calls[0]
    result = ToolMessage(content=get_weather(**call["args"]), tool_call_id=call["id"])
    final = llm.invoke([("user", WEATHER_ASK), answer, result])
    assert isinstance(final, AIMessage) and isinstance(final.content, str) and final.content.strip()


def test_bind_tools_streams_the_call(llm: Any) -> None:
    chunks = list(llm.bind_tools([get_weather], tool_choice="required").stream(WEATHER_ASK))
    whole = chunks[0]
    for c in chunks[1:]:
        whole = whole + c
    assert [c["name"] for c in whole.tool_calls] == ["get_weather"], whole
    assert_weather_args(whole.tool_calls[0]["args"])
