"""Chat and text completions: validation against the model, admission, generation, shaping.

Everything that can be refused is refused *before* a stream starts (unknown model, limits,
context window, a full queue), so such failures are proper HTTP errors; failures during a
stream are sent as an OpenAI error event. The caller must call :meth:`GenerationJob.close`
(the API does so in every path), which cancels generation and frees the admission slot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from plinth.config import Settings
from plinth.domain.projects import in_context
from plinth.domain.serving import Attachments
from plinth.errors import ErrorCode, PlinthError
from plinth.monitoring.metrics import Metrics
from plinth.runtimes import AdapterRef, OutputConstraint, Prompt, SamplingParams, TokenLogprob
from plinth.serving.engine import LoadedModel, ModelManager
from plinth.serving.pipeline import ChainedFilter, ChatContext, ChatStage, OutputFilter, StageAnswer
from plinth.serving.protocol import ChatCompletionRequest, CompletionRequest, _SamplingFields
from plinth.serving.stops import StopMatcher
from plinth.serving.structured import constraint_from
from plinth.serving.tools import (
    FORCED_PREFILL,
    ToolCall,
    ToolPlan,
    default_format_messages,
    openai_messages,
    plan_from,
    template_messages,
)

_STANDARD_FIELDS = frozenset({"id", "object", "created", "model", "choices", "usage", "system_fingerprint"})

log = logging.getLogger("plinth.serving")


@dataclass
class Route:
    """Where a :class:`RequestHook` sends a request (a deployment choosing a revision)."""

    model: str  # the model id that serves the request: a catalog id or a name an id resolver knows
    attachments: Attachments | None = None  # laid over what is attached to ``model``
    defaults: dict[str, Any] = field(default_factory=dict)  # generation fields used when the request leaves them unset
    headers: dict[str, str] = field(default_factory=dict)  # added to the response


@dataclass(frozen=True)
class RequestOutcome:
    """How one request ended, as every hook's :meth:`RequestHook.finished` is told."""

    response_id: str
    error: BaseException | None  # what failed it; None when it completed or the client left
    completed: bool  # every choice finished
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    finish_reasons: tuple[str, ...]
    ttft_s: float | None = None  # from the request's start to its first generated token; None: none came
    texts: tuple[str, ...] = ()  # each finished choice's text as sent (after the stages' output filters)


class RequestHook:
    """Sees every chat and text completion request (``CompletionService.hooks``, in order).

    :meth:`route` runs before the model is resolved; the first hook that returns a
    :class:`Route` decides which model id serves the request and what the route brings.
    :meth:`reserve` runs once the prompt's token count (None when the runtime cannot count
    it) and the most tokens the answer may take are known, before a generation slot is
    taken; raising :class:`PlinthError` refuses the request. :meth:`finished` runs exactly
    once when the request ends, however it ends: refused, failed, cancelled or completed.
    It is called on the event loop and must not block.
    """

    async def route(self, ctx: ChatContext) -> Route | None:
        return None

    async def reserve(self, ctx: ChatContext, prompt_tokens: int | None, max_completion_tokens: int) -> None:
        return None

    def finished(self, ctx: ChatContext, outcome: RequestOutcome) -> None:
        return None


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
    ctx: ChatContext | None = None
    answer: StageAnswer | None = None  # answered by a stage: no generation, no admission slot
    tool_plan: ToolPlan | None = None  # the request's tools (see plinth.serving.tools)
    #: each choice's tool calls, in order
    tool_calls: dict[int, list[ToolCall]] = field(default_factory=dict)
    _tc_pending: dict[int, list[ToolCall]] = field(default_factory=dict)  # not yet taken (take_tool_calls)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()))
    admitted_at: float = field(default_factory=time.monotonic)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: BaseException | None = None  # what failed the generation, for the hooks
    completed: bool = False  # every choice finished
    finish_reasons: list[str] = field(default_factory=list)
    first_token_at: float | None = None  # time.monotonic() of the first generated token
    texts: list[str] = field(default_factory=list)  # each finished choice's text as sent
    #: each choice's token log-probabilities, when the request asked for them
    logprobs: dict[int, list[TokenLogprob]] = field(default_factory=dict)
    _lp_pending: dict[int, list[TokenLogprob]] = field(default_factory=dict)  # not yet sent in a chunk
    _released: bool = False
    _reported: bool = False
    _started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.answer is not None:
            self._released = True  # never admitted
        if self.ctx is not None:
            self.id = self.ctx.request_id

    @property
    def response_id(self) -> str:
        return ("chatcmpl-" if self.kind == "chat" else "cmpl-") + self.id

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.ctx.headers) if self.ctx is not None else {}

    @property
    def extras(self) -> dict[str, Any]:
        if self.ctx is None:
            return {}
        return {k: v for k, v in self.ctx.extras.items() if k not in _STANDARD_FIELDS}

    def close(self) -> None:
        if not self._released:
            self._released = True
            self.lm.admission.release(time.monotonic() - self._started)
        if not self._reported and self.ctx is not None:
            self._reported = True
            self.service._report(self.ctx, self, self.error)

    def logged_texts(self) -> tuple[str, ...]:
        """Each finished choice's text as sent, with its tool calls written after it (for the
        request log, which would otherwise show a call-only answer as empty)."""
        out = []
        for i, text in enumerate(self.texts):
            calls = self.tool_calls.get(i)
            if calls:
                text = "\n".join([text, *(json.dumps({"tool_call": c.legacy()}, ensure_ascii=False) for c in calls)]).strip()
            out.append(text)
        return tuple(out)

    def take_tool_calls(self, idx: int) -> list[ToolCall]:
        """The tool calls of choice ``idx`` completed since the last take (in order)."""
        return self._tc_pending.pop(idx, [])

    def _add_calls(self, idx: int, calls: list[ToolCall]) -> None:
        if calls:
            self.tool_calls.setdefault(idx, []).extend(calls)
            self._tc_pending.setdefault(idx, []).extend(calls)

    def _filter(self, idx: int) -> OutputFilter | None:
        if self.ctx is None:
            return None
        filters = [f for f in (st.output_filter(self.ctx, idx) for st in self.service.stages) if f is not None]
        if not filters:
            return None
        return filters[0] if len(filters) == 1 else ChainedFilter(filters)

    async def _answered(self) -> AsyncIterator[tuple[int, str, str | None]]:
        assert self.answer is not None
        m = self.service.metrics
        texts = self.texts
        for idx in range(len(self.params)):
            texts.append(self.answer.text)
            yield idx, self.answer.text, None
            m.generations.labels(self.model_id, self.answer.finish_reason).inc()
            self.finish_reasons.append(self.answer.finish_reason)
            if idx < len(self.params) - 1:
                yield idx, "", self.answer.finish_reason
        await self._after(texts)
        self.completed = True
        yield len(self.params) - 1, "", self.answer.finish_reason

    async def _after(self, texts: list[str]) -> None:
        if self.ctx is None:
            return
        for stage in self.service.stages:
            await stage.after(self.ctx, texts)

    # -- generation ------------------------------------------------------------------------
    async def choices(self) -> AsyncIterator[tuple[int, str, str | None]]:
        """Yield (choice index, text piece, finish_reason-or-None) for every choice in order.

        Token counters and the finish-reason counter are updated even when the consumer stops
        early (a client disconnect is counted as ``cancelled``).
        """
        if self.answer is not None:
            async for item in self._answered():
                yield item
            return
        m = self.service.metrics
        model = self.model_id
        first_token = True
        finished_all = False
        texts = self.texts
        try:
            for idx, params in enumerate(self.params):
                prompt = self.prompts[self.choice_prompt[idx]]
                matcher = StopMatcher(params.stop)
                out = self._filter(idx)
                plan = self.tool_plan
                parser = plan.parser(remote=self.lm.runtime.remote_structured_outputs) if plan is not None and plan.active else None
                sent: list[str] = []
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
                                self.first_token_at = now
                                first_token = False
                            else:
                                m.itl.labels(model).observe((now - last) / d.n_tokens)
                            last = now
                        if d.usage:
                            usage_from_engine = d.usage
                        if d.logprobs:
                            self.logprobs.setdefault(idx, []).extend(d.logprobs)
                            self._lp_pending.setdefault(idx, []).extend(d.logprobs)
                        piece = matcher.feed(d.text)
                        called = False
                        if parser is not None and piece:
                            piece, calls = parser.feed(piece)
                            self._add_calls(idx, calls)
                            called = bool(calls)
                        if out is not None and piece:
                            piece = out.feed(piece)
                            if out.halt is not None:
                                finish = out.halt_reason
                                piece = out.halt
                        if piece or called:
                            sent.append(piece)
                            yield idx, piece, None
                        if finish is not None:
                            break
                        if matcher.stopped:
                            finish = "stop"
                            break
                        if d.finish_reason:
                            finish = d.finish_reason
                    if out is None or out.halt is None:
                        rest = matcher.flush()
                        if parser is not None:
                            head, calls = parser.feed(rest) if rest else ("", [])
                            tail, more = parser.flush()
                            rest = head + tail
                            self._add_calls(idx, calls + more)
                        if out is not None:
                            rest = (out.feed(rest) if rest else "") + out.flush()
                            if out.halt is not None:
                                finish = out.halt_reason
                                rest = out.halt
                        if rest:
                            sent.append(rest)
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
                if self.tool_calls.get(idx) and finish in ("stop", "tool_calls", "function_call"):
                    finish = "function_call" if self.tool_plan is not None and self.tool_plan.legacy else "tool_calls"
                m.generations.labels(model, finish).inc()
                self.finish_reasons.append(finish)
                texts.append("".join(sent))
                if idx < len(self.params) - 1:
                    yield idx, "", finish
            # The last finish is sent after the stages have seen the whole answer, so what
            # they add (citations, guardrail findings) can ride on the last chunk.
            await self._after(texts)
            finished_all = self.completed = True
            yield len(self.params) - 1, "", finish
        except Exception as e:
            self.error = e
            raise
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
                    "message": self._message(r.index, r.text),
                    "finish_reason": r.finish_reason,
                    "logprobs": self._logprobs_of(self.logprobs.get(r.index, [])),
                }
                for r in results
            ]
            obj = "chat.completion"
        else:
            choices = [
                {
                    "index": r.index,
                    "text": r.text,
                    "finish_reason": r.finish_reason,
                    "logprobs": self._logprobs_of(self.logprobs.get(r.index, []), self._echoed(r.index)),
                }
                for r in results
            ]
            obj = "text_completion"
        return {
            "id": self.response_id,
            "object": obj,
            "created": self.created,
            "model": self.model_id,
            "choices": choices,
            "usage": self.usage(),
            "system_fingerprint": None,
            **self.extras,
        }

    def _message(self, idx: int, text: str) -> dict[str, Any]:
        """A chat choice's message: its text, and its tool calls where it made any."""
        calls = self.tool_calls.get(idx)
        if not calls:
            return {"role": "assistant", "content": text}
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if self.tool_plan is not None and self.tool_plan.legacy:
            message["function_call"] = calls[0].legacy()
        else:
            message["tool_calls"] = [c.openai() for c in calls]
        return message

    @property
    def wants_logprobs(self) -> bool:
        return bool(self.params) and self.params[0].logprobs is not None

    def _echoed(self, idx: int) -> int:
        """Characters of prompt text before a completion choice's own text (echo)."""
        prompt = self.prompts[self.choice_prompt[idx]] if self.choice_prompt else None
        return len(prompt.text or "") if self.echo and prompt is not None else 0

    def _logprobs_of(self, entries: list[TokenLogprob], offset: int = 0) -> dict[str, Any] | None:
        """OpenAI's logprobs object for these tokens: chat's ``content`` list, or the legacy
        completions shape (tokens, token_logprobs, top_logprobs, text_offset)."""
        if not self.wants_logprobs:
            return None
        if self.kind == "chat":
            return {
                "content": [
                    {
                        "token": e.token,
                        "logprob": e.logprob,
                        "bytes": e.bytes,
                        "top_logprobs": [{"token": t, "logprob": lp, "bytes": b} for t, b, lp in e.top],
                    }
                    for e in entries
                ]
            }
        offsets = []
        for e in entries:
            offsets.append(offset)
            offset += len(e.token)
        return {
            "tokens": [e.token for e in entries],
            "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": [{t: lp for t, _, lp in e.top} for e in entries],
            "text_offset": offsets,
        }

    async def sse(self) -> AsyncIterator[bytes]:
        """Server-sent events in OpenAI's streaming format, ending with ``[DONE]``."""
        obj = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        base = {"id": self.response_id, "object": obj, "created": self.created, "model": self.model_id}
        extra = {"usage": None} if self.include_usage else {}

        def event(payload: dict[str, Any]) -> bytes:
            return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"

        last = len(self.params) - 1

        sent_chars: dict[int, int] = {}

        def pending_logprobs(idx: int) -> dict[str, Any] | None:
            entries = self._lp_pending.pop(idx, [])
            if not entries:
                return None
            offset = sent_chars.get(idx, self._echoed(idx))
            sent_chars[idx] = offset + sum(len(e.token) for e in entries)
            return self._logprobs_of(entries, offset)

        def chunk(idx: int, piece: str | None, finish: str | None, role: bool = False) -> bytes:
            lps = None if role else pending_logprobs(idx)
            if self.kind == "chat":
                delta: dict[str, Any] = {}
                if role:
                    delta["role"] = "assistant"
                if piece is not None:
                    delta["content"] = piece
                choice: dict[str, Any] = {"index": idx, "delta": delta, "finish_reason": finish, "logprobs": lps}
            else:
                choice = {"index": idx, "text": piece or "", "finish_reason": finish, "logprobs": lps}
            if finish and idx == last:
                return event({**base, "choices": [choice], **extra, **self.extras})
            return event({**base, "choices": [choice], **extra})

        sent_calls: dict[int, int] = {}

        def tool_chunk(idx: int, call: ToolCall) -> bytes:
            k = sent_calls.get(idx, 0)
            sent_calls[idx] = k + 1
            if self.tool_plan is not None and self.tool_plan.legacy:
                delta: dict[str, Any] = {"function_call": call.legacy()}
            else:
                delta = {"tool_calls": [call.openai(index=k)]}
            return event({**base, "choices": [{"index": idx, "delta": delta, "finish_reason": None, "logprobs": None}], **extra})

        try:
            started: set[int] = set()
            async for idx, piece, finish in self.choices():
                if self.kind == "chat" and idx not in started:
                    started.add(idx)
                    yield chunk(idx, "", None, role=True)
                if piece:
                    yield chunk(idx, piece, None)
                for call in self.take_tool_calls(idx):
                    yield tool_chunk(idx, call)
                if finish:
                    yield chunk(idx, None if self.kind == "chat" else "", finish)
            if self.include_usage:
                yield event({**base, "choices": [], "usage": self.usage()})
        except PlinthError as e:
            self.service.metrics.errors.labels(e.code.value).inc()
            yield event(e.to_openai())
        yield b"data: [DONE]\n\n"


class CompletionService:
    """Turns a validated ``/v1`` request into an admitted :class:`GenerationJob`.

    ``stages`` run around generation (see :mod:`plinth.serving.pipeline`); ``attachments``
    looks up what is attached to a model id (a cached store read).
    """

    def __init__(
        self,
        settings: Settings,
        manager: ModelManager,
        metrics: Metrics,
        stages: list[ChatStage] | None = None,
        attachments: Any = None,
    ) -> None:
        self.settings = settings
        self.manager = manager
        self.metrics = metrics
        self.stages: list[ChatStage] = stages if stages is not None else []  # shared, filled after wiring
        self._attachments = attachments
        #: request hooks (routing by deployment, limits, usage accounting); see RequestHook
        self.hooks: list[RequestHook] = []

    def attachments_for(self, model_id: str, served_id: str | None = None) -> Attachments:
        """What is attached to the requested id, else to the id that serves it."""
        if self._attachments is None:
            return Attachments()
        found = self._attachments(model_id)
        if found is None and served_id and served_id != model_id:
            found = self._attachments(served_id)
        return found or Attachments()

    # -- request -> job ----------------------------------------------------------------------
    async def start_chat(self, req: ChatCompletionRequest) -> GenerationJob:
        ctx = self._context("chat", req)
        try:
            req = await self._route(ctx, req)
            self._check_limits(req)
            r = await self.manager.resolve(ctx.served_model)
            lm, adapter = r.lm, r.adapter
            plan = plan_from(req)
            # a remote engine enforces the schema itself: only JSON Schema's own rules are checked here
            constraint = constraint_from(req.response_format, enforced_here=not lm.runtime.remote_structured_outputs)
            if plan is not None and plan.forced and not lm.runtime.remote_structured_outputs:
                constraint = plan.constraint()  # a forced call is the answer: response_format is for text answers
            if constraint is not None:
                await self._prepare(lm, lambda: lm.runtime.check_constraint(constraint))
            messages = [_message_dict(m) for m in req.messages]
            pinned = Attachments(knowledge_base=req.knowledge_base) if req.knowledge_base else None
            attachments = self._route_attachments(ctx, r.served_id).overlay(pinned)
            if attachments.system_prompt and not any(m["role"] == "system" for m in messages):
                messages.insert(0, {"role": "system", "content": attachments.system_prompt})
            ctx.served_model, ctx.attachments, ctx.messages = r.served_id, attachments, messages
            answer = await self._before(ctx)
            if answer is not None:
                return self._answered(lm, "chat", req, ctx, answer, n_prompts=1)
            prompt = await self._prepare(lm, lambda: _chat_prompt(lm, ctx.messages, plan))
            job = await self._admit(lm, "chat", req, [prompt], param="messages", adapter=adapter, ctx=ctx, constraint=constraint)
            job.tool_plan = plan
            return job
        except BaseException as e:
            self._report(ctx, None, e)
            raise

    async def start_completion(self, req: CompletionRequest) -> GenerationJob:
        ctx = self._context("text", req)
        try:
            req = await self._route(ctx, req)
            self._check_limits(req, n_prompts=len(req.prompts()))
            r = await self.manager.resolve(ctx.served_model)
            lm, adapter = r.lm, r.adapter
            texts = req.prompts()
            if any(not t for t in texts):
                raise PlinthError(ErrorCode.INVALID_REQUEST, "prompt must not be empty", param="prompt")
            ctx.served_model, ctx.attachments, ctx.prompts = r.served_id, self._route_attachments(ctx, r.served_id), list(texts)
            answer = await self._before(ctx)
            if answer is not None:
                return self._answered(lm, "text", req, ctx, answer, n_prompts=len(texts))
            prompts = []
            for text in ctx.prompts:
                prompts.append(await self._prepare(lm, lambda t=text: lm.runtime.prepare_text(t)))
            return await self._admit(lm, "text", req, prompts, param="prompt", echo=req.echo, adapter=adapter, ctx=ctx)
        except BaseException as e:
            self._report(ctx, None, e)
            raise

    # -- request hooks -------------------------------------------------------------------------
    def _context(self, kind: str, req: _SamplingFields) -> ChatContext:
        ctx = ChatContext(
            kind=kind, model_id=req.model, served_model=req.model, attachments=Attachments(), user=req.user, stream=req.stream
        )
        ctx.state["started"] = time.monotonic()
        return ctx

    async def _route(self, ctx: ChatContext, req: Any) -> Any:
        """Ask the hooks where the request goes; apply the route's generation defaults to the
        fields the request did not give."""
        for hook in self.hooks:
            route = await hook.route(ctx)
            if route is None:
                continue
            ctx.state["route"] = route
            ctx.served_model = route.model
            ctx.headers.update(route.headers)
            # given = sent with a value (an explicit null counts as unset; max_completion_tokens sets max_tokens)
            given = {k for k in req.model_fields_set if getattr(req, k, None) is not None}
            given |= {"max_tokens"} if req.max_tokens is not None else set()
            update = {k: v for k, v in route.defaults.items() if k not in given}
            return req.model_copy(update=update) if update else req
        return req

    def _route_attachments(self, ctx: ChatContext, served_id: str) -> Attachments:
        route: Route | None = ctx.state.get("route")
        if route is None:
            return self.attachments_for(ctx.model_id, served_id)
        return self.attachments_for(route.model, served_id).overlay(route.attachments)

    def _report(self, ctx: ChatContext, job: GenerationJob | None, error: BaseException | None) -> None:
        if not self.hooks:
            return
        started = ctx.state.get("started", time.monotonic())
        first = job.first_token_at if job is not None else None
        outcome = RequestOutcome(
            response_id=job.response_id if job is not None else ("chatcmpl-" if ctx.kind == "chat" else "cmpl-") + ctx.request_id,
            error=error,
            completed=job is not None and job.completed,
            prompt_tokens=job.prompt_tokens if job is not None else 0,
            completion_tokens=job.completion_tokens if job is not None else 0,
            latency_s=time.monotonic() - started,
            finish_reasons=tuple(job.finish_reasons) if job is not None else (),
            ttft_s=None if first is None else first - started,
            texts=job.logged_texts() if job is not None else (),
        )
        for hook in self.hooks:
            try:
                hook.finished(ctx, outcome)
            except Exception:  # accounting must never fail a response
                log.exception("request hook %s failed in finished()", type(hook).__name__)

    async def _before(self, ctx: ChatContext) -> StageAnswer | None:
        for stage in self.stages:
            answer = await stage.before(ctx)
            if answer is not None:
                return answer
        return None

    def _answered(
        self, lm: LoadedModel, kind: str, req: _SamplingFields, ctx: ChatContext, answer: StageAnswer, n_prompts: int
    ) -> GenerationJob:
        n = n_prompts * req.n
        return GenerationJob(
            service=self,
            lm=lm,
            kind=kind,
            model_id=req.model,
            prompts=[Prompt(text=None, n_tokens=0) for _ in range(n_prompts)],
            params=[SamplingParams(max_tokens=1) for _ in range(n)],
            choice_prompt=[i // req.n for i in range(n)],
            include_usage=bool(req.stream_options and req.stream_options.include_usage),
            ctx=ctx,
            answer=answer,
        )

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

    async def _prepare(self, lm: LoadedModel, fn: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.manager.executor, in_context(fn))

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
        ctx: ChatContext | None = None,
        constraint: OutputConstraint | None = None,
    ) -> GenerationJob:
        if req.top_logprobs_wanted() is not None and not lm.runtime.logprobs_supported:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, f"model {req.model!r} (a remote engine) does not return logprobs here", param="logprobs"
            )
        biases = req.token_biases()
        vocab = lm.runtime.vocab_size() if biases else None
        if biases and vocab is not None:
            outside = sorted(t for t in biases if t >= vocab)
            if outside:
                raise PlinthError(
                    ErrorCode.INVALID_REQUEST,
                    f"logit_bias names token ids outside this model's vocabulary of {vocab}: {outside[:5]}",
                    param="logit_bias",
                )
        window = lm.runtime.context_length()
        max_tokens_by_prompt = []
        for p in prompts:
            if window is None or p.n_tokens is None:
                max_tokens_by_prompt.append(req.max_tokens or self.settings.default_max_tokens)
                continue
            room = window - p.n_tokens
            if req.max_tokens is not None:
                if p.n_tokens + req.max_tokens > window:
                    raise PlinthError(
                        ErrorCode.CONTEXT_LENGTH_EXCEEDED,
                        f"this model's context window is {window} tokens; the prompt has {p.n_tokens} tokens and "
                        f"max_tokens asks for {req.max_tokens} more ({p.n_tokens + req.max_tokens} in all)",
                        param=param if room <= 0 else "max_tokens",
                    )
                max_tokens_by_prompt.append(req.max_tokens)
            else:
                if room <= 0:
                    raise PlinthError(
                        ErrorCode.CONTEXT_LENGTH_EXCEEDED,
                        f"this model's context window is {window} tokens and the prompt alone has {p.n_tokens} tokens",
                        param=param,
                    )
                max_tokens_by_prompt.append(min(self.settings.default_max_tokens, room))
        params: list[SamplingParams] = []
        choice_prompt: list[int] = []
        for pi in range(len(prompts)):
            for _ in range(req.n):
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
                        constraint=constraint,
                        logprobs=req.top_logprobs_wanted(),
                        logit_bias=biases,
                    )
                )
                choice_prompt.append(pi)
        if ctx is not None and self.hooks:
            counts = [p.n_tokens for p in prompts]
            prompt_tokens = None if any(n is None for n in counts) else sum(n or 0 for n in counts)
            for hook in self.hooks:
                await hook.reserve(ctx, prompt_tokens, sum(p.max_tokens for p in params))
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
            ctx=ctx,
        )


def _message_dict(m: Any) -> dict[str, Any]:
    """A protocol message as the stages and templates read it: role and text, and the calls
    (``tool_calls``: id, name, arguments) or the call answered (``tool_call_id``)."""
    role = {"developer": "system", "function": "tool"}.get(m.role, m.role)
    d: dict[str, Any] = {"role": role, "content": m.text()}
    calls = m.calls()
    if calls:
        d["tool_calls"] = calls
    if role == "tool":
        d["tool_call_id"] = m.tool_call_id or m.name
    return d


def _chat_prompt(lm: LoadedModel, messages: list[dict[str, Any]], plan: ToolPlan | None) -> Prompt:
    """The chat prompt with the request's tools laid out: by the model's template where it
    does so itself, else in plinth's default format (see plinth.serving.tools)."""
    tooled = any(m.get("tool_calls") or m["role"] == "tool" for m in messages)
    if plan is None and not tooled:
        return lm.runtime.prepare_chat(messages)
    rt = lm.runtime
    if rt.remote_structured_outputs:  # the remote engine lays out and enforces tools itself
        active = plan is not None and plan.active
        prompt = rt.prepare_chat(openai_messages(messages), tools=[t.openai() for t in plan.tools] if plan is not None and active else None)
        if plan is not None and active:
            prompt.tool_choice = plan.wire_choice()
            prompt.parallel_tool_calls = plan.parallel
        return prompt
    if rt.chat_template_handles_tools():
        tools = [t.openai() for t in plan.allowed()] if plan is not None and plan.active else None
        return rt.prepare_chat(template_messages(messages), tools=tools)
    prefill = FORCED_PREFILL if plan is not None and plan.forced else ""
    return rt.prepare_chat(default_format_messages(messages, plan), prefill=prefill)
