"""The guardrail stages of the serving pipeline.

``guardrails`` (order 10, before retrieval and the model) checks the request: span rules
(PII, secrets) redact every user and assistant message (earlier turns too, since the client
sends them again), whole-text rules (toxicity, injection, topic) judge the last user
message; a ``block`` answers with the rule's safe answer and ``finish_reason
"content_filter"`` in place of the model. Its output filter redacts the answer as it
streams (see :class:`plinth.guardrails.engine.GuardFilter`) and halts on a block: the
member gets the safe answer, never the blocked text, with ``finish_reason
"content_filter"``, streamed or not. Every output rule that can block (its action or one
label's) acts in the filter: span rules as entities complete, classifiers sentence by
sentence, groundedness on the whole answer, which the filter then holds back until it has
been checked (ADR 0114). ``after`` runs the rules that only flag on the complete answer.

``guardrails_retrieved`` (order 60, after retrieval) checks each retrieved passage with
the ``retrieved`` rules: a passage that a ``block`` rule fires on (an instruction planted
in a document) is withheld from the prompt; ``redact`` rules redact it in the prompt.

Findings go to ``extras["guardrails"]`` of the response (labels, offsets, scores, never
text), to the Prometheus counters, and to the store as events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from plinth.domain.guardrails import Action, Direction, Finding
from plinth.domain.serving import Attachments
from plinth.guardrails.base import DetectContext
from plinth.guardrails.engine import Guard
from plinth.guardrails.service import GuardrailService, event_from
from plinth.serving.pipeline import ChatContext, ChatStage, OutputFilter, StageAnswer, register_stage

WITHHELD = "[passage withheld by the guardrail policy]"


@dataclass
class _RequestState:
    guard: Guard
    findings: list[tuple[Direction, int | None, Finding]] = field(default_factory=list)
    blocked: bool = False
    recorded: int = 0

    def add(self, direction: Direction, choice: int | None, findings: list[Finding]) -> None:
        self.findings.extend((direction, choice, f) for f in findings)


class GuardrailStage(ChatStage):
    name = "guardrails"
    order = 10

    def __init__(self, service: GuardrailService) -> None:
        self.service = service

    def check_attachments(self, attachments: Attachments) -> None:
        if attachments.guardrail_policy:
            self.service.get(attachments.guardrail_policy)

    def _state(self, ctx: ChatContext) -> _RequestState | None:
        return ctx.state.get("guardrails")

    async def before(self, ctx: ChatContext) -> StageAnswer | None:
        ref = self.service.policy_for(ctx.attachments.guardrail_policy)
        if not ref:
            return None
        guard = self.service.guard(ref)
        state = _RequestState(guard)
        ctx.state["guardrails"] = state
        if not guard.uses(Direction.INPUT):
            _publish(ctx, state)
            return None
        t0 = time.perf_counter()
        dctx = DetectContext(direction=Direction.INPUT)
        findings: list[Finding] = []
        if ctx.kind == "chat":
            last_user = max((i for i, m in enumerate(ctx.messages) if m.get("role") == "user"), default=None)
            for i, m in enumerate(ctx.messages):
                text = m.get("content")
                if not isinstance(text, str) or not text or m.get("role") == "system":
                    continue
                whole = i == last_user
                result = guard.check(text, Direction.INPUT, dctx, only=None if whole else _span_rule)
                findings.extend(result.findings)
                if result.text != text:
                    ctx.messages[i] = {**m, "content": result.text}
                state.blocked = state.blocked or result.blocked
        else:
            for i, text in enumerate(ctx.prompts):
                result = guard.check(text, Direction.INPUT, dctx)
                findings.extend(result.findings)
                ctx.prompts[i] = result.text
                state.blocked = state.blocked or result.blocked
        self.service.observe(Direction.INPUT, time.perf_counter() - t0)
        state.add(Direction.INPUT, None, findings)
        _record(self.service, ctx, state)
        _publish(ctx, state)
        if state.blocked:
            return StageAnswer(guard.safe_answer_for(findings), finish_reason="content_filter", stage=self.name)
        return None

    def output_filter(self, ctx: ChatContext, choice: int) -> OutputFilter | None:
        state = self._state(ctx)
        if state is None:
            return None
        dctx = DetectContext(direction=Direction.OUTPUT, passages=ctx.passages, question=ctx.last_user_text())
        filt = state.guard.stream_filter(lambda fs: state.add(Direction.OUTPUT, choice, fs), dctx)
        return filt  # type: ignore[return-value]

    async def after(self, ctx: ChatContext, texts: list[str]) -> None:
        state = self._state(ctx)
        if state is None:
            return
        if not state.blocked and state.guard.uses(Direction.OUTPUT):
            t0 = time.perf_counter()
            dctx = DetectContext(direction=Direction.OUTPUT, passages=ctx.passages, question=ctx.last_user_text())
            halted = {c for d, c, f in state.findings if d is Direction.OUTPUT and f.action is Action.BLOCK}
            for choice, text in enumerate(texts):
                if not text or choice in halted:  # what was sent is the safe answer
                    continue
                result = state.guard.check(text, Direction.OUTPUT, dctx, only=_whole_text_after_rule)
                state.add(Direction.OUTPUT, choice, result.findings)
            self.service.observe(Direction.OUTPUT, time.perf_counter() - t0)
        _record(self.service, ctx, state)
        _publish(ctx, state)


class RetrievedPassagesStage(ChatStage):
    """The ``retrieved`` rules on passages a knowledge base put into the prompt."""

    name = "guardrails_retrieved"
    order = 60

    def __init__(self, service: GuardrailService) -> None:
        self.service = service

    async def before(self, ctx: ChatContext) -> StageAnswer | None:
        state: _RequestState | None = ctx.state.get("guardrails")
        if state is None or not ctx.passages or not state.guard.uses(Direction.RETRIEVED):
            return None
        t0 = time.perf_counter()
        dctx = DetectContext(direction=Direction.RETRIEVED)
        findings: list[Finding] = []
        kept = []
        for p in ctx.passages:
            text = str(p.get("text") or "")
            result = state.guard.check(text, Direction.RETRIEVED, dctx)
            findings.extend(result.findings)
            replacement = WITHHELD if result.blocked else result.text
            if replacement != text:
                _replace_in_messages(ctx, text.strip(), replacement)
            if result.blocked:
                p = {**p, "text": "", "withheld": True}
            elif result.text != text:
                p = {**p, "text": result.text}
            kept.append(p)
        ctx.passages = [p for p in kept if not p.get("withheld")]
        self.service.observe(Direction.RETRIEVED, time.perf_counter() - t0)
        state.add(Direction.RETRIEVED, None, findings)
        _record(self.service, ctx, state)
        _publish(ctx, state)
        return None


def _record(service: GuardrailService, ctx: ChatContext, state: _RequestState) -> None:
    """Count and store the findings not recorded yet (offsets and labels, never text)."""
    new = state.findings[state.recorded :]
    state.recorded = len(state.findings)
    events = [
        event_from(f, request_id=ctx.request_id, model_id=ctx.model_id, policy=state.guard.policy, direction=d, choice=c) for d, c, f in new
    ]
    service.record(events, deployment=ctx.served_model)


def _publish(ctx: ChatContext, state: _RequestState) -> None:
    """The findings so far as ``extras["guardrails"]`` of the response."""
    halted = any(d is Direction.OUTPUT and f.action is Action.BLOCK for d, _, f in state.findings)
    ctx.extras["guardrails"] = {
        "policy": state.guard.policy.ref,
        "blocked": state.blocked or halted,
        "findings": [{"direction": d.value, **({"choice": c} if c is not None else {}), **f.public_dict()} for d, c, f in state.findings],
    }


def _replace_in_messages(ctx: ChatContext, old: str, new: str) -> None:
    if not old:
        return
    for i, m in enumerate(ctx.messages):
        content = m.get("content")
        if isinstance(content, str) and old in content:
            ctx.messages[i] = {**m, "content": content.replace(old, new)}


def _span_rule(rule: Any) -> bool:
    return bool(rule.detector.spans)


def _whole_text_after_rule(rule: Any) -> bool:
    """Rules the stream filter did not already apply: whole-text rules that cannot block."""
    return not rule.detector.spans and not rule.spec.blocks


def _factory(services: Any) -> ChatStage | None:
    service = getattr(services, "guardrails", None)
    return None if service is None else GuardrailStage(service)


def _retrieved_factory(services: Any) -> ChatStage | None:
    service = getattr(services, "guardrails", None)
    return None if service is None else RetrievedPassagesStage(service)


register_stage("guardrails", _factory)
register_stage("guardrails_retrieved", _retrieved_factory)
