"""OpenAI protocol models for ``/v1`` (requests validated here, responses documented here).

Unknown request fields are ignored, as OpenAI clients send fields a server may not know;
fields plinth cannot honour (``suffix``, ``best_of`` above 1) are refused with a 400 naming
the field instead of being silently ignored. Tools (and the legacy ``functions``) are
checked here for their shape and in :mod:`plinth.serving.tools` for their meaning. ``response_format`` (structured outputs) is checked here
for its shape and in :mod:`plinth.serving.structured` for its schema.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from plinth.domain.numbers import API_INT_MAX

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
_NAME = r"^[A-Za-z0-9_.:-]{1,64}$"


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class FunctionCallIn(BaseModel):
    """A call as an earlier assistant message carries it (``arguments`` is JSON text)."""

    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=64)
    arguments: str = Field("", max_length=1_000_000)


class ToolCallIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=256)
    type: Literal["function"] = "function"
    function: FunctionCallIn


class FunctionDef(BaseModel):
    """A function the model may call: its name, what it does, and its arguments' JSON schema."""

    model_config = ConfigDict(extra="ignore")
    name: str = Field(pattern=_NAME, description="letters, digits, _ . : - (at most 64)")
    description: str | None = Field(None, max_length=8192)
    parameters: dict[str, Any] | None = Field(None, description="a JSON schema of type object; absent: no arguments")
    strict: bool | None = Field(
        None, description="true: the schema may use only what constrained decoding enforces (as for response_format)"
    )


class Tool(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=64)


class NamedToolChoice(BaseModel):
    """``{"type": "function", "function": {"name": ...}}``: call this function."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    function: NamedFunction


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Role
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = Field(None, max_length=128, description="assistant: the calls it made")
    tool_call_id: str | None = Field(None, max_length=256, description="tool: the call this message answers")
    function_call: FunctionCallIn | None = Field(None, description="assistant (legacy functions): the call it made")

    @model_validator(mode="after")
    def _content(self) -> ChatMessage:
        if self.content is None and self.role != "assistant":
            raise ValueError(f"content is required for a {self.role} message")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id (the id of the call it answers)")
        if self.role == "function" and not self.name:
            raise ValueError("a function message needs name (the function whose result it carries)")
        if (self.tool_calls or self.function_call) and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls or function_call")
        return self

    def calls(self) -> list[dict[str, str]]:
        """The calls an assistant message carries: id, name, arguments."""
        if self.tool_calls:
            return [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments} for c in self.tool_calls]
        if self.function_call:
            return [{"id": "call_legacy", "name": self.function_call.name, "arguments": self.function_call.arguments}]
        return []

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class JSONSchemaFormat(BaseModel):
    """``response_format.json_schema``: the schema the answer must validate against."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="a name for the schema")
    description: str | None = Field(None, max_length=4096)
    schema_: dict[str, Any] | None = Field(
        None,
        alias="schema",
        description="a JSON schema (the subset constrained decoding enforces: see docs/adr/0111); absent: any JSON value",
    )
    strict: bool | None = Field(
        None,
        description="true: the schema may use only what constrained decoding enforces (else a 400) and every answer validates; "
        "false or absent: any JSON schema, enforced as far as the decoder can (docs/adr/0118)",
    )


class ResponseFormat(BaseModel):
    """``text`` (the default), ``json_object`` (any JSON object) or ``json_schema``."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = Field(None, description="required when type is json_schema")

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("json_schema is required when type is 'json_schema'")
        return self


class _SamplingFields(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=256)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1, le=API_INT_MAX)  # the server's own limit: Settings.max_tokens_limit
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**64 - 1)
    n: int = Field(1, ge=1, le=API_INT_MAX)  # the server's own limit: Settings.max_n
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    user: str | None = Field(None, max_length=256)
    logit_bias: dict[str, float] | None = Field(
        None, description="token id (a string) -> bias from -100 to 100 added to its logit; -100 bans the token, 100 forces it"
    )

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> list[str] | None:
        if v is None:
            return None
        stops = [v] if isinstance(v, str) else v
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        if any(not s for s in stops):
            raise ValueError("stop sequences must not be empty")
        if any(len(s) > 256 for s in stops):
            raise ValueError("a stop sequence may be at most 256 characters")
        return stops

    @field_validator("logit_bias")
    @classmethod
    def _logit_bias(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if not v:
            return v
        if len(v) > 300:
            raise ValueError("at most 300 tokens may be biased")
        for key, bias in v.items():
            if not key.isdigit() or len(key) > 10:
                raise ValueError(f"keys are token ids (non-negative integers as strings); got {key[:20]!r}")
            if not -100 <= bias <= 100:
                raise ValueError(f"biases are from -100 to 100; got {bias} for token {key}")
        return v

    def token_biases(self) -> dict[int, float] | None:
        return {int(k): float(b) for k, b in self.logit_bias.items()} if self.logit_bias else None

    def stops(self) -> list[str]:
        return list(self.stop or [])

    def top_logprobs_wanted(self) -> int | None:
        """None: no log-probabilities; N: each token's, with N alternatives."""
        return None


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, le=API_INT_MAX)
    # plinth extension: answer from this knowledge base (``name`` or ``name@version``),
    # overriding the one attached to the model id.
    knowledge_base: str | None = Field(None, min_length=1, max_length=160)
    tools: list[Tool] | None = Field(None, max_length=128, description="functions the model may call (docs/adr/0118)")
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = Field(
        None, description="none, auto (the default with tools), required (some call), or a named function; the last two are enforced"
    )
    parallel_tool_calls: bool | None = Field(None, description="false: at most one call per answer")
    functions: list[FunctionDef] | None = Field(None, max_length=128, description="legacy: functions, answered with function_call")
    function_call: Literal["none", "auto"] | NamedFunction | None = Field(None, description="legacy: as tool_choice")
    response_format: ResponseFormat | None = None
    logprobs: bool | None = Field(None, description="return each output token's log-probability")
    top_logprobs: int | None = Field(None, ge=0, le=20, description="with logprobs: this many most likely tokens at each position")

    def top_logprobs_wanted(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None

    @model_validator(mode="after")
    def _chat_checks(self) -> ChatCompletionRequest:
        if self.tools and self.functions:
            raise ValueError("give tools or the legacy functions, not both")
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        if self.max_completion_tokens is not None and self.max_tokens is None:
            self.max_tokens = self.max_completion_tokens
        return self


class CompletionRequest(_SamplingFields):
    prompt: str | list[str]
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1, le=1, description="only 1 (the default) is supported")
    logprobs: int | None = Field(None, ge=0, le=5, description="return each token's log-probability and this many most likely tokens")

    def top_logprobs_wanted(self) -> int | None:
        return self.logprobs

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list):
            if not v:
                raise ValueError("prompt list must not be empty")
            if len(v) > 32:
                raise ValueError("at most 32 prompts per request")
        return v

    @model_validator(mode="after")
    def _completion_checks(self) -> CompletionRequest:
        if self.suffix:
            raise ValueError("suffix (fill-in-the-middle) is not supported by this server")
        if self.best_of not in (None, 1):
            raise ValueError("best_of is not supported by this server")
        return self

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


# -- responses (documentation of the shapes; the service builds plain dicts for speed) -------
class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprobEntry(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    content: list[TokenLogprobEntry] | None


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None
    text_offset: list[int]


class FunctionCallOut(BaseModel):
    name: str
    arguments: str


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallOut


class ChatChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCallOut] | None = None
    function_call: FunctionCallOut | None = None


class ChatChoice(BaseModel):
    index: int
    message: ChatChoiceMessage
    finish_reason: str | None
    logprobs: ChatLogprobs | None = None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: str | None
    logprobs: CompletionLogprobs | None = None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "plinth"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class OpenAIErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str
    type: Literal["invalid_request_error", "authentication_error", "permission_error", "rate_limit_error", "server_error"]
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    """The error shape of ``/v1`` (OpenAI's)."""

    model_config = ConfigDict(extra="forbid")
    error: OpenAIErrorBody
