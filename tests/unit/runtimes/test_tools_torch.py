"""Forced tool calls on the torch batching engine (llguidance masks) with the real embedded
model: the prompt in plinth's default format, the answer constrained to a call of an allowed
tool, read back by the parser — the path ``/v1/chat/completions`` takes on this engine."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import jsonschema
import pytest

from plinth.runtimes.base import SamplingParams
from plinth.serving.protocol import ChatCompletionRequest
from plinth.serving.tools import FORCED_PREFILL, default_format_messages, plan_from
from tests.unit.runtimes import test_torch_batching as tb

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 40}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
ADD = {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}, "b": {"type": "integer"}}, "required": ["a", "b"]}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "add", "description": "Add two integers", "parameters": ADD}},
]


@pytest.fixture(scope="module")
def rt(torch_cache_dir: Path, smol_dir: Path):  # type: ignore[no-untyped-def]
    tb._CACHE["dir"] = torch_cache_dir
    runtime = tb._make()
    yield runtime
    runtime.unload()


def _call(rt, question: str, choice, seed: int | None, temperature: float):  # type: ignore[no-untyped-def]
    req = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": question}], "tools": TOOLS, "tool_choice": choice}
    )
    plan = plan_from(req)
    assert plan is not None and plan.forced
    constraint = plan.constraint()
    assert constraint is not None
    rt.check_constraint(constraint)
    prompt = rt.prepare_chat(default_format_messages([{"role": "user", "content": question}], plan), prefill=FORCED_PREFILL)
    assert prompt.text.endswith(FORCED_PREFILL)
    parser = plan.parser()
    finish = None
    params = SamplingParams(max_tokens=80, temperature=temperature, seed=seed, constraint=constraint)
    for d in rt.generate(prompt, params, threading.Event()):
        assert parser.feed(d.text) == ("", [])  # a forced answer is read whole at the end
        finish = d.finish_reason or finish
    content, calls = parser.flush()
    return finish, content, calls


@pytest.mark.parametrize(
    ("choice", "seed", "temperature"),
    [("required", None, 0.0), ("required", 5, 1.0), ({"type": "function", "function": {"name": "add"}}, 9, 1.0)],
)
def test_forced_calls_validate_on_the_torch_engine(rt, choice, seed, temperature) -> None:  # type: ignore[no-untyped-def]
    finish, content, calls = _call(rt, "What is the weather in Oslo, and what is 2 plus 3?", choice, seed, temperature)
    assert finish == "stop" and content == ""
    assert len(calls) == 1
    name = calls[0].name
    if isinstance(choice, dict):
        assert name == "add"
    args = json.loads(calls[0].arguments)
    # the structure validates; ``minimum`` of a non-strict schema is not enforced (ADR 0118)
    jsonschema.validate(
        args, {"get_weather": WEATHER, "add": {**ADD, "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}[name]
    )
