"""The Responses API's requests as chat requests: items normalised, a conversation laid out as
chat messages, tools, tool choice and text formats in their chat shapes, error fields renamed,
and the refusals of what plinth cannot honour."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from plinth.errors import PlinthError
from plinth.serving.responses import convert
from plinth.serving.responses.protocol import ResponsesRequest

WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


def _req(**kw: Any) -> ResponsesRequest:
    return ResponsesRequest.model_validate({"model": "m", **kw})


def test_text_input_is_one_user_message_with_ids() -> None:
    (item,) = convert.input_items(_req(input="Hi"))
    assert item["type"] == "message" and item["role"] == "user" and item["id"].startswith("msg_")
    assert item["content"] == [{"type": "input_text", "text": "Hi"}]


def test_a_conversation_as_chat_messages() -> None:
    req = _req(
        instructions="Be brief.",
        input=[
            {"role": "developer", "content": "Use metric units."},
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in "}, {"type": "input_text", "text": "Oslo?"}]},
            {"type": "message", "role": "assistant", "id": "msg_kept", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
            {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": '{"city": "Bergen"}'},
            {"type": "function_call_output", "call_id": "c1", "output": "rain"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "sun"}]},
        ],
    )
    items = convert.input_items(req)
    assert items[2]["id"] == "msg_kept" and items[3]["id"].startswith("fc_") and items[5]["id"].startswith("fco_")
    messages = convert.chat_messages(req.instructions, items)
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Use metric units."},
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
                {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Bergen"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "rain"},
        {"role": "tool", "tool_call_id": "c2", "content": "sun"},
    ]
    chat = convert.chat_request(req, items)
    assert [m.role for m in chat.messages] == ["system", "developer", "user", "assistant", "tool", "tool"]


def test_a_call_without_a_message_before_it_is_an_assistant_message_of_its_own() -> None:
    items = [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]
    assert convert.chat_messages(None, items) == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        }
    ]


def test_tools_tool_choice_and_text_format_in_their_chat_shapes() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    req = _req(
        input="Hi",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
        text={"format": {"type": "json_schema", "name": "x", "schema": schema, "strict": True}},
        max_output_tokens=9,
    )
    chat = convert.chat_request(req, convert.input_items(req))
    assert chat.tools is not None and chat.tools[0].function.name == "get_weather"
    assert chat.tool_choice is not None and chat.tool_choice.model_dump() == {"type": "function", "function": {"name": "get_weather"}}
    assert chat.parallel_tool_calls is False and chat.max_tokens == 9
    assert chat.response_format is not None and chat.response_format.json_schema is not None
    assert chat.response_format.json_schema.schema_ == schema and chat.response_format.json_schema.strict is True
    assert convert.echoed_tool_choice(req) == {"type": "function", "name": "get_weather"}
    assert convert.echoed_text(req)["format"]["schema"] == schema
    assert convert.echoed_tools(req)[0] == {**WEATHER, "description": None, "strict": None}
    assert convert.echoed_tool_choice(_req(input="Hi")) == "auto" and convert.echoed_text(_req(input="Hi")) == {"format": {"type": "text"}}


@pytest.mark.parametrize(
    ("chat", "responses"),
    [
        ("messages", "input"),
        ("messages.3.content", "input.3.content"),
        ("max_tokens", "max_output_tokens"),
        ("response_format.json_schema.schema", "text.format.schema"),
        ("response_format", "text.format"),
        ("tools.0.function.parameters", "tools.0.parameters"),
        ("tool_choice.function.name", "tool_choice.name"),
        ("temperature", "temperature"),
        (None, None),
    ],
)
def test_error_fields_are_named_as_the_client_sent_them(chat: str | None, responses: str | None) -> None:
    assert convert.param_name(chat) == responses


def test_an_empty_conversation_is_refused() -> None:
    with pytest.raises(PlinthError) as e:
        convert.chat_request(_req(input=[]), [])
    assert e.value.param == "input"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"tools": [{"type": "web_search_preview"}]}, "web_search_preview"),
        ({"tool_choice": {"type": "file_search"}}, "file_search"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input_file"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "item_reference"),
        ({"input": [{"type": {"odd": 1}}]}, "odd"),
        ({"background": True}, "background"),
        ({"truncation": "auto"}, "truncation"),
        ({"reasoning": {"summary": "auto"}}, "reasoning"),
        ({"include": ["message.output_text.logprobs"]}, "message.output_text.logprobs"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"metadata": {"k" * 65: "v"}}, "metadata keys"),
    ],
)
def test_refusals_name_what_is_refused(body: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as e:
        _req(**{"input": "Hi", **body})
    assert words in str(e.value)


def test_harmless_values_of_refused_fields_are_accepted() -> None:
    req = _req(input="Hi", background=False, truncation="disabled", include=["reasoning.encrypted_content"], reasoning={"effort": None})
    assert req.background is False and req.truncation == "disabled"
