"""The retrieval stage: answers from a knowledge base, with citations.

For a chat request on a model id with a knowledge base attached (or pinned by the request's
``knowledge_base``), the last user message is searched (after input guardrails, which run
first). Passages whose similarity reaches ``PLINTH_KB_MIN_SCORE`` go into a system message
under a fixed template; the response carries them as ``citations`` (also kept for
``GET /api/v1/citations/{response_id}``), and ``ctx.passages`` feeds the groundedness check.
When nothing relevant is found the stage answers itself that it does not know, without
calling the model.

Retrieval is plan-aware (:mod:`plinth.rag.plans`): a question naming one plan (or following
an earlier user turn that did) is not served other plans' summaries.

With ``grounding: strict`` on the attachment (a deployment target's ``grounding``), the model
is not asked at all: :mod:`plinth.rag.grounding` quotes the passage sentence(s) or table
row(s) that answer, with their citation numbers, or answers "I don't know" with the member
services number the knowledge base gives. The whole answer is decided before the first byte
is streamed; it streams like any stage answer (ADR 0115).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from plinth.domain.knowledge import CitationRecord, KbRef
from plinth.domain.projects import in_context
from plinth.domain.serving import Attachments
from plinth.errors import ErrorCode, PlinthError
from plinth.rag import grounding
from plinth.serving.pipeline import ChatContext, ChatStage, StageAnswer, register_stage

TEMPLATE = (
    "Answer the user's question using only the numbered passages below, taken from the knowledge base "
    '"{kb}". Cite the passages you use like [1]. If the passages do not contain the answer, say that you '
    "do not know.\n\n{passages}"
)
PASSAGE = "[{n}] {document} — {heading}\n{text}"
NO_ANSWER = (
    'I don\'t know: the knowledge base "{kb}" has nothing relevant to this question. Please rephrase it, or contact member services.'
)


class KnowledgeStage(ChatStage):
    name = "knowledge"
    order = 50

    def __init__(self, service: Any) -> None:
        self.service = service

    def check_attachments(self, attachments: Attachments) -> None:
        if attachments.knowledge_base:
            try:
                KbRef.parse(attachments.knowledge_base)
            except ValueError as e:
                raise PlinthError(ErrorCode.INVALID_REQUEST, str(e), param="knowledge_base") from None
            self.service.resolve(attachments.knowledge_base)
        mode = getattr(attachments, "grounding", None)
        if mode is not None and mode not in grounding.MODES:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, f"grounding={mode!r} is not one of {', '.join(grounding.MODES)}", param="grounding"
            )

    async def before(self, ctx: ChatContext) -> StageAnswer | None:
        ref = ctx.attachments.knowledge_base
        if not ref or ctx.kind != "chat":
            return None
        query = ctx.last_user_text().strip()
        if not query:
            return None
        loop = asyncio.get_running_loop()
        earlier = [str(m.get("content") or "") for m in ctx.messages if m.get("role") == "user"][:-1]
        result, pq = await loop.run_in_executor(None, in_context(lambda: self.service.retrieve(ref, query, context=earlier)))
        strict = getattr(ctx.attachments, "grounding", None) == "strict"
        relevant = result.passages if strict else result.relevant
        citations = [
            {"index": n, **{k: v for k, v in p.as_dict().items() if k not in ("vector_rank", "keyword_rank")}}
            for n, p in enumerate(relevant, start=1)
        ]
        ctx.passages = [c | {"text": p.text} for c, p in zip(citations, relevant, strict=True)]
        ctx.extras["citations"] = citations
        event: dict[str, Any] = {
            "stage": self.name,
            "knowledge_base": result.knowledge_base,
            "version": result.version,
            "passages": len(citations),
        }
        if pq.plans or pq.comparison:
            event["plans"] = pq.as_dict()
        grounded = None
        if strict:
            pinned = f"{result.knowledge_base}@{result.version}"
            passages = [c | {"plan": p.metadata.get("plan")} for c, p in zip(ctx.passages, relevant, strict=True)]

            def ground() -> grounding.GroundedAnswer:
                kb = self.service.get(result.knowledge_base)
                return grounding.answer(
                    query,
                    passages,
                    self.service.embedder_for(kb),
                    plans=self.service.plans(kb, result.version),
                    plan_query=pq,
                    phone=self.service.contact_phone(pinned),
                )

            grounded = await loop.run_in_executor(None, in_context(ground))
            event["grounding"] = grounded.as_event()
            ctx.extras["grounding"] = grounded.as_event()
        ctx.events.append(event)
        record = CitationRecord(
            response_id=("chatcmpl-" + ctx.request_id),
            knowledge_base=result.knowledge_base,
            version=result.version,
            model=ctx.model_id,
            query=query,
            citations=citations,
            created_at=datetime.now(UTC),
        )
        await loop.run_in_executor(None, in_context(lambda: self.service.record_citations(record)))
        if grounded is not None:
            return StageAnswer(grounded.text, stage=self.name)
        if not relevant:
            return StageAnswer(NO_ANSWER.format(kb=result.knowledge_base), stage=self.name)
        block = "\n\n".join(
            PASSAGE.format(n=c["index"], document=c["document"], heading=c["heading"] or "(top)", text=c["text"].strip()) for c in citations
        )
        system = TEMPLATE.format(kb=result.knowledge_base, passages=block)
        first = ctx.messages[0] if ctx.messages else None
        if first is not None and first.get("role") == "system":
            ctx.messages[0] = {**first, "content": f"{first.get('content') or ''}\n\n{system}".strip()}
        else:
            ctx.messages.insert(0, {"role": "system", "content": system})
        return None


def _factory(services: Any) -> ChatStage | None:
    service = getattr(services, "knowledge", None)
    return None if service is None else KnowledgeStage(service)


register_stage("knowledge", _factory)
