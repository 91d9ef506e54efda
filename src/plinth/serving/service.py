"""Chat and text completions: validation against the model, admission, generation, shaping.

Everything that can be refused is refused *before* a stream starts (unknown model, limits,
context window, a full queue), so such failures are proper HTTP errors; failures during a
stream are sent as an OpenAI error event. The caller must call :meth:`GenerationJob.close`
(the API does so in every path), which cancels generation and frees the admission slot.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from plinth.config import Settings
from plinth.errors import ErrorCode, PlinthError
from plinth.monitoring.metrics import Metrics
from plinth.runtimes import AdapterRef, Prompt, SamplingParams
from plinth.serving.engine import LoadedModel, ModelManager
from plinth.serving.protocol import ChatCompletionRequest, CompletionRequest, _SamplingFields
from plinth.serving.stops import StopMatcher


@dataclass
class ChoiceResult:
    index: int
    text: str = ""
    finish_reason: str | None = None
    completion_tokens: int = 0


@dataclass
class GenerationJob:
    """One admitted request: n choices over one or more prompts, generated in order."""

    service: CompletionService
    lm: LoadedModel
    kind: str  # "chat" | "text"
    model_id: str
    prompts: list[Prompt]
    params: list[SamplingParams]  # one per choice
    choice_prompt: list[int]  # prompt index of each choice
    echo: bool = False
    include_usage: bool = False
    adapter: AdapterRef | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()))
    admitted_at: float = field(default_factory=time.monotonic)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _released: bool = False
    _started: float = field(default_factory=time.monotonic)

    @property
    def response_id(self) -> str:
        return ("chatcmpl-" if self.kind == "chat" else "cmpl-") + self.id

    def close(self) -> None:
        if not self._released:
            self._released = True
            self.lm.admission.release(time.monotonic() - self._started)

    # -- generation ------------------------------------------------------------------------
    async def choices(self) -> AsyncIterator[tuple[int, str, str | None]]:
        """Yield (choice index, text piece, finish_reason-or-None) for every choice in order.

        Token counters and the finish-reason counter are updated even when the consumer stops
        early (a client disconnect is counted as ``cancelled``).
        """
        m = self.service.metrics
        model = self.model_id
        first_token = True
        finished_all = False
        try:
            for idx, params in enumerate(self.params):
                prompt = self.prompts[self.choice_prompt[idx]]
                matcher = StopMatcher(params.stop)
                finish: str | None = None
                counted = 0
                last = time.monotonic()
                usage_from_engine: dict[str, int] | None = None
                deltas = self.service.manager.stream(self.lm, prompt, params, self.adapter)
                try:
                    if self.echo and prompt.text:
                        yield idx, prompt.text, None
                    async for d in deltas:
                        now = time.monotonic()
                        if d.n_tokens:
                            counted += d.n_tokens
                            self.completion_tokens += d.n_tokens
                            if first_token:
                                m.ttft.labels(model).observe(now - self.admitted_at)
                                first_token = False
                            else:
                                m.itl.labels(model).observe((now - last) / d.n_tokens)
                            last = now
                        if d.usage:
                            usage_from_engine = d.usage
                        piece = matcher.feed(d.text)
                        if piece:
                            yield idx, piece, None
                        if matcher.stopped:
                            finish = "stop"
                            break
                        if d.finish_reason:
                            finish = d.finish_reason
                    rest = matcher.flush()
                    if rest:
                        yield idx, rest, None
                except (GeneratorExit, asyncio.CancelledError):
                    m.generations.labels(model, "cancelled").inc()
                    raise
                except Exception:
                    m.generations.labels(model, "error").inc()
                    raise
                finally:
                    await deltas.aclose()
                if usage_from_engine:
                    # A remote engine counts its own tokens: prefer its numbers to our chunk count.
                    if prompt.n_tokens is None and "prompt_tokens" in usage_from_engine:
                        prompt.n_tokens = usage_from_engine["prompt_tokens"]
                    if "completion_tokens" in usage_from_engine:
                        self.completion_tokens += usage_from_engine["completion_tokens"] - counted
                finish = finish or "stop"
                m.generations.labels(model, finish).inc()
                yield idx, "", finish
            finished_all = True
        finally:
            self.prompt_tokens = sum(p.n_tokens or 0 for p in self.prompts)
            if finished_all or self.completion_tokens:
                m.prompt_tokens.labels(model).inc(self.prompt_tokens)
            m.completion_tokens.labels(model).inc(self.completion_tokens)

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    async def collect(self) -> dict[str, Any]:
        results = [ChoiceResult(index=i) for i in range(len(self.params))]
        async for idx, piece, finish in self.choices():
            results[idx].text += piece
            if finish:
                results[idx].finish_reason = finish
        if self.kind == "chat":
            choices = [
                {
                    "index": r.index,
                    "message": {"role": "assistant", "content": r.text},
                    "finish_reason": r.finish_reason,
                    "logprobs": None,
                }
                for r in results
            ]
            obj = "chat.completion"
        else:
            choices = [{"index": r.index, "text": r.text, "finish_reason": r.finish_reason, "logprobs": None} for r in results]
            obj = "text_completion"
        return {
            "id": self.response_id,
            "object": obj,
            "created": self.created,
            "model": self.model_id,
            "choices": choices,
            "usage": self.usage(),
            "system_fingerprint": None,
        }

    async def sse(self) -> AsyncIterator[bytes]:
        """Server-sent events in OpenAI's streaming format, ending with ``[DONE]``."""
        obj = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        base = {"id": self.response_id, "object": obj, "created": self.created, "model": self.model_id}
        extra = {"usage": None} if self.include_usage else {}

        def event(payload: dict[str, Any]) -> bytes:
            return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"

        def chunk(idx: int, piece: str | None, finish: str | None, role: bool = False) -> bytes:
            if self.kind == "chat":
                delta: dict[str, Any] = {}
                if role:
                    delta["role"] = "assistant"
                if piece is not None:
                    delta["content"] = piece
                choice: dict[str, Any] = {"index": idx, "delta": delta, "finish_reason": finish, "logprobs": None}
            else:
                choice = {"index": idx, "text": piece or "", "finish_reason": finish, "logprobs": None}
            return event({**base, "choices": [choice], **extra})

        try:
            started: set[int] = set()
            async for idx, piece, finish in self.choices():
                if self.kind == "chat" and idx not in started:
                    started.add(idx)
                    yield chunk(idx, "", None, role=True)
                if piece:
                    yield chunk(idx, piece, None)
                if finish:
                    yield chunk(idx, None if self.kind == "chat" else "", finish)
            if self.include_usage:
                yield event({**base, "choices": [], "usage": self.usage()})
        except PlinthError as e:
            self.service.metrics.errors.labels(e.code.value).inc()
            yield event(e.to_openai())
        yield b"data: [DONE]\n\n"


class CompletionService:
    def __init__(self, settings: Settings, manager: ModelManager, metrics: Metrics) -> None:
        self.settings = settings
        self.manager = manager
        self.metrics = metrics

    # -- request -> job ----------------------------------------------------------------------
    async def start_chat(self, req: ChatCompletionRequest) -> GenerationJob:
        self._check_limits(req)
        lm, adapter = await self.manager.resolve(req.model)
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in req.messages]
        prompt = await self._prepare(lm, lambda: lm.runtime.prepare_chat(messages))
        return await self._admit(lm, "chat", req, [prompt], param="messages", adapter=adapter)

    async def start_completion(self, req: CompletionRequest) -> GenerationJob:
        self._check_limits(req, n_prompts=len(req.prompts()))
        lm, adapter = await self.manager.resolve(req.model)
        prompts = []
        for text in req.prompts():
            if not text:
                raise PlinthError(ErrorCode.INVALID_REQUEST, "prompt must not be empty", param="prompt")
            prompts.append(await self._prepare(lm, lambda t=text: lm.runtime.prepare_text(t)))
        return await self._admit(lm, "text", req, prompts, param="prompt", echo=req.echo, adapter=adapter)

    def _check_limits(self, req: _SamplingFields, n_prompts: int = 1) -> None:
        s = self.settings
        if req.n > s.max_n:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"n={req.n} is over this server's limit of {s.max_n}", param="n")
        if n_prompts * req.n > 32:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"{n_prompts} prompts x n={req.n} is over 32 choices", param="n")
        if req.max_tokens is not None and req.max_tokens > s.max_tokens_limit:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"max_tokens={req.max_tokens} is over this server's limit of {s.max_tokens_limit}",
                param="max_tokens",
            )

    async def _prepare(self, lm: LoadedModel, fn: Any) -> Prompt:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.manager.executor, fn)

    async def _admit(
        self,
        lm: LoadedModel,
        kind: str,
        req: _SamplingFields,
        prompts: list[Prompt],
        *,
        param: str,
        echo: bool = False,
        adapter: AdapterRef | None = None,
    ) -> GenerationJob:
        ctx = lm.runtime.context_length()
        max_tokens_by_prompt = []
        for p in prompts:
            if ctx is None or p.n_tokens is None:
                max_tokens_by_prompt.append(req.max_tokens or self.settings.default_max_tokens)
                continue
            room = ctx - p.n_tokens
            if req.max_tokens is not None:
                if p.n_tokens + req.max_tokens > ctx:
                    raise PlinthError(
                        ErrorCode.CONTEXT_LENGTH_EXCEEDED,
                        f"this model's context window is {ctx} tokens; the prompt has {p.n_tokens} tokens and "
                        f"max_tokens asks for {req.max_tokens} more ({p.n_tokens + req.max_tokens} in all)",
                        param=param if room <= 0 else "max_tokens",
                    )
                max_tokens_by_prompt.append(req.max_tokens)
            else:
                if room <= 0:
                    raise PlinthError(
                        ErrorCode.CONTEXT_LENGTH_EXCEEDED,
                        f"this model's context window is {ctx} tokens and the prompt alone has {p.n_tokens} tokens",
                        param=param,
                    )
                max_tokens_by_prompt.append(min(self.settings.default_max_tokens, room))
        params: list[SamplingParams] = []
        choice_prompt: list[int] = []
        for pi in range(len(prompts)):
            for c in range(req.n):
                seed = None if req.seed is None else (req.seed + len(params)) % (2**32)
                params.append(
                    SamplingParams(
                        max_tokens=max_tokens_by_prompt[pi],
                        temperature=1.0 if req.temperature is None else req.temperature,
                        top_p=1.0 if req.top_p is None else req.top_p,
                        seed=seed,
                        presence_penalty=req.presence_penalty,
                        frequency_penalty=req.frequency_penalty,
                        stop=req.stops(),
                    )
                )
                choice_prompt.append(pi)
        try:
            waited = await lm.admission.acquire()
        except PlinthError:
            self.metrics.rejected.labels(lm.record.name).inc()
            raise
        self.metrics.queue_wait.labels(lm.record.name).observe(waited)
        return GenerationJob(
            service=self,
            lm=lm,
            kind=kind,
            model_id=req.model,
            prompts=prompts,
            params=params,
            choice_prompt=choice_prompt,
            echo=echo,
            include_usage=bool(req.stream_options and req.stream_options.include_usage),
            adapter=adapter,
        )
