"""Tool calling through a live server with the official openai client, on the embedded
model (llama.cpp): forced calls whose arguments validate against the tool's schema,
streamed tool-call deltas, a conversation carrying calls and results, legacy functions,
``none``, ``n`` and every refusal in OpenAI's error shape."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.support.live_server import MODEL, LiveServer

WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 40}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
ADD_PARAMS = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
}
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": WEATHER_PARAMS}},
    {"type": "function", "function": {"name": "add", "description": "Add two integers", "parameters": ADD_PARAMS}},
]
SCHEMAS = {"get_weather": WEATHER_PARAMS, "add": ADD_PARAMS}
ASK: list[Any] = [{"role": "user", "content": "What is the weather in Paris right now?"}]


def _check_call(call: Any) -> dict[str, Any]:
    assert call.type == "function" and call.id.startswith("call_")
    args = json.loads(call.function.arguments)
    jsonschema.validate(args, SCHEMAS[call.function.name])
    return args


def test_required_makes_a_call_whose_arguments_validate(client) -> None:
    r = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=80, temperature=0)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.function.name in SCHEMAS
    _check_call(call)
    assert r.usage.completion_tokens > 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_named_tool_is_called_with_valid_arguments_even_when_sampled(client, seed: int) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is 17 plus 25?"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "add"}},
        max_tokens=60,
        temperature=1.0,
        seed=seed,
    )
    calls = r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "tool_calls" and [c.function.name for c in calls] == ["add"]
    args = _check_call(calls[0])
    assert set(args) >= {"a", "b"}


def test_streamed_tool_calls_arrive_as_deltas(client) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=80, temperature=0, stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            for d in choice.delta.tool_calls or []:
                entry = calls.setdefault(d.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += d.id or ""
                entry["name"] += (d.function.name or "") if d.function else ""
                entry["arguments"] += (d.function.arguments or "") if d.function else ""
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["id"].startswith("call_") and calls[0]["name"] in SCHEMAS
    jsonschema.validate(json.loads(calls[0]["arguments"]), SCHEMAS[calls[0]["name"]])
    # the same request unstreamed gives the same call (greedy)
    whole = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=80, temperature=0)
    c = whole.choices[0].message.tool_calls[0]
    assert (c.function.name, json.loads(c.function.arguments)) == (calls[0]["name"], json.loads(calls[0]["arguments"]))


def test_a_conversation_with_calls_and_results_is_answered(client) -> None:
    first = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=80, temperature=0)
    call = first.choices[0].message.tool_calls[0]
    messages = [
        *ASK,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"},
    ]
    r = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, max_tokens=40, temperature=0)
    assert r.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert r.choices[0].message.content or r.choices[0].message.tool_calls
    # the results reach the prompt: more prompt tokens than the question alone
    assert r.usage.prompt_tokens > first.usage.prompt_tokens


def test_none_answers_in_text_and_auto_may_do_either(client) -> None:
    r = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice="none", max_tokens=20, temperature=0)
    assert r.choices[0].message.tool_calls is None and r.choices[0].message.content
    plain = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=20, temperature=0)
    assert r.choices[0].message.content == plain.choices[0].message.content  # none offers no tools: the same prompt
    auto = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, max_tokens=60, temperature=0)
    msg = auto.choices[0].message
    if msg.tool_calls:
        assert auto.choices[0].finish_reason == "tool_calls"
        for c in msg.tool_calls:
            assert c.function.name in SCHEMAS
            json.loads(c.function.arguments)
    else:
        assert msg.content and auto.choices[0].finish_reason in ("stop", "length")


def test_each_of_n_choices_makes_its_own_call(client) -> None:
    r = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=80, temperature=0.9, seed=7, n=2
    )
    assert len(r.choices) == 2
    ids = set()
    for choice in r.choices:
        assert choice.finish_reason == "tool_calls"
        _check_call(choice.message.tool_calls[0])
        ids.add(choice.message.tool_calls[0].id)
    assert len(ids) == 2


def test_legacy_functions_are_answered_with_function_call(client, live_server: LiveServer) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        functions=[t["function"] for t in TOOLS],
        function_call={"name": "get_weather"},
        max_tokens=80,
        temperature=0,
    )
    choice = r.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.tool_calls is None and choice.message.function_call.name == "get_weather"
    jsonschema.validate(json.loads(choice.message.function_call.arguments), WEATHER_PARAMS)
    # a legacy conversation: the assistant's function_call and a function message
    body = {
        "model": MODEL,
        "max_tokens": 20,
        "messages": [
            *ASK,
            {"role": "assistant", "content": None, "function_call": choice.message.function_call.model_dump()},
            {"role": "function", "name": "get_weather", "content": "18 degrees"},
        ],
        "functions": [t["function"] for t in TOOLS],
    }
    resp = httpx.post(f"{live_server.v1}/chat/completions", json=body, timeout=120)
    assert resp.status_code == 200, resp.text
    # streamed legacy calls arrive as delta.function_call
    stream = client.chat.completions.create(
        model=MODEL, messages=ASK, functions=[t["function"] for t in TOOLS], function_call={"name": "add"}, max_tokens=60, stream=True
    )
    deltas = [c.choices[0].delta.function_call for c in stream if c.choices and c.choices[0].delta.function_call]
    assert deltas and deltas[0].name == "add"
    jsonschema.validate(json.loads("".join(d.arguments or "" for d in deltas)), ADD_PARAMS)


def test_a_loose_schema_is_accepted_and_a_strict_one_must_be_enforceable(client) -> None:
    loose = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 9}}, "required": ["n"]}
    tool = {"type": "function", "function": {"name": "pick", "parameters": loose}}
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Pick a number."}], tools=[tool], tool_choice="required", max_tokens=30
    )
    args = json.loads(r.choices[0].message.tool_calls[0].function.arguments)
    assert isinstance(args["n"], int)  # structure enforced; minimum/maximum are not (not strict)
    strict = {"type": "function", "function": {"name": "pick", "parameters": loose, "strict": True}}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=ASK, tools=[strict], tool_choice="required", max_tokens=30)
    assert e.value.body["param"] == "tools[0].function.parameters" and "minimum" in e.value.body["message"]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": [TOOLS[0], TOOLS[0]]}, "tools"),
        ({"tools": [{"type": "function", "function": {"name": "x y"}}]}, "tools.0.function.name"),
        ({"tools": [{"type": "code_interpreter"}]}, None),
        ({"tools": TOOLS, "functions": [TOOLS[0]["function"]]}, None),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]}, "tools[0].function.parameters"),
        ({"messages": [{"role": "tool", "content": "x"}]}, None),
        ({"tools": TOOLS, "tool_choice": "sometimes"}, None),
    ],
)
def test_bad_tool_requests_get_400_in_openai_shape(live_server: LiveServer, extra: dict[str, Any], param: str | None) -> None:
    body = {"model": MODEL, "messages": ASK, "max_tokens": 8, **extra}
    r = httpx.post(f"{live_server.v1}/chat/completions", json=body, timeout=60)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["message"]
    if param is not None:
        assert err["param"] == param, err


def test_the_request_log_shows_the_calls(live_server: LiveServer, client) -> None:
    """A call-only answer is logged with its calls (where the policy lets the answer be kept)
    and its finish reason, not as an empty answer."""
    policy = {"name": "tools-log", "rules": [{"detector": "pii", "on": ["input", "output"], "action": "redact"}]}
    assert httpx.post(f"{live_server.url}/api/v1/guardrails/policies", json=policy, timeout=60).status_code in (200, 201)
    attach = f"{live_server.url}/api/v1/models/{MODEL}/attachments"
    assert httpx.patch(attach, json={"guardrail_policy": "tools-log"}, timeout=30).status_code == 200
    try:
        r = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=80, temperature=0)
    finally:
        assert httpx.patch(attach, json={"guardrail_policy": ""}, timeout=30).status_code == 200
    call = r.choices[0].message.tool_calls[0]
    for _ in range(300):
        e = httpx.get(f"{live_server.url}/api/v1/requests/{r.id}", timeout=30)
        if e.status_code == 200:
            break
        time.sleep(0.1)
    entry = e.json()
    assert entry["finish_reason"] == "tool_calls" and entry["completion_tokens"] > 0
    logged = json.loads(entry["response"].strip().splitlines()[-1])
    assert logged == {"tool_call": {"name": call.function.name, "arguments": call.function.arguments}}
