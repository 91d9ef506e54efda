"""The Responses API (``/v1/responses``) on the live server, driven by the official openai
client: text and message inputs, instructions, structured output, streaming (every event
parsed with the SDK's own types), stored responses and ``previous_response_id``, function
tools, and the refusals, each in OpenAI's error shape."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jsonschema
import openai
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.support.live_server import MODEL, LiveServer

CITY = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 40}, "country": {"type": "string", "maxLength": 40}},
    "required": ["city", "country"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city now.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 30}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def _raw(live_server: LiveServer, **body: Any) -> httpx.Response:
    return httpx.post(live_server.v1 + "/responses", json={"model": MODEL, **body}, timeout=120)


def _strict(data: dict[str, Any]) -> Response:
    """The body parsed by the SDK's own model, as a strict validation (not the lenient construct)."""
    return Response.model_validate(data)


def _events(live_server: LiveServer, **body: Any) -> list[Any]:
    """The stream's events, each validated with the SDK's event union; SSE event names match."""
    out = []
    with httpx.stream("POST", live_server.v1 + "/responses", json={"model": MODEL, "stream": True, **body}, timeout=120) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                assert data["type"] == name
                out.append(EVENTS.validate_python(data))
    return out


# -- text, messages, instructions ---------------------------------------------------------------------
def test_text_input_gets_a_response_object_in_openai_shape(client, live_server: LiveServer) -> None:
    r = client.responses.create(model=MODEL, input="Say hello.", max_output_tokens=12, temperature=0)
    assert r.id.startswith("resp_") and r.object == "response" and r.model == MODEL
    assert r.status in ("completed", "incomplete") and r.output_text
    (msg,) = r.output
    assert msg.type == "message" and msg.role == "assistant" and msg.content[0].type == "output_text"
    assert r.usage.input_tokens > 0 and 0 < r.usage.output_tokens <= 12
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    raw = _raw(live_server, input="Say hello.", max_output_tokens=4, metadata={"team": "a"}, user="u1")
    assert raw.status_code == 200 and raw.headers["x-request-id"]
    body = raw.json()
    parsed = _strict(body)
    assert parsed.metadata == {"team": "a"} and parsed.tools == [] and parsed.tool_choice == "auto" and parsed.parallel_tool_calls
    assert body["store"] is True and body["text"] == {"format": {"type": "text"}} and body["error"] is None


def test_messages_and_instructions_are_the_chat_conversation(client) -> None:
    """Greedy answers: a response over messages (content as text or parts, developer as system,
    instructions first) is the chat completion over the same conversation."""
    chat = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Answer in one short sentence."},
            {"role": "user", "content": "What colour is the sky?"},
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "And grass?"},
        ],
        max_tokens=16,
        temperature=0,
    )
    r = client.responses.create(
        model=MODEL,
        instructions="Answer in one short sentence.",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "What colour is the sky?"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Blue."}]},
            {"role": "user", "content": "And grass?"},
        ],
        max_output_tokens=16,
        temperature=0,
    )
    assert r.output_text == chat.choices[0].message.content
    assert r.instructions == "Answer in one short sentence."
    assert r.usage.input_tokens == chat.usage.prompt_tokens
    dev = client.responses.create(
        model=MODEL,
        input=[{"role": "developer", "content": "Answer in one short sentence."}, {"role": "user", "content": "Hi"}],
        max_output_tokens=4,
        temperature=0,
    )
    assert dev.status in ("completed", "incomplete")


def test_max_output_tokens_leaves_the_response_incomplete(client) -> None:
    r = client.responses.create(model=MODEL, input="Tell me a long story about a dragon.", max_output_tokens=3)
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.output[0].status == "incomplete" and r.usage.output_tokens == 3


# -- structured output ----------------------------------------------------------------------------------
def test_json_schema_text_format_is_enforced(client) -> None:
    r = client.responses.create(
        model=MODEL,
        input="Describe Paris as JSON.",
        text={"format": {"type": "json_schema", "name": "city", "schema": CITY, "strict": True}},
        max_output_tokens=60,
        temperature=0,
    )
    assert r.status == "completed"
    jsonschema.validate(json.loads(r.output_text), CITY)
    assert r.text.format.type == "json_schema" and r.text.format.name == "city"


def test_the_parse_helper_gets_a_pydantic_object(client) -> None:
    class Animal(pydantic.BaseModel):
        name: str = pydantic.Field(max_length=30)
        legs: int

    r = client.responses.parse(model=MODEL, input="A cat as JSON.", text_format=Animal, max_output_tokens=40, temperature=0)
    assert isinstance(r.output_parsed, Animal)


def test_json_object_text_format(client) -> None:
    r = client.responses.create(
        model=MODEL, input="An apple as JSON.", text={"format": {"type": "json_object"}}, max_output_tokens=40, temperature=0
    )
    assert r.output_text.startswith("{")
    if r.status == "completed":
        assert isinstance(json.loads(r.output_text), dict)


# -- streaming --------------------------------------------------------------------------------------------
def test_stream_events_in_order_and_the_same_answer(client, live_server: LiveServer) -> None:
    whole = client.responses.create(model=MODEL, input="Name a fruit.", max_output_tokens=10, temperature=0)
    events = _events(live_server, input="Name a fruit.", max_output_tokens=10, temperature=0)
    kinds = [e.type for e in events]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed" if whole.status == "completed" else "response.incomplete",
    ]
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert deltas == whole.output_text == final.output_text
    assert events[0].response.status == "in_progress" and events[0].response.output == []
    assert final.id == events[0].response.id and final.usage.output_tokens == whole.usage.output_tokens


def test_the_sdk_stream_helper_gets_the_final_response(client) -> None:
    # the helper wants response.completed: a short schema makes the answer end by itself
    colour = {
        "type": "object",
        "properties": {"colour": {"type": "string", "maxLength": 12}},
        "required": ["colour"],
        "additionalProperties": False,
    }
    fmt = {"format": {"type": "json_schema", "name": "colour", "schema": colour, "strict": True}}
    with client.responses.stream(model=MODEL, input="Name a colour.", text=fmt, max_output_tokens=40, temperature=0) as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == final.output_text and final.status == "completed"
    jsonschema.validate(json.loads(final.output_text), colour)
    got = client.responses.retrieve(final.id)
    assert got.output_text == final.output_text


# -- stored responses ---------------------------------------------------------------------------------------
def test_previous_response_id_continues_the_conversation(client) -> None:
    first = client.responses.create(model=MODEL, input="My name is Ann.", max_output_tokens=8, temperature=0)
    second = client.responses.create(
        model=MODEL, previous_response_id=first.id, input="What is my name?", max_output_tokens=8, temperature=0
    )
    assert second.previous_response_id == first.id
    # the model saw the first exchange: its prompt holds the first input and answer
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    items = list(client.responses.input_items.list(second.id, order="asc"))
    texts = [(i.role, i.content[0].text) for i in items]
    assert texts == [("user", "My name is Ann."), ("assistant", first.output_text), ("user", "What is my name?")]
    assert all(i.id for i in items)
    newest = client.responses.input_items.list(second.id, limit=1)
    assert [i.content[0].text for i in newest.data] == ["What is my name?"] and newest.has_more
    # the same conversation sent whole gives the same answer
    whole = client.responses.create(
        model=MODEL,
        input=[
            {"role": "user", "content": "My name is Ann."},
            {"role": "assistant", "content": first.output_text},
            {"role": "user", "content": "What is my name?"},
        ],
        max_output_tokens=8,
        temperature=0,
    )
    assert whole.output_text == second.output_text and whole.usage.input_tokens == second.usage.input_tokens


def test_retrieve_and_delete(client, live_server: LiveServer) -> None:
    r = client.responses.create(model=MODEL, input="Hi", max_output_tokens=3, metadata={"k": "v"})
    got = client.responses.retrieve(r.id)
    assert got.model_dump() == r.model_dump()
    again = httpx.get(f"{live_server.v1}/responses/{r.id}", params={"stream": "true"}, timeout=30)  # not streamed again
    assert again.status_code == 400 and again.json()["error"]["param"] == "stream"
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.retrieve(r.id)
    assert e.value.body["code"] == "not_found" and r.id in e.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r.id)


def test_store_false_keeps_nothing(client) -> None:
    r = client.responses.create(model=MODEL, input="Hi", max_output_tokens=3, store=False)
    assert r.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.create(model=MODEL, input="Again", previous_response_id=r.id, max_output_tokens=3)
    assert e.value.body["param"] == "previous_response_id"


def test_unknown_previous_response_is_404_in_openai_shape(live_server: LiveServer) -> None:
    ghost = "resp_" + "0" * 32
    for pid in (ghost, "not-an-id"):
        r = _raw(live_server, input="Hi", previous_response_id=pid, max_output_tokens=2)
        assert r.status_code == 404
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"}
        assert err["param"] == "previous_response_id" and err["type"] == "invalid_request_error" and pid in err["message"]
    for method, path in (("GET", f"/responses/{ghost}"), ("DELETE", f"/responses/{ghost}"), ("GET", f"/responses/{ghost}/input_items")):
        r = httpx.request(method, live_server.v1 + path, timeout=30)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_another_projects_response_is_not_found(client, live_server: LiveServer) -> None:
    project = f"resp-{uuid.uuid4().hex[:8]}"
    made = httpx.post(live_server.url + "/api/v1/projects", json={"name": project}, timeout=30)
    assert made.status_code == 201, made.text
    other = openai.OpenAI(base_url=live_server.v1, api_key="x", max_retries=0, timeout=120, default_headers={"X-Plinth-Project": project})
    mine = client.responses.create(model=MODEL, input="Hi", max_output_tokens=2)
    theirs = other.responses.create(model=MODEL, input="Hi", max_output_tokens=2)
    assert other.responses.retrieve(theirs.id).id == theirs.id
    for who, rid in ((other, mine.id), (client, theirs.id)):
        with pytest.raises(openai.NotFoundError):
            who.responses.retrieve(rid)
        with pytest.raises(openai.NotFoundError):
            who.responses.create(model=MODEL, input="Hi", previous_response_id=rid, max_output_tokens=2)
        with pytest.raises(openai.NotFoundError):
            who.responses.delete(rid)
    assert client.responses.retrieve(mine.id).id == mine.id  # the other project's delete touched nothing


# -- refusals --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"input": []}, "input", "empty"),
        ({"input": "Hi", "tools": [{"type": "web_search_preview"}]}, "tools", "web_search_preview"),
        ({"input": "Hi", "tools": [{"type": "file_search", "vector_store_ids": ["v"]}, WEATHER]}, "tools", "file_search"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "http://x/y.png"}]}]}, "input", "input_image"),
        ({"input": [{"type": "reasoning", "id": "rs_1", "summary": []}]}, "input", "reasoning"),
        ({"input": "Hi", "background": True}, "background", "background"),
        ({"input": "Hi", "truncation": "auto"}, "truncation", "auto"),
        ({"input": "Hi", "reasoning": {"effort": "high"}}, "reasoning.effort", "reasoning"),
        ({"input": "Hi", "include": ["file_search_call.results"]}, "include", "file_search_call.results"),
        ({"input": "Hi", "prompt": {"id": "pmpt_1"}}, "prompt", "prompt"),
        ({"input": "Hi", "top_logprobs": 3}, "top_logprobs", "top_logprobs"),
        ({"input": "Hi", "max_output_tokens": 100_000}, "max_output_tokens", "limit"),
        ({"input": "Hi", "temperature": 3}, "temperature", "2"),
        ({"input": "Hi", "text": {"format": {"type": "json_schema", "name": "x y", "schema": CITY}}}, "text.format.json_schema.name", ""),
        (
            {"input": "Hi", "text": {"format": {"type": "json_schema", "name": "c", "schema": {"type": "nonsense"}}}},
            "text.format.schema",
            "nonsense",
        ),
        ({"model": "no-such-model", "input": "Hi"}, "", "no-such-model"),  # param null, as on /v1/chat/completions
    ],
)
def test_refusals_are_400_or_404_in_openai_shape(live_server: LiveServer, body: dict[str, Any], param: str, words: str) -> None:
    r = _raw(live_server, **body)
    assert r.status_code in (400, 404), r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert (err["param"] or "") == param, err
    assert words in err["message"], err


# -- function tools ---------------------------------------------------------------------------------------
def test_a_forced_call_then_its_output_in_a_follow_up(client) -> None:
    r = client.responses.create(model=MODEL, input="What is the weather in Paris?", tools=[WEATHER], tool_choice="required", temperature=0)
    calls = [i for i in r.output if i.type == "function_call"]
    assert calls and r.status == "completed"
    call = calls[0]
    assert call.name == "get_weather" and call.call_id.startswith("call_") and call.id.startswith("fc_")
    jsonschema.validate(json.loads(call.arguments), WEATHER["parameters"])
    assert r.tools[0].name == "get_weather" and r.tool_choice == "required"
    follow = client.responses.create(
        model=MODEL,
        previous_response_id=r.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny", "celsius": 21}'}],
        tools=[WEATHER],
        max_output_tokens=30,
        temperature=0,
    )
    assert follow.status in ("completed", "incomplete")
    assert follow.usage.input_tokens > r.usage.input_tokens
    kinds = [i.type for i in client.responses.input_items.list(follow.id, order="asc")]
    assert kinds == ["message", "function_call", "function_call_output"]
    # the call sent back again with its id (as some clients do) is not repeated
    again = client.responses.create(
        model=MODEL,
        previous_response_id=r.id,
        input=[call.model_dump(exclude_none=True), {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[WEATHER],
        max_output_tokens=5,
    )
    kinds = [i.type for i in client.responses.input_items.list(again.id, order="asc")]
    assert kinds == ["message", "function_call", "function_call_output"]


def test_a_named_tool_choice_streamed(live_server: LiveServer) -> None:
    events = _events(
        live_server,
        input="Weather in Rome?",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        temperature=0,
    )
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.done" in kinds and kinds[-1] == "response.completed"
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    added = next(e for e in events if e.type == "response.output_item.added" and e.item.type == "function_call")
    final = events[-1].response
    (item,) = [i for i in final.output if i.type == "function_call"]
    assert done.item_id == added.item.id == item.id and done.arguments == item.arguments
    jsonschema.validate(json.loads(item.arguments), WEATHER["parameters"])


def test_the_whole_conversation_sent_back_with_a_call_and_its_output(client) -> None:
    r = client.responses.create(
        model=MODEL,
        input=[
            {"role": "user", "content": "Weather in Oslo?"},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "rain, 8 C"},
        ],
        tools=[WEATHER],
        tool_choice="none",
        max_output_tokens=20,
        temperature=0,
    )
    assert r.status in ("completed", "incomplete") and r.output[0].type == "message"


# -- a failure after the stream started ----------------------------------------------------------------
class BreakingEngine(BaseHTTPRequestHandler):
    """A remote engine that sends one piece of an answer, then an error event."""

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        chunk = {"choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}]}
        error = {"error": {"message": "overloaded", "code": "overloaded"}}
        body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in (chunk, error))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def breaking_model(live_server: LiveServer) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BreakingEngine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    name = f"resp-breaking-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "base_url": f"http://127.0.0.1:{server.server_address[1]}/v1", "upstream_model": "fake", "context_length": 2048}
    r = httpx.post(f"{live_server.url}/api/v1/models", json=body, timeout=30)
    assert r.status_code == 201, r.text
    yield name
    httpx.delete(f"{live_server.url}/api/v1/models/{name}", timeout=30)
    server.shutdown()
    server.server_close()


def test_a_failure_mid_stream_ends_with_an_error_and_response_failed(live_server: LiveServer, breaking_model: str) -> None:
    events = _events(live_server, model=breaking_model, input="Hi", max_output_tokens=8)
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["error", "response.failed"] and "response.output_text.delta" in kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-2].code == "upstream_error" and "overloaded" in events[-2].message
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code == "server_error" and "overloaded" in failed.error.message
    with pytest.raises(openai.NotFoundError):  # a failed response is not stored
        openai.OpenAI(base_url=live_server.v1, api_key="x", max_retries=0).responses.retrieve(failed.id)
    whole = _raw(live_server, model=breaking_model, input="Hi", max_output_tokens=8)
    assert whole.status_code == 502 and whole.json()["error"]["code"] == "upstream_error"


# -- the chat path's hooks and stages apply ----------------------------------------------------------------
@pytest.fixture(scope="module")
def guarded_deployment(live_server: LiveServer) -> Iterator[str]:
    """A deployment of the embedded model behind a policy that blocks personal data in input."""
    tag = uuid.uuid4().hex[:6]
    policy = {"name": f"resp-block-{tag}", "rules": [{"detector": "pii", "on": ["input"], "action": "block"}]}
    r = httpx.post(f"{live_server.url}/api/v1/guardrails/policies", json=policy, timeout=60)
    assert r.status_code in (200, 201), r.text
    name = f"resp-dep-{tag}"
    r = httpx.post(
        f"{live_server.url}/api/v1/deployments", json={"name": name, "model": MODEL, "guardrail_policy": policy["name"]}, timeout=60
    )
    assert r.status_code == 201, r.text
    yield name
    httpx.delete(f"{live_server.url}/api/v1/deployments/{name}", timeout=60)


def test_a_deployment_name_routes_and_the_request_is_logged(client, live_server: LiveServer, guarded_deployment: str) -> None:
    raw = client.responses.with_raw_response.create(model=guarded_deployment, input="Hi", max_output_tokens=3)
    assert raw.headers["x-plinth-deployment"] == guarded_deployment and raw.headers["x-plinth-revision"] == "1"
    r = raw.parse()
    assert r.model == guarded_deployment
    follow = client.responses.create(model=guarded_deployment, previous_response_id=r.id, input="Again", max_output_tokens=3)
    assert follow.previous_response_id == r.id
    # the request log holds the chat request that answered it: chatcmpl- and the same id
    logged_id = "chatcmpl-" + r.id.removeprefix("resp_")
    deadline = time.monotonic() + 30
    while (e := httpx.get(f"{live_server.url}/api/v1/requests/{logged_id}", timeout=30)).status_code != 200:
        assert time.monotonic() < deadline, e.text
        time.sleep(0.2)
    entry = e.json()
    assert entry["deployment"] == guarded_deployment and entry["kind"] == "chat" and entry["completion_tokens"] == r.usage.output_tokens


def test_a_guardrail_block_leaves_the_response_incomplete(client, live_server: LiveServer, guarded_deployment: str) -> None:
    ask = "My SSN is 123-45-6789, is it safe?"
    r = client.responses.create(model=guarded_deployment, input=ask, max_output_tokens=20)
    assert r.status == "incomplete" and r.incomplete_details.reason == "content_filter"
    assert "123-45-6789" not in r.output_text
    assert r.model_extra["guardrails"]["blocked"] is True  # the stage's findings ride along, as on chat
    events = _events(live_server, model=guarded_deployment, input=ask, max_output_tokens=20)
    assert events[-1].type == "response.incomplete" and events[-1].response.output_text == r.output_text
