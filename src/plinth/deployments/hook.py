"""The request hook that puts deployments, keys and usage into serving.

For every ``/v1`` chat and text completion (see :class:`plinth.serving.service.RequestHook`):

* **route**: the key may use the model id asked for (its model patterns); when the id is a
  deployment, a revision and target are chosen (:mod:`plinth.deployments.routing`) and the
  request is served by the target's pinned model with its attachments and generation
  defaults; the response carries ``x-plinth-deployment``, ``x-plinth-revision``,
  ``x-plinth-role`` and ``x-plinth-model-version``;
* **reserve**: with a key, one request and prompt + the most the answer may take are
  reserved against its limits in the store, atomically, before a generation slot is taken
  (a prompt the runtime cannot count is bounded by its UTF-8 bytes, which no BPE tokenizer
  exceeds);
* **finished**: the usage record is queued with the settlement of the reservation (the
  tokens really used), deployment metrics are counted, and the watcher is told once the
  record is in the store.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from plinth.auth.context import current_call
from plinth.auth.service import AuthService
from plinth.deployments.routing import Choice, DeploymentRouter
from plinth.domain.deployments import Outcome, UsageRecord
from plinth.domain.projects import in_context
from plinth.errors import ErrorCode, PlinthError
from plinth.monitoring.metrics import Metrics
from plinth.serving.pipeline import ChatContext
from plinth.serving.service import RequestHook, RequestOutcome, Route
from plinth.usage.writer import UsageWriter

log = logging.getLogger("plinth.deployments")

_PER_MESSAGE_OVERHEAD = 16  # chat template tokens around one message, bounded generously


class ServingHook(RequestHook):
    def __init__(self, router: DeploymentRouter, auth: AuthService, writer: UsageWriter, metrics: Metrics) -> None:
        self.router = router
        self.auth = auth
        self.writer = writer
        self.metrics = metrics
        # store reads and reservations leave the event loop; a small pool of its own keeps
        # them from queueing behind generation work
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="plinth-deploy")

    async def route(self, ctx: ChatContext) -> Route | None:
        call = current_call.get()
        principal = call.principal if call is not None else None
        self.auth.check_model(principal, ctx.model_id)
        if ":" in ctx.model_id or "@" in ctx.model_id:
            return None  # adapters and registry versions are never deployment names
        if self.router.is_fresh(ctx.model_id):
            choice = self.router.route(ctx.model_id, self._sticky(ctx))
        else:
            loop = asyncio.get_running_loop()
            choice = await loop.run_in_executor(self.executor, in_context(lambda: self.router.route(ctx.model_id, self._sticky(ctx))))
        if choice is None:
            return None
        ctx.state["deployment"] = choice
        t = choice.target
        attachments = t.attachments()
        return Route(
            model=t.served,
            attachments=None if attachments.is_empty() else attachments,
            defaults=dict(t.defaults),
            headers={
                "x-plinth-deployment": choice.deployment.name,
                "x-plinth-revision": str(choice.revision.number),
                "x-plinth-role": choice.role.value,
                "x-plinth-model-version": t.version or t.served,
            },
        )

    def _sticky(self, ctx: ChatContext) -> str | None:
        if ctx.user:
            return ctx.user
        call = current_call.get()
        return call.sticky if call is not None else None

    async def reserve(self, ctx: ChatContext, prompt_tokens: int | None, max_completion_tokens: int) -> None:
        call = current_call.get()
        if call is None or call.principal.anonymous:
            return
        if prompt_tokens is None:
            prompt_tokens = _bound(ctx)
        loop = asyncio.get_running_loop()
        reservation = await loop.run_in_executor(
            self.executor,
            in_context(lambda: self.auth.reserve(call.principal, requests=1, tokens=prompt_tokens + max_completion_tokens)),
        )
        ctx.state["reservation"] = reservation
        ctx.state["key"] = call.principal.key

    def finished(self, ctx: ChatContext, outcome: RequestOutcome) -> None:
        choice: Choice | None = ctx.state.get("deployment")
        status, code = classify_outcome(outcome, routed=choice is not None)
        blocked = "content_filter" in outcome.finish_reasons
        reservation = ctx.state.get("reservation")
        key = ctx.state.get("key")
        if key is None:
            call = current_call.get()
            key = call.principal.key if call is not None else None
        used = outcome.prompt_tokens + outcome.completion_tokens
        record = UsageRecord(
            response_id=outcome.response_id,
            kind=ctx.kind,
            model=ctx.model_id,
            served_model=ctx.served_model,
            outcome=status,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            latency_s=outcome.latency_s,
            key_id=key.id if key is not None else None,
            deployment=choice.deployment.name if choice else None,
            revision=choice.revision.number if choice else None,
            role=choice.role if choice else None,
            model_version=(choice.target.version or choice.target.served) if choice else None,
            error_code=code,
            blocked=blocked,
        )
        self.writer.usage(record, (reservation, used) if reservation is not None else None)
        if key is not None:
            self.metrics.key_tokens.labels(key.name, "prompt").inc(outcome.prompt_tokens)
            self.metrics.key_tokens.labels(key.name, "completion").inc(outcome.completion_tokens)
        if choice is not None:
            name, rev = choice.deployment.name, str(choice.revision.number)
            m = self.metrics
            m.deployment_requests.labels(name, rev, choice.role.value, status.value).inc()
            m.deployment_tokens.labels(name, rev, "prompt").inc(outcome.prompt_tokens)
            m.deployment_tokens.labels(name, rev, "completion").inc(outcome.completion_tokens)
            if status is Outcome.OK:
                m.deployment_latency.labels(name, rev).observe(outcome.latency_s)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


#: refusals that are the revision's fault when a deployment chose the model: its target (or
#: what the target attaches) is gone or cannot be served, though the client named a deployment
_TARGET_FAULTS = frozenset({ErrorCode.MODEL_NOT_FOUND, ErrorCode.NOT_FOUND, ErrorCode.UNSUPPORTED})


def classify_outcome(outcome: RequestOutcome, *, routed: bool) -> tuple[Outcome, str | None]:
    """How a request ended as usage and the request log record it: ok, error (the server's
    or the routed revision's fault), refused (the caller's) or cancelled, with the error code."""
    e = outcome.error
    if e is None:
        return (Outcome.OK if outcome.completed else Outcome.CANCELLED), None
    if isinstance(e, PlinthError):
        failed = e.http_status >= 500 or (routed and e.code in _TARGET_FAULTS)
        return (Outcome.ERROR if failed else Outcome.REFUSED), e.code.value
    if isinstance(e, asyncio.CancelledError | GeneratorExit):
        return Outcome.CANCELLED, None
    return Outcome.ERROR, "internal_error"


def _bound(ctx: ChatContext) -> int:
    """An upper bound of the prompt's tokens when the runtime cannot count them."""
    if ctx.kind == "chat":
        return sum(len(str(m.get("content") or "").encode()) + _PER_MESSAGE_OVERHEAD for m in ctx.messages)
    return sum(len(p.encode()) + _PER_MESSAGE_OVERHEAD for p in ctx.prompts)
