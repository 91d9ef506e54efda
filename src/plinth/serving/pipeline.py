"""Stages around generation: retrieval, guardrails, and whatever a deployment adds.

A request on ``/v1`` passes through an ordered list of :class:`ChatStage` objects. Each
stage sees the request before generation (:meth:`ChatStage.before`: it may rewrite the
messages, add context, or answer in place of the model), may filter the answer's text as it
streams (:meth:`ChatStage.output_filter`), and sees the whole answer at the end
(:meth:`ChatStage.after`). Stages talk to each other and to the response only through the
:class:`ChatContext`: ``extras`` become extra top-level fields of the OpenAI response (the
official client keeps unknown fields), ``headers`` become response headers, ``events`` are
what stages found (guardrail hits, retrieved passages) for logs and the management API.

Which knowledge base or guardrail policy applies comes from the :class:`Attachments` of the
model id (``plinth models attach``), overlaid with what a request may pin. Built-in stages
(knowledge-base retrieval, guardrails) register through :func:`register_stage`, exactly as
a third-party stage would; ``services.build_services`` instantiates every registered stage.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from plinth.domain.serving import Attachments


@dataclass
class ChatContext:
    """One request as the stages see it.

    ``messages`` (chat) and ``prompts`` (text completions) may be changed by ``before``;
    what they hold when the last stage returns is what the model gets. ``state`` is scratch
    space, one entry per stage name.
    """

    kind: str  # "chat" | "text"
    model_id: str  # the id the client asked for
    served_model: str  # the model id that answers (differs when a deployment routes)
    attachments: Attachments
    messages: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    user: str | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    stream: bool = False
    #: passages retrieved for this request (set by the retrieval stage): each a dict with at
    #: least ``text``, ``document`` and ``score``; the groundedness check reads them.
    passages: list[dict[str, Any]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def last_user_text(self) -> str:
        for m in reversed(self.messages):
            if m.get("role") == "user":
                return str(m.get("content") or "")
        return self.prompts[-1] if self.prompts else ""


@dataclass(frozen=True)
class StageAnswer:
    """An answer given in place of the model (a blocked request, "I don't know").

    ``finish_reason`` is what the OpenAI response says: ``content_filter`` for a guardrail
    block, ``stop`` otherwise."""

    text: str
    finish_reason: str = "stop"
    stage: str = ""


class OutputFilter(abc.ABC):
    """Filters one choice's text as it streams.

    :meth:`feed` gets each new piece and returns what may be sent now (it may hold back a
    tail, e.g. a possible start of a phone number); :meth:`flush` returns the rest at the
    end. Setting :attr:`halt` to a text stops generation: what was held back is dropped, the
    halt text is sent, and the choice ends with :attr:`halt_reason`."""

    halt: str | None = None
    halt_reason: str = "content_filter"

    @abc.abstractmethod
    def feed(self, text: str) -> str: ...

    @abc.abstractmethod
    def flush(self) -> str: ...


class ChatStage(abc.ABC):
    """One stage of the pipeline. ``order`` sorts stages: input guardrails run before
    retrieval (so retrieval never sees text a policy removed), retrieval before generation;
    output filters run in the same order on the model's text."""

    name: ClassVar[str]
    order: ClassVar[int] = 100

    def check_attachments(self, attachments: Attachments) -> None:  # noqa: B027 - an optional hook: most stages accept any
        """Raise PlinthError if ``attachments`` name something this stage cannot find
        (an unknown knowledge base or policy); called when attachments are set."""

    async def before(self, ctx: ChatContext) -> StageAnswer | None:
        """Inspect or rewrite the request; return an answer to skip the model."""
        return None

    def output_filter(self, ctx: ChatContext, choice: int) -> OutputFilter | None:
        """A filter for choice ``choice``'s text, or None."""
        return None

    async def after(self, ctx: ChatContext, texts: list[str]) -> None:
        """See the complete answer (one text per choice, as sent); may add ``extras``."""
        return None


#: a stage factory gets the built services (plinth.services.Services) and returns a stage,
#: or None when the stage does not apply (e.g. an optional dependency is missing).
StageFactory = Callable[[Any], ChatStage | None]

_STAGES: dict[str, StageFactory] = {}


def register_stage(name: str, factory: StageFactory) -> None:
    _STAGES[name] = factory


def stage_factories() -> dict[str, StageFactory]:
    return dict(_STAGES)


def build_stages(services: Any) -> list[ChatStage]:
    """The registered stages that apply, in order. plinth's own (``plinth.rag.stage``,
    ``plinth.guardrails.stage``) register when :func:`plinth.services.build_services`
    imports them; this module names none of them."""
    stages = [s for s in (factory(services) for factory in _STAGES.values()) if s is not None]
    return sorted(stages, key=lambda s: (s.order, s.name))


class ChainedFilter(OutputFilter):
    """Several filters applied one after the other to the same choice."""

    def __init__(self, filters: list[OutputFilter]) -> None:
        self.filters = filters

    def feed(self, text: str) -> str:
        for f in self.filters:
            text = f.feed(text)
            if f.halt is not None:
                self.halt, self.halt_reason = f.halt, f.halt_reason
                return ""
        return text

    def flush(self) -> str:
        text = ""
        for f in self.filters:
            text = f.feed(text) + f.flush() if text else f.flush()
            if f.halt is not None:
                self.halt, self.halt_reason = f.halt, f.halt_reason
                return ""
        return text
