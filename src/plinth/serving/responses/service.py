"""The Responses API on the chat service (ADR 0119).

:meth:`ResponsesService.start` reads the conversation a ``previous_response_id`` names,
translates the request into a chat completion request and starts it with
:meth:`plinth.serving.service.CompletionService.start_chat`, so routing by deployment, API key
limits, usage, the request log, guardrails and retrieval apply exactly as on
``/v1/chat/completions``. The :class:`ResponseRun` it returns shapes the job's output as a
response object (:meth:`ResponseRun.collect`) or as the Responses API's server-sent events
(:meth:`ResponseRun.events`), and stores the response when the request asks for it
(``store``, the default): its object and the conversation it answered, in the metadata
store's responses area, in the caller's project.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from plinth.domain.projects import in_context
from plinth.domain.responses import StoredResponse
from plinth.errors import ErrorCode, PlinthError, not_found
from plinth.serving.responses import convert
from plinth.serving.responses.protocol import ResponsesRequest
from plinth.serving.service import CompletionService, GenerationJob
from plinth.store.base_responses import ResponsesStore

T = TypeVar("T")

#: a finish reason that leaves a response incomplete, and why (OpenAI's incomplete_details.reason)
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


class ResponsesService:
    def __init__(self, completions: CompletionService, store: ResponsesStore) -> None:
        self.completions = completions
        self.store = store

    async def _call(self, fn: Callable[[], T]) -> T:
        """A store call on the thread pool, in the caller's project scope."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, in_context(fn))

    async def get(self, response_id: str) -> StoredResponse:
        found = await self._call(lambda: self.store.get_response(response_id))
        if found is None:
            raise not_found("response", response_id)
        return found

    async def delete(self, response_id: str) -> None:
        if not await self._call(lambda: self.store.delete_response(response_id)):
            raise not_found("response", response_id)

    async def start(self, req: ResponsesRequest) -> ResponseRun:
        limit = self.completions.settings.max_tokens_limit
        if req.max_output_tokens is not None and req.max_output_tokens > limit:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"max_output_tokens={req.max_output_tokens} is over this server's limit of {limit}",
                param="max_output_tokens",
            )
        conversation: list[dict[str, Any]] = []
        if req.previous_response_id is not None:
            previous = await self._call(lambda: self.store.get_response(req.previous_response_id or ""))
            if previous is None:
                raise PlinthError(
                    ErrorCode.NOT_FOUND,
                    f"previous response {req.previous_response_id!r} does not exist (or was not stored)",
                    param="previous_response_id",
                )
            conversation = previous.input_items + list(previous.body.get("output") or [])
        # An item sent again that the stored conversation already holds (same id) is not repeated.
        known = {item.get("id") for item in conversation}
        conversation += [item for item in convert.input_items(req) if item["id"] not in known]
        chat = convert.chat_request(req, conversation)
        try:
            job = await self.completions.start_chat(chat)
        except PlinthError as e:
            e.param = convert.param_name(e.param)
            raise
        return ResponseRun(self, req, job, conversation)


@dataclass
class ResponseRun:
    """One admitted response: the chat job that answers it and the response being built."""

    service: ResponsesService
    req: ResponsesRequest
    job: GenerationJob
    conversation: list[dict[str, Any]]
    output: list[dict[str, Any]] = field(default_factory=list)
    status: str = "in_progress"
    error: dict[str, str] | None = None
    incomplete: str | None = None
    created_at: int = field(default_factory=lambda: int(time.time()))
    _calls_left: int | None = None
    _seq: int = 0  # the next event's sequence_number

    def __post_init__(self) -> None:
        self._calls_left = self.req.max_tool_calls

    @property
    def id(self) -> str:
        return "resp_" + self.job.id

    @property
    def headers(self) -> dict[str, str]:
        return self.job.headers

    def close(self) -> None:
        self.job.close()

    # -- the response object -------------------------------------------------------------------
    def body(self) -> dict[str, Any]:
        req = self.req
        done = self.status != "in_progress"
        usage = None
        if done:
            used_in, used_out = self.job.prompt_tokens, self.job.completion_tokens
            usage = {
                "input_tokens": used_in,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": used_out,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": used_in + used_out,
            }
        extras = {k: v for k, v in self.job.extras.items() if k not in _RESPONSE_FIELDS} if done else {}
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": self.status,
            "model": self.job.model_id,
            "output": [dict(item) for item in self.output],
            "usage": usage,
            "error": self.error,
            "incomplete_details": {"reason": self.incomplete} if self.incomplete else None,
            "instructions": req.instructions,
            "tools": convert.echoed_tools(req),
            "tool_choice": convert.echoed_tool_choice(req),
            "parallel_tool_calls": req.parallel_tool_calls is not False,
            "text": convert.echoed_text(req),
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_output_tokens": req.max_output_tokens,
            "max_tool_calls": req.max_tool_calls,
            "previous_response_id": req.previous_response_id,
            "metadata": dict(req.metadata or {}),
            "user": req.user,
            "store": req.store is not False,
            "background": False,
            "truncation": "disabled",
            "reasoning": None,
            "service_tier": "default",
            **extras,
        }

    def _finish(self, finish: str | None) -> None:
        reason = _INCOMPLETE.get(finish or "")
        self.status = "incomplete" if reason else "completed"
        self.incomplete = reason
        last = self.output[-1] if self.output else None
        if last is not None and last["type"] == "message":  # the message the answer ended in (was cut, if it was)
            last["status"] = "incomplete" if reason else "completed"

    async def _store(self) -> None:
        if self.req.store is False:
            return
        stored = StoredResponse(
            id=self.id,
            model=self.job.model_id,
            body=self.body(),
            input_items=self.conversation,
            previous_response_id=self.req.previous_response_id,
        )
        await self.service._call(lambda: self.service.store.add_response(stored))

    def _take_calls(self, idx: int) -> list[dict[str, Any]]:
        items = []
        for call in self.job.take_tool_calls(idx):
            if self._calls_left is not None:
                if self._calls_left <= 0:
                    continue
                self._calls_left -= 1
            items.append(
                {
                    "id": convert.new_id("fc"),
                    "type": "function_call",
                    "call_id": call.id,
                    "name": call.name,
                    "arguments": call.arguments,
                    "status": "completed",
                }
            )
        return items

    # -- whole --------------------------------------------------------------------------------
    async def collect(self) -> dict[str, Any]:
        text: list[str] = []
        message: dict[str, Any] | None = None
        finish: str | None = None
        async for idx, piece, fin in self.job.choices():
            if piece:
                if message is None:
                    message = _message_item("")
                    self.output.append(message)
                text.append(piece)
                message["content"][0]["text"] = "".join(text)
            for item in self._take_calls(idx):
                self.output.append(item)
                message, text = None, []  # text after a call starts a new message
            finish = fin or finish
        if not self.output:
            self.output.append(_message_item(""))
        self._finish(finish)
        await self._store()
        return self.body()

    # -- streamed -----------------------------------------------------------------------------
    def _event(self, kind: str, **data: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._seq, **data}
        self._seq += 1
        return f"event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()

    def failure_events(self, err: PlinthError) -> bytes:
        """How the stream ends when generation fails: an ``error`` event, then ``response.failed``."""
        self.status, self.error = "failed", {"code": _FAILED_CODES.get(err.code, "server_error"), "message": err.message}
        return self._event("error", code=err.code.value, message=err.message, param=err.param) + self._event(
            "response.failed", response=self.body()
        )

    async def events(self) -> AsyncIterator[bytes]:
        """The Responses API's server-sent events, each with its ``sequence_number``."""
        event = self._event

        yield event("response.created", response=self.body())
        yield event("response.in_progress", response=self.body())
        message: dict[str, Any] | None = None
        text: list[str] = []

        def close_message(status: str = "completed") -> list[bytes]:
            assert message is not None
            index = self.output.index(message)
            full = "".join(text)
            part = {"type": "output_text", "text": full, "annotations": [], "logprobs": []}
            message["content"], message["status"] = [part], status
            done = dict(message)
            return [
                event("response.output_text.done", item_id=message["id"], output_index=index, content_index=0, text=full, logprobs=[]),
                event("response.content_part.done", item_id=message["id"], output_index=index, content_index=0, part=part),
                event("response.output_item.done", output_index=index, item=done),
            ]

        finish: str | None = None
        try:
            async for idx, piece, fin in self.job.choices():
                if piece:
                    if message is None:
                        message, text = _message_item(""), []
                        message["status"] = "in_progress"
                        self.output.append(message)
                        index = len(self.output) - 1
                        yield event("response.output_item.added", output_index=index, item={**message, "content": []})
                        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                        yield event("response.content_part.added", item_id=message["id"], output_index=index, content_index=0, part=part)
                    text.append(piece)
                    message["content"][0]["text"] += piece
                    index = len(self.output) - 1
                    yield event(
                        "response.output_text.delta", item_id=message["id"], output_index=index, content_index=0, delta=piece, logprobs=[]
                    )
                for item in self._take_calls(idx):
                    if message is not None:
                        for chunk in close_message():
                            yield chunk
                        message = None
                    self.output.append(item)
                    index = len(self.output) - 1
                    yield event("response.output_item.added", output_index=index, item={**item, "arguments": "", "status": "in_progress"})
                    yield event("response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=item["arguments"])
                    yield event(
                        "response.function_call_arguments.done",
                        item_id=item["id"],
                        output_index=index,
                        name=item["name"],
                        arguments=item["arguments"],
                    )
                    yield event("response.output_item.done", output_index=index, item=item)
                finish = fin or finish
            if message is None and not self.output:  # an empty answer is an empty message
                message, text = _message_item(""), []
                self.output.append(message)
                yield event("response.output_item.added", output_index=0, item={**message, "content": [], "status": "in_progress"})
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                yield event("response.content_part.added", item_id=message["id"], output_index=0, content_index=0, part=part)
            self._finish(finish)
            if message is not None:
                for chunk in close_message("incomplete" if self.incomplete else "completed"):
                    yield chunk
            await self._store()
        except PlinthError as e:
            self.job.service.metrics.errors.labels(e.code.value).inc()
            yield self.failure_events(e)
            return
        yield event("response.incomplete" if self.status == "incomplete" else "response.completed", response=self.body())


#: a failed response's error.code (OpenAI's codes; the stream's error event carries plinth's own)
_FAILED_CODES = {
    ErrorCode.RATE_LIMITED: "rate_limit_exceeded",
    ErrorCode.SERVER_BUSY: "rate_limit_exceeded",
    ErrorCode.INVALID_REQUEST: "invalid_prompt",
    ErrorCode.CONTEXT_LENGTH_EXCEEDED: "invalid_prompt",
}

#: top-level fields of a response object: what the stages add (citations, guardrail findings)
#: never replaces them
_RESPONSE_FIELDS = frozenset(
    "id object created_at status model output usage error incomplete_details instructions tools tool_choice "
    "parallel_tool_calls text temperature top_p max_output_tokens max_tool_calls previous_response_id metadata "
    "user store background truncation reasoning service_tier".split()
)


def _message_item(text: str) -> dict[str, Any]:
    return {
        "id": convert.new_id("msg"),
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }
