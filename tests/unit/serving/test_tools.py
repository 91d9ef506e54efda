"""Tool calling's parts without a model: the plan a request makes (and its refusals), the
parser that splits streamed text into content and calls (whatever the chunking), the
default prompt format, and the relaxing of schemas the decoder cannot enforce whole."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pydantic
import pytest

from plinth.errors import PlinthError
from plinth.serving.protocol import ChatCompletionRequest
from plinth.serving.structured import _Walker, relax_schema
from plinth.serving.tools import FORCED_PREFILL, ToolCallParser, default_format_messages, plan_from, template_messages

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}, "b": {"type": "integer"}}},
    },
}
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def _req(**kw: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": ASK, **kw})


def _run(parser: ToolCallParser, pieces: list[str]) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    content, calls = "", []
    for p in pieces:
        text, made = parser.feed(p)
        content += text
        calls += made
    text, made = parser.flush()
    content += text
    calls += made
    return content, [(c.name, json.loads(c.arguments)) for c in calls]


def _chunkings(text: str) -> list[list[str]]:
    """The text whole, one character at a time, and split at every position in two."""
    return [[text], list(text)] + [[text[:i], text[i:]] for i in range(1, len(text))]


# -- the plan -------------------------------------------------------------------------------
def test_no_tools_no_plan_and_auto_is_the_default() -> None:
    assert plan_from(_req()) is None
    assert plan_from(_req(tool_choice="none")) is None
    plan = plan_from(_req(tools=[WEATHER, ADD]))
    assert plan is not None and plan.choice == "auto" and plan.active and not plan.forced
    assert plan.constraint() is None
    assert [t.name for t in plan.allowed()] == ["get_weather", "add"]


def test_none_offers_no_tools() -> None:
    plan = plan_from(_req(tools=[WEATHER], tool_choice="none"))
    assert plan is not None and not plan.active and not plan.forced
    assert default_format_messages(list(ASK), plan) == ASK


def test_required_constrains_to_one_call_of_any_tool() -> None:
    plan = plan_from(_req(tools=[WEATHER, ADD], tool_choice="required"))
    assert plan is not None and plan.forced
    c = plan.constraint()
    assert c is not None and c.kind == "json_schema"
    schema = c.schema
    assert schema is not None
    jsonschema.validate({"name": "get_weather", "arguments": {"city": "Oslo"}}, schema)
    jsonschema.validate({"name": "add", "arguments": {"a": 1, "b": 2}}, schema)
    for bad in ({"name": "nope", "arguments": {}}, {"name": "get_weather", "arguments": {}}, {"name": "add"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    _Walker(schema).node(schema, "#", 0)  # within what the engines enforce (minimum was relaxed away)


def test_a_named_choice_allows_only_that_tool() -> None:
    plan = plan_from(_req(tools=[WEATHER, ADD], tool_choice={"type": "function", "function": {"name": "add"}}))
    assert plan is not None and plan.forced and [t.name for t in plan.allowed()] == ["add"]
    c = plan.constraint()
    assert c is not None and c.schema is not None
    assert c.schema["properties"]["name"] == {"const": "add"}


def test_legacy_functions_map_to_tools() -> None:
    plan = plan_from(_req(functions=[WEATHER["function"]], function_call={"name": "get_weather"}))
    assert plan is not None and plan.legacy and plan.forced and not plan.parallel
    assert plan_from(_req(functions=[WEATHER["function"]], function_call="none")).active is False  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kw", "param", "words"),
    [
        ({"tool_choice": "required"}, "tool_choice", "no tools"),
        ({"tool_choice": {"type": "function", "function": {"name": "x"}}}, "tool_choice", "no tools"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "add"}}}, "tool_choice", "not among"),
        ({"tools": [WEATHER, WEATHER]}, "tools", "unique"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
            "tools[0].function.parameters",
            "type 'object'",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 7}}}]},
            "tools[0].function.parameters",
            "not a valid JSON schema",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "strict": True, "parameters": ADD["function"]["parameters"]}}]},
            "tools[0].function.parameters",
            "minimum",
        ),
        ({"functions": [WEATHER["function"]], "function_call": {"name": "nope"}}, "function_call", "not among"),
    ],
)
def test_bad_tool_requests_are_refused_naming_the_field(kw: dict[str, Any], param: str, words: str) -> None:
    with pytest.raises(PlinthError) as e:
        plan_from(_req(**kw))
    assert e.value.param == param
    assert words in e.value.message


@pytest.mark.parametrize(
    "kw",
    [
        {"tools": [WEATHER], "functions": [WEATHER["function"]]},
        {"tools": [{"type": "function", "function": {"name": "bad name"}}]},
        {"tools": [{"type": "retrieval"}]},
        {"tool_choice": "sometimes"},
        {"messages": [{"role": "tool", "content": "42"}]},
        {"messages": [{"role": "user", "content": "x", "tool_calls": [{"id": "c", "function": {"name": "f"}}]}]},
    ],
)
def test_malformed_tool_fields_fail_validation(kw: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        _req(**kw)


# -- the parser -----------------------------------------------------------------------------
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


@pytest.mark.parametrize("pieces", _chunkings("Let me check. " + CALL))
def test_content_then_a_call_whatever_the_chunking(pieces: list[str]) -> None:
    content, calls = _run(ToolCallParser({"get_weather"}), pieces)
    assert content == "Let me check."  # whitespace next to a call is not content
    assert calls == [("get_weather", {"city": "Paris"})]


@pytest.mark.parametrize("pieces", _chunkings(CALL + "\n" + CALL.replace("Paris", "Oslo")))
def test_parallel_calls(pieces: list[str]) -> None:
    content, calls = _run(ToolCallParser({"get_weather"}), pieces)
    assert content == ""
    assert calls == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})]


def test_parallel_off_keeps_the_first_call() -> None:
    _, calls = _run(ToolCallParser({"get_weather"}, parallel=False), [CALL + CALL.replace("Paris", "Oslo")])
    assert calls == [("get_weather", {"city": "Paris"})]


@pytest.mark.parametrize("pieces", _chunkings("I think <tools> are <tool_c nice"))
def test_text_that_only_looks_like_a_tag_is_content(pieces: list[str]) -> None:
    assert _run(ToolCallParser({"get_weather"}), pieces) == ("I think <tools> are <tool_c nice", [])


@pytest.mark.parametrize(
    "block",
    [
        '<tool_call>{"name": "launch_rockets", "arguments": {}}</tool_call>',  # not a declared tool
        "<tool_call>not json</tool_call>",
        '<tool_call>{"name": "get_weather", "arguments": [1]}</tool_call>',
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Pa',  # cut short
    ],
)
def test_a_block_that_is_not_a_call_stays_content(block: str) -> None:
    content, calls = _run(ToolCallParser({"get_weather"}), list(block))
    assert calls == []
    assert content == block


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        '  {"name": "get_weather", "parameters": {"city": "Paris"}}',
        '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}',  # unclosed but whole
    ],
)
def test_other_call_spellings_are_read(text: str) -> None:
    assert _run(ToolCallParser({"get_weather"}), list(text)) == ("", [("get_weather", {"city": "Paris"})])


def test_a_json_answer_that_is_not_a_call_stays_content() -> None:
    text = '{"city": "Paris", "population": 2100000}'
    assert _run(ToolCallParser({"get_weather"}), list(text)) == (text, [])


def test_forced_answers_are_read_whole() -> None:
    parser = ToolCallParser({"get_weather"}, forced=True)
    pieces = list('{"name": "get_weather", "arguments": {"city": "Paris"}}')
    assert all(parser.feed(p) == ("", []) for p in pieces)
    content, calls = parser.flush()
    assert content == "" and [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert calls[0].id.startswith("call_") and len(calls[0].id) > 10
    cut = ToolCallParser({"get_weather"}, forced=True)
    cut.feed('{"name": "get_weather", "argu')
    assert cut.flush() == ('{"name": "get_weather", "argu', [])


# -- the prompt -----------------------------------------------------------------------------
def test_the_default_format_describes_tools_and_writes_history_back() -> None:
    plan = plan_from(_req(tools=[WEATHER], tool_choice="required"))
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
                {"id": "c2", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
            ],
        },
        {"role": "tool", "content": "18 C", "tool_call_id": "c1"},
        {"role": "tool", "content": "4 C", "tool_call_id": "c2"},
    ]
    out = default_format_messages(history, plan)
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[0]["content"].startswith("Be brief.") and '"name": "get_weather"' in out[0]["content"]
    assert "must call a tool" in out[0]["content"]
    assert out[2]["content"].count("<tool_call>") == 2 and '"city": "Oslo"' in out[2]["content"]
    assert out[3]["content"].count("<tool_response>") == 2 and "18 C" in out[3]["content"] and "4 C" in out[3]["content"]
    assert all(set(m) == {"role", "content"} for m in out)
    assert FORCED_PREFILL.startswith("<tool_call>")


def test_template_messages_carry_arguments_as_objects() -> None:
    out = template_messages([{"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "name": "f", "arguments": '{"x": 1}'}]}])
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
    assert out == [{"role": "assistant", "content": "", "tool_calls": [call]}]


# -- relaxing schemas -------------------------------------------------------------------------
class _Address(pydantic.BaseModel):
    street: str
    zip: str = pydantic.Field(pattern=r"\d{5}")


class _Person(pydantic.BaseModel):
    name: str = pydantic.Field(min_length=1, description="full name")
    age: int = pydantic.Field(ge=0, le=150)
    email: str | None = None
    score: float = pydantic.Field(gt=0, multiple_of=0.5)
    kind: str = pydantic.Field(json_schema_extra={"enum": ["a", "b"]})
    addresses: list[_Address] = pydantic.Field(default_factory=list, max_length=3)


@pytest.mark.parametrize(
    "schema",
    [
        _Person.model_json_schema(),
        {"type": "object", "properties": {"v": {"oneOf": [{"type": "string"}, {"type": "integer", "minimum": 3}]}}},
        {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, {"properties": {"b": {}}}]},
        {"type": "object", "properties": {"d": {"type": "string", "format": "email"}, "n": {"not": {"type": "null"}}}},
        {"type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}, "properties": {"a": {"type": "string"}}},
    ],
)
def test_relaxed_schemas_are_enforceable_and_keep_their_structure(schema: dict[str, Any]) -> None:
    relaxed = relax_schema(schema)
    _Walker(relaxed).node(relaxed, "#", 0)  # raises if the engines could not enforce it
    jsonschema.Draft202012Validator.check_schema(relaxed)
    assert relaxed != {"type": "object"} or schema.get("type") == "object"


def test_relaxing_keeps_names_types_and_required() -> None:
    relaxed = relax_schema(_Person.model_json_schema())
    props = relaxed["properties"]
    assert set(props) == {"name", "age", "email", "score", "kind", "addresses"}
    assert props["age"] == {"type": "integer", "title": "Age"}  # ge/le dropped, type kept
    assert set(relaxed["required"]) == {"name", "age", "score", "kind"}
    assert props["kind"]["enum"] == ["a", "b"]
    jsonschema.validate({"name": "x", "age": 3, "score": 1.0, "kind": "a", "addresses": [{"street": "s", "zip": "z"}]}, relaxed)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "age": "3", "score": 1.0, "kind": "a"}, relaxed)


class _Pet(pydantic.BaseModel):
    name: str
    kind: str


class _Owner(pydantic.BaseModel):
    name: str
    pets: list[_Pet]
    best: _Pet | None = None


def test_tools_with_their_own_definitions_are_enforceable_together() -> None:
    """Nested pydantic models bring $defs and $ref: each tool's definitions move to the
    forced-call schema's root under its own prefix, so two tools may both name a "_Pet"."""
    owner = {"type": "function", "function": {"name": "owner", "parameters": _Owner.model_json_schema()}}
    pets = {
        "type": "function",
        "function": {
            "name": "pets",
            "parameters": {"type": "object", "properties": {"p": {"$ref": "#/$defs/_Pet"}}, "$defs": {"_Pet": {"type": "integer"}}},
        },
    }
    plan = plan_from(_req(tools=[owner, pets], tool_choice="required"))
    assert plan is not None
    c = plan.constraint()
    assert c is not None and c.schema is not None
    _Walker(c.schema).node(c.schema, "#", 0)
    jsonschema.validate({"name": "owner", "arguments": {"name": "Ann", "pets": [{"name": "Rex", "kind": "dog"}]}}, c.schema)
    jsonschema.validate({"name": "pets", "arguments": {"p": 3}}, c.schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "owner", "arguments": {"name": "Ann", "pets": [{"name": "Rex"}]}}, c.schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "pets", "arguments": {"p": {"name": "Rex", "kind": "dog"}}}, c.schema)
