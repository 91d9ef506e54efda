"""Request and response models of the Responses API (``/v1/responses``).

Requests are validated here: unknown fields are ignored (as on ``/v1/chat/completions``);
fields plinth cannot honour are refused with a 400 that names them (non-function tools,
``background``, ``truncation: auto``, reasoning effort, stored prompts, conversations,
``top_logprobs``, image and file inputs). The JSON schema of each refused field admits only its harmless values, so
the OpenAPI document says what is accepted. The response models document the answers' shapes
(OpenAI's ``Response``, its output items and the stream's events); the service builds plain
dicts.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationInfo, field_validator

from plinth.domain.numbers import API_INT_MAX
from plinth.serving.protocol import JSONSchemaFormat

#: content part types a client may send that plinth does not take (text only), and what they are
_UNSUPPORTED_PARTS = {"input_image": "images", "input_file": "files", "input_audio": "audio"}
_ITEM_TYPES = ("message", "function_call", "function_call_output")
_TOOL_NAME = r"^[A-Za-z0-9_-]{1,64}$"


# -- input items ------------------------------------------------------------------------------
class InputText(BaseModel):
    """Text in a message: ``input_text`` (user, system, developer) or ``output_text`` (an
    earlier assistant answer sent back)."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["input_text", "output_text"]
    text: str


class Refusal(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[InputText | Refusal, Field(discriminator="type")]


def _check_parts(value: Any) -> Any:
    if isinstance(value, list):
        for part in value:
            kind = part.get("type") if isinstance(part, dict) else None
            if isinstance(kind, str) and kind in _UNSUPPORTED_PARTS:
                raise ValueError(f"{kind} content ({_UNSUPPORTED_PARTS[kind]}) is not supported by this server: send text")
    return value


class MessageItem(BaseModel):
    """A message: ``{"role", "content"}``, with or without ``"type": "message"``."""

    model_config = ConfigDict(extra="ignore")
    id: str | None = Field(None, max_length=128, description="the item's id when it was sent back; else one is given")
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[ContentPart]

    _parts = field_validator("content", mode="before")(_check_parts)

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text if isinstance(p, InputText) else p.refusal for p in self.content)


class FunctionCallItem(BaseModel):
    """A function call the model made earlier, sent back with its output."""

    model_config = ConfigDict(extra="ignore")
    id: str | None = Field(None, max_length=128, description="the item's id when it was sent back; else one is given")
    type: Literal["function_call"]
    call_id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=128)
    arguments: str


class FunctionCallOutputItem(BaseModel):
    """What a function call returned (``call_id`` names the call)."""

    model_config = ConfigDict(extra="ignore")
    id: str | None = Field(None, max_length=128, description="the item's id when it was sent back; else one is given")
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1, max_length=128)
    output: str | list[InputText]

    _parts = field_validator("output", mode="before")(_check_parts)

    def text(self) -> str:
        return self.output if isinstance(self.output, str) else "".join(p.text for p in self.output)


def _item_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if kind is None:
        return "message"
    return kind if isinstance(kind, str) else repr(kind)


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")],
    Discriminator(_item_kind),
]


# -- tools, tool choice, text format -----------------------------------------------------------
class FunctionTool(BaseModel):
    """A function the model may call (the Responses shape: name and schema at the top level)."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    name: str = Field(pattern=_TOOL_NAME)
    description: str | None = Field(None, max_length=4096)
    parameters: dict[str, Any] | None = Field(None, description="a JSON schema of the arguments")
    strict: bool | None = Field(None, description="accepted; forced calls always follow the schema (constrained decoding)")


class ToolChoiceFunction(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    name: str = Field(pattern=_TOOL_NAME)


class TextFormatText(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]


class TextFormatJSONObject(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["json_object"]


class TextFormatJSONSchema(JSONSchemaFormat):
    """``json_schema``: the answer validates against ``schema`` (constrained decoding)."""

    type: Literal["json_schema"]


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")
    format: Annotated[TextFormatText | TextFormatJSONObject | TextFormatJSONSchema, Field(discriminator="type")] | None = None


class ReasoningConfig(BaseModel):
    """Accepted only empty: the models plinth serves do not reason separately."""

    model_config = ConfigDict(extra="ignore")
    effort: None = Field(None, description="refused when set")
    summary: None = Field(None, description="refused when set")
    generate_summary: None = Field(None, description="refused when set")

    @field_validator("effort", "summary", "generate_summary", mode="before")
    @classmethod
    def _refuse(cls, v: Any) -> Any:
        if v is not None:
            raise ValueError("reasoning options are not supported by this server's models")
        return v


# -- the request --------------------------------------------------------------------------------
class ResponsesRequest(BaseModel):
    """``POST /v1/responses``."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=256)
    input: str | list[InputItem] = Field(
        description="a user message as text, or a list of items: messages, function calls and function call outputs"
    )
    instructions: str | None = Field(None, description="a system message put first; not carried to follow-up responses")
    tools: list[FunctionTool] | None = Field(None, max_length=128, description="function tools (other tool types are refused)")
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceFunction | None = None
    parallel_tool_calls: bool | None = Field(None, description="default true: the model may make several calls in one answer")
    max_tool_calls: int | None = Field(None, ge=1, le=API_INT_MAX, description="at most this many function calls are returned")
    text: TextConfig | None = Field(None, description="format: text (default), json_object or json_schema")
    max_output_tokens: int | None = Field(None, ge=1, le=API_INT_MAX)  # the server's own limit: Settings.max_tokens_limit
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    stream: bool = False
    store: bool | None = Field(None, description="default true: keep the response for previous_response_id and GET")
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = Field(None, max_length=16)
    previous_response_id: str | None = Field(None, min_length=1, max_length=64)
    user: str | None = Field(None, max_length=256)
    # Accepted only with values that ask for nothing plinth lacks; refused otherwise (see the validators).
    background: Literal[False] | None = Field(None, description="only false: background responses are not supported")
    truncation: Literal["disabled"] | None = Field(None, description="only disabled: an input over the context window is refused")
    include: list[Literal["reasoning.encrypted_content"]] | None = Field(
        None, description="only reasoning.encrypted_content (there are no reasoning items to include)"
    )
    reasoning: ReasoningConfig | None = None
    prompt: None = Field(None, description="stored prompts are not supported: refused when set")
    conversation: None = Field(None, description="conversations are not supported (use previous_response_id): refused when set")
    top_logprobs: None = Field(None, description="log-probabilities are not returned here (use /v1/chat/completions): refused when set")

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, v: Any) -> Any:
        # Said here, before the union is tried: an unsupported item or part would otherwise be
        # reported as "input should be a valid string".
        if isinstance(v, list):
            for item in v:
                kind = _item_kind(item) if isinstance(item, dict) else None
                if kind is not None and kind not in _ITEM_TYPES:
                    raise ValueError(f"input items of type {kind!r} are not supported by this server (it takes {', '.join(_ITEM_TYPES)})")
                if isinstance(item, dict):
                    _check_parts(item.get("content"))
                    _check_parts(item.get("output"))
        return v

    @field_validator("tools", mode="before")
    @classmethod
    def _tools(cls, v: Any) -> Any:
        if isinstance(v, list):
            other = sorted({str(t.get("type")) for t in v if isinstance(t, dict) and t.get("type") != "function"})
            if other:
                raise ValueError(f"tools of type {', '.join(map(repr, other))} are not supported by this server (only 'function' tools)")
        return v

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _tool_choice(cls, v: Any) -> Any:
        if isinstance(v, dict) and v.get("type") not in (None, "function"):
            raise ValueError(f"tool_choice of type {v.get('type')!r} is not supported by this server")
        return v

    @field_validator("background", mode="before")
    @classmethod
    def _background(cls, v: Any) -> Any:
        if v is True:
            raise ValueError("background responses are not supported by this server")
        return v

    @field_validator("truncation", mode="before")
    @classmethod
    def _truncation(cls, v: Any) -> Any:
        if v == "auto":
            raise ValueError("truncation 'auto' is not supported by this server: an input over the context window is refused")
        return v

    @field_validator("include", mode="before")
    @classmethod
    def _include(cls, v: Any) -> Any:
        if isinstance(v, list):
            other = [x for x in v if x != "reasoning.encrypted_content"]
            if other:
                raise ValueError(f"include values {other!r} are not supported by this server")
        return v

    @field_validator("prompt", "conversation", "top_logprobs", mode="before")
    @classmethod
    def _refused(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None:
            raise ValueError(f"{info.field_name} is not supported by this server's Responses API")
        return v

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        for key in v or {}:
            if not key or len(key) > 64:
                raise ValueError(f"metadata keys are 1 to 64 characters; got {key[:80]!r}")
        return v


# -- responses (documentation of the shapes; the service builds plain dicts) ------------------
class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[dict[str, Any]]


class OutputMessage(BaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: Literal["in_progress", "completed", "incomplete"]
    content: list[OutputText]


class OutputFunctionCall(BaseModel):
    id: str
    type: Literal["function_call"] = "function_call"
    call_id: str
    name: str
    arguments: str = Field(description="the arguments as a JSON string")
    status: Literal["in_progress", "completed", "incomplete"]


OutputItem = Annotated[OutputMessage | OutputFunctionCall, Field(discriminator="type")]


class InputTokensDetails(BaseModel):
    cached_tokens: int


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class ResponseError(BaseModel):
    code: Literal["server_error", "rate_limit_exceeded", "invalid_prompt"] = Field(
        description="OpenAI's code; the stream's error event before response.failed carries plinth's own"
    )
    message: str


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens", "content_filter"]


class ResponseObject(BaseModel):
    """A response, as ``POST /v1/responses`` answers it and ``GET /v1/responses/{id}`` reads it."""

    model_config = ConfigDict(title="Response")
    id: str = Field(description="resp_...")
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["completed", "incomplete", "failed", "in_progress"]
    model: str
    output: list[OutputItem]
    usage: ResponseUsage | None
    error: ResponseError | None
    incomplete_details: IncompleteDetails | None
    instructions: str | None
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]
    parallel_tool_calls: bool
    text: dict[str, Any]
    temperature: float | None
    top_p: float | None
    max_output_tokens: int | None
    max_tool_calls: int | None
    previous_response_id: str | None
    metadata: dict[str, str]
    user: str | None
    store: bool
    background: bool
    truncation: Literal["disabled"]
    reasoning: dict[str, Any] | None
    service_tier: str


class DeletedResponse(BaseModel):
    id: str
    object: Literal["response"] = "response"
    deleted: Literal[True] = True


class InputItemList(BaseModel):
    """The conversation a stored response was answered from: the items of the responses it
    continued (their inputs and outputs) and its own input, each with an id."""

    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    first_id: str | None
    last_id: str | None
    has_more: bool
