"""The one interface between serving and inference engines.

A runtime serves one loaded model. Its ``generate`` is a *synchronous* iterator of
:class:`Delta` objects that stops early when the ``cancel`` event is set; the serving layer
runs it on a worker thread and bridges it to asyncio, so a client that disconnects sets the
event and the engine stops between two tokens. Runtimes register by name (see
:mod:`plinth.runtimes.registry`) and import their heavy libraries only inside their own module.
"""

from __future__ import annotations

import abc
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from plinth.domain import ModelRecord
from plinth.errors import ErrorCode, PlinthError

if TYPE_CHECKING:
    from plinth.outbound import Outbound


@dataclass(frozen=True)
class RuntimeOptions:
    threads: int = 2
    context_length: int = 4096
    upstream_timeout_s: float = 600.0
    max_batch_size: int = 8  # sequences decoded together (batching runtimes)
    prefill_chunk_tokens: int = 256  # prompt tokens per scheduler step
    adapter_cache_bytes: int = 512 * 1024 * 1024  # loaded LoRA adapters per model, LRU beyond
    llamacpp_extra_buffers: bool = False  # llama.cpp weight repacking / AMX buffers
    torch_batching: bool = True  # the torch runtime's batching engine for llama-family models
    torch_dtype: str = "auto"  # auto, bfloat16 or float32
    torch_batch_invariant: bool = True  # decode batch sizes measured at load (torch engine)
    cache_dir: Path | None = None  # derived files (a GGUF dequantised for torch...)
    outbound: Outbound | None = None  # the outbound fetcher remote runtimes connect through (ADR 0080)


@dataclass(frozen=True)
class AdapterRef:
    """A LoRA adapter to apply to one request: ``key`` is its name under the base model and
    ``path`` the local file or directory in the form this runtime loads."""

    key: str
    path: Path
    size_bytes: int
    scale: float = 1.0


@dataclass
class OutputConstraint:
    """What the answer must be, enforced while decoding (constrained decoding).

    ``kind`` is ``json_object`` (any JSON object) or ``json_schema`` (a JSON value valid
    against ``schema``). ``response_format`` is the request's field as the client sent it,
    for remote engines that enforce it themselves. A local runtime compiles the constraint
    once in :meth:`InferenceRuntime.check_constraint` and keeps what it compiled in
    ``compiled``; its engine makes a fresh matcher from that for each sequence.
    """

    kind: str
    schema: dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    compiled: Any = None

    def key(self) -> str:
        """A stable key for caches of compiled constraints."""
        return self.kind + ":" + json.dumps(self.schema, sort_keys=True, separators=(",", ":"))


@dataclass
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop: list[str] = field(default_factory=list)
    #: the answer's grammar (structured outputs); None leaves decoding unconstrained
    constraint: OutputConstraint | None = None
    #: None: no log-probabilities; N >= 0: each sampled token's, with the N most likely alternatives
    logprobs: int | None = None
    #: added to the logits of these token ids before sampling (-100 bans a token, +100 forces it)
    logit_bias: dict[int, float] | None = None


@dataclass
class Prompt:
    """A request made ready for one runtime.

    Local runtimes fill ``text`` (the chat template applied) and ``token_ids``; the remote
    runtime keeps ``messages`` (or ``text`` for completions) and leaves the count to the
    upstream engine (``n_tokens`` is then an estimate or None).
    """

    text: str | None = None
    messages: list[dict[str, Any]] | None = None
    token_ids: list[int] | None = None
    n_tokens: int | None = None
    is_chat: bool = True
    #: for a remote engine, which gets tools as sent: the tools (OpenAI's shape), tool_choice,
    #: and parallel_tool_calls when the request turned them off
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None


@dataclass
class TokenLogprob:
    """One sampled token's natural-log probability under the model (before temperature,
    penalties and constraints), with the ``top`` most likely tokens at that position as
    (text, bytes, logprob)."""

    token: str
    bytes: list[int]
    logprob: float
    top: list[tuple[str, list[int], float]] = field(default_factory=list)


@dataclass
class Delta:
    """A piece of generated text. ``n_tokens`` tokens were produced to make it.

    ``finish_reason`` is set on the last delta: ``stop`` (end-of-sequence token or stop
    sequence), ``length`` (max_tokens reached) or ``cancelled``. ``usage`` may carry the
    engine's own token counts on the last delta (remote engines).
    """

    text: str
    n_tokens: int = 1
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    logprobs: list[TokenLogprob] | None = None  # one per token behind this delta, when asked for


@dataclass
class RuntimeHealth:
    ok: bool
    detail: str = ""
    info: dict[str, Any] = field(default_factory=dict)


class InferenceRuntime(abc.ABC):
    """Serve one model. Implementations are not required to be thread-safe for concurrent
    ``generate`` calls: the serving layer bounds concurrency per loaded model
    (``max_concurrent``)."""

    name: ClassVar[str]
    #: how many generations one loaded model may run at once
    max_concurrent: int = 1

    def __init__(self, model: ModelRecord, path: Path | None, options: RuntimeOptions) -> None:
        self.model = model
        self.path = path
        self.options = options

    @abc.abstractmethod
    def load(self) -> None:
        """Load the weights (blocking). Raise PlinthError(RUNTIME_UNAVAILABLE) on failure."""

    @abc.abstractmethod
    def context_length(self) -> int | None:
        """The context window in tokens, or None when unknown (remote engines)."""

    @abc.abstractmethod
    def prepare_chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, prefill: str = "") -> Prompt:
        """The chat prompt: the model's template applied to ``messages`` (and ``tools``, in the
        OpenAI shape, when the template lays them out itself), with ``prefill`` written after
        the generation prompt as the start of the answer."""

    def chat_template_handles_tools(self) -> bool:
        """Whether the model's chat template lays out tool definitions itself."""
        return False

    @abc.abstractmethod
    def prepare_text(self, text: str) -> Prompt: ...

    #: whether a remote engine enforces ``response_format`` itself (it gets the field as sent)
    remote_structured_outputs: ClassVar[bool] = False
    #: whether deltas carry token log-probabilities when ``SamplingParams.logprobs`` asks
    logprobs_supported: ClassVar[bool] = True

    #: whether ``generate`` accepts LoRA adapters, and in which form (see AdapterRef)
    adapter_format: ClassVar[str | None] = None

    @abc.abstractmethod
    def generate(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event, adapter: AdapterRef | None = None
    ) -> Iterator[Delta]:
        """Yield deltas until end-of-sequence, ``params.max_tokens`` or ``cancel`` is set.
        With ``adapter``, generate with that LoRA adapter applied to this request only."""

    @abc.abstractmethod
    def health(self) -> RuntimeHealth: ...

    @abc.abstractmethod
    def unload(self) -> None: ...

    def loaded_adapters(self) -> list[str]:
        return []

    def check_constraint(self, constraint: OutputConstraint) -> None:
        """Make ready to enforce ``constraint`` (compile it into ``constraint.compiled``), or
        raise PlinthError naming ``response_format`` when this runtime cannot. Called before
        the request is admitted, off the event loop."""
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"runtime {self.name!r} does not support structured outputs", param="response_format")

    def stats(self) -> dict[str, Any]:
        """Engine counters for /api/v1 and benchmarks (steps, tokens, adapter loads...)."""
        return {}

    def vocab_size(self) -> int | None:
        """Token ids this model knows (0 .. vocab_size-1), or None when unknown (remote engines)."""
        return None

    def count_tokens(self, text: str) -> int | None:
        """Tokens of a piece of output text (for usage when the engine does not say)."""
        return None
