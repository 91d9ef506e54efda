"""From a Responses API request to a chat completion request, and the items both speak.

Items are kept in one normalised form (each with an ``id`` and ``status``, content as parts):
that form is what a stored response holds as its conversation and what
``GET /v1/responses/{id}/input_items`` lists. :func:`chat_request` lays a conversation out
as chat messages: messages stay messages, consecutive ``function_call`` items become one
assistant message's ``tool_calls``, a ``function_call_output`` becomes a ``tool`` message.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError

from plinth.errors import ErrorCode, PlinthError
from plinth.serving.protocol import ChatCompletionRequest
from plinth.serving.responses.protocol import (
    FunctionCallItem,
    FunctionCallOutputItem,
    MessageItem,
    ResponsesRequest,
    TextFormatJSONObject,
    TextFormatJSONSchema,
    ToolChoiceFunction,
)

#: chat request fields (dotted prefixes) as the Responses API names them: errors name what the
#: client sent
_PARAM_PREFIXES = (
    ("messages", "input"),
    ("max_tokens", "max_output_tokens"),
    ("max_completion_tokens", "max_output_tokens"),
    ("response_format.json_schema", "text.format"),
    ("response_format", "text.format"),
    ("tool_choice.function", "tool_choice"),
)


def param_name(param: str | None) -> str | None:
    """A chat request's field (``response_format.json_schema.schema``) as the Responses
    request names it (``text.format.schema``)."""
    if not param:
        return param
    for chat, responses in _PARAM_PREFIXES:
        if param == chat or param.startswith(chat + "."):
            return responses + param[len(chat) :]
    parts = param.split(".")
    if len(parts) >= 3 and parts[0] == "tools" and parts[2] == "function":  # tools.N.function.X -> tools.N.X
        return ".".join(parts[:2] + parts[3:])
    return param


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def input_items(req: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's own input as normalised items."""
    if isinstance(req.input, str):
        return [_message("user", [{"type": "input_text", "text": req.input}])]
    items: list[dict[str, Any]] = []
    for item in req.input:
        if isinstance(item, MessageItem):
            kind = "output_text" if item.role == "assistant" else "input_text"
            parts = [{"type": kind, "text": item.content}] if isinstance(item.content, str) else _parts(item)
            items.append(_message(item.role, parts, item.id))
        elif isinstance(item, FunctionCallItem):
            items.append(
                {
                    "id": item.id or new_id("fc"),
                    "type": "function_call",
                    "call_id": item.call_id,
                    "name": item.name,
                    "arguments": item.arguments,
                    "status": "completed",
                }
            )
        elif isinstance(item, FunctionCallOutputItem):
            items.append(
                {
                    "id": item.id or new_id("fco"),
                    "type": "function_call_output",
                    "call_id": item.call_id,
                    "output": item.text(),
                    "status": "completed",
                }
            )
    return items


def _parts(item: MessageItem) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in item.content:
        if isinstance(p, str):  # pragma: no cover - content given as a string is handled by the caller
            continue
        if p.type == "refusal":
            out.append({"type": "refusal", "refusal": getattr(p, "refusal", "")})
        else:
            out.append({"type": p.type, "text": getattr(p, "text", "")})
    return out


def _message(role: str, parts: list[dict[str, Any]], item_id: str | None = None) -> dict[str, Any]:
    return {"id": item_id or new_id("msg"), "type": "message", "role": role, "content": parts, "status": "completed"}


def _text(parts: Any) -> str:
    if isinstance(parts, str):
        return parts
    return "".join(str(p.get("text") or p.get("refusal") or "") for p in parts or [] if isinstance(p, dict))


def chat_messages(instructions: str | None, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as chat messages, ``instructions`` first as a system message."""
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            messages.append({"role": item["role"], "content": _text(item.get("content"))})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function", "function": {"name": item["name"], "arguments": item["arguments"]}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            elif last is not None and last["role"] == "assistant" and "tool_calls" not in last:
                last["tool_calls"] = [call]
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": _text(item.get("output"))})
    return messages


def chat_tools(req: ResponsesRequest) -> list[dict[str, Any]] | None:
    if not req.tools:
        return None
    return [
        {"type": "function", "function": t.model_dump(exclude={"type"}, exclude_none=True)}
        for t in req.tools  # the Responses shape has the function's fields at the top level
    ]


def chat_tool_choice(req: ResponsesRequest) -> Any:
    choice = req.tool_choice
    if isinstance(choice, ToolChoiceFunction):
        return {"type": "function", "function": {"name": choice.name}}
    return choice


def response_format(req: ResponsesRequest) -> dict[str, Any] | None:
    fmt = req.text.format if req.text is not None else None
    if isinstance(fmt, TextFormatJSONSchema):
        schema = fmt.model_dump(by_alias=True, exclude={"type"}, exclude_none=True)
        return {"type": "json_schema", "json_schema": schema}
    if isinstance(fmt, TextFormatJSONObject):
        return {"type": "json_object"}
    return None


def chat_request(req: ResponsesRequest, conversation: list[dict[str, Any]]) -> ChatCompletionRequest:
    """The chat completion request that answers ``req`` over ``conversation``."""
    messages = chat_messages(req.instructions, conversation)
    if not messages:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "input is empty: give a text or at least one item", param="input")
    body: dict[str, Any] = {
        "model": req.model,
        "messages": messages,
        "stream": req.stream,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "max_tokens": req.max_output_tokens,
        "user": req.user,
        "tools": chat_tools(req),
        "tool_choice": chat_tool_choice(req),
        "parallel_tool_calls": req.parallel_tool_calls,
        "response_format": response_format(req),
    }
    try:
        return ChatCompletionRequest.model_validate({k: v for k, v in body.items() if v is not None})
    except ValidationError as e:
        first = e.errors()[0]
        param = param_name(".".join(str(p) for p in first.get("loc", ()))) or None
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"invalid value for {param!r}: {message}" if param else message, param=param) from None


# -- echoes of the request in the response object -----------------------------------------------
def echoed_tools(req: ResponsesRequest) -> list[dict[str, Any]]:
    return [
        {"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters, "strict": t.strict}
        for t in req.tools or []
    ]


def echoed_tool_choice(req: ResponsesRequest) -> str | dict[str, Any]:
    choice = req.tool_choice
    if isinstance(choice, ToolChoiceFunction):
        return {"type": "function", "name": choice.name}
    return choice or "auto"


def echoed_text(req: ResponsesRequest) -> dict[str, Any]:
    fmt = req.text.format if req.text is not None else None
    if isinstance(fmt, TextFormatJSONSchema):
        return {"format": {"type": "json_schema", **fmt.model_dump(by_alias=True, exclude={"type"})}}
    if isinstance(fmt, TextFormatJSONObject):
        return {"format": {"type": "json_object"}}
    return {"format": {"type": "text"}}
