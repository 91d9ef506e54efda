"""Tools on a remote (OpenAI-compatible) model: plinth passes tools, tool_choice and the
conversation's calls and results on as sent, and turns the engine's streamed tool-call deltas
into its own answer. The engine is a stand-in (a third-party service such as vLLM cannot run
here): it records what it was sent and streams a call split over several chunks."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.support.live_server import LiveServer

SENT: list[dict[str, Any]] = []
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


class _ToolEngine(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        sent = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        SENT.append(sent)
        if sent.get("tools") and sent["messages"][-1]["role"] != "tool":
            deltas: list[dict[str, Any]] = [
                {"content": "Checking. "},
                {"tool_calls": [{"index": 0, "id": "up_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
                {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
                {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
                {
                    "tool_calls": [
                        {"index": 1, "id": "up_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
                    ]
                },
            ]
            finish = "tool_calls"
        else:
            deltas, finish = [{"content": "It is 18 C in Paris."}], "stop"
        events = [{"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
        events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def remote(live_server: LiveServer):  # type: ignore[no-untyped-def]
    engine = ThreadingHTTPServer(("127.0.0.1", 0), _ToolEngine)
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{engine.server_address[1]}/v1"
    r = httpx.post(
        f"{live_server.url}/api/v1/models",
        json={"name": "upstream-tools", "base_url": base, "upstream_model": "fake", "context_length": 4096},
        timeout=30,
    )
    assert r.status_code in (201, 409), r.text
    yield "upstream-tools"
    engine.shutdown()
    engine.server_close()


def test_tools_go_to_the_remote_engine_and_its_calls_come_back(client, remote: str) -> None:
    SENT.clear()
    ask = [{"role": "user", "content": "Weather in Paris and Oslo?"}]
    r = client.chat.completions.create(model=remote, messages=ask, tools=TOOLS, tool_choice="required", parallel_tool_calls=True)
    sent = SENT[-1]
    assert sent["tools"] == TOOLS and sent["tool_choice"] == "required" and "parallel_tool_calls" not in sent
    assert sent["messages"] == ask and "response_format" not in sent  # no local constraint is sent on
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    assert [(c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Oslo"}),
    ]
    # the follow-up carries the calls and the results in OpenAI's shape
    calls = choice.message.tool_calls
    follow = [
        *ask,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18 C"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "4 C"},
    ]
    r2 = client.chat.completions.create(
        model=remote, messages=follow, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}}
    )
    sent = SENT[-1]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {"id": calls[0].id, "type": "function", "function": {"name": "get_weather", "arguments": calls[0].function.arguments}},
            {"id": calls[1].id, "type": "function", "function": {"name": "get_weather", "arguments": calls[1].function.arguments}},
        ],
    }
    assert sent["messages"][2:] == [
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18 C"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "4 C"},
    ]
    assert r2.choices[0].message.content == "It is 18 C in Paris." and r2.choices[0].finish_reason == "stop"


def test_streamed_and_parallel_off(client, remote: str) -> None:
    SENT.clear()
    stream = client.chat.completions.create(
        model=remote, messages=[{"role": "user", "content": "Weather?"}], tools=TOOLS, parallel_tool_calls=False, stream=True
    )
    names, finish = [], None
    for chunk in stream:
        for c in chunk.choices:
            names += [d.function.name for d in c.delta.tool_calls or []]
            finish = c.finish_reason or finish
    assert SENT[-1]["parallel_tool_calls"] is False and SENT[-1]["tool_choice"] == "auto"
    assert names == ["get_weather"] and finish == "tool_calls"  # the engine sent two; parallel off keeps the first
