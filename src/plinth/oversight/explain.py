"""Per-answer explanations: for a logged chat response, which retrieved passages the answer
depends on and which words of the question mattered.

**What is explained.** The request log (:mod:`plinth.oversight.requests`) keeps, for a
request a guardrail policy checked and with ``PLINTH_REQUEST_LOG_TEXT=redacted``, the
member's last message and the answer *as the policy's redaction left them*, and the
citations; the passages' texts come from the knowledge base's citation record of the
response. The explanation re-scores **the logged (redacted) answer**, not the raw one, given
the prompt rebuilt as the retrieval stage builds it (the route's system prompt, the
knowledge-base template with the cited passages, the logged question). A response whose log
holds no text (no policy, text off) cannot be explained: 409 says why.

**Passages (ContextCite-style ablation).** The answer's log-likelihood is computed with every
cited passage (teacher forcing on the torch runtime, :meth:`TorchRuntime.score`), then with
each passage left out in turn (the others keep their numbers, so the answer's ``[n]``
references still point where they did), and with none. A passage's attribution is the drop in
log-likelihood (nats) when it is removed: the answer depends on the passages whose removal
makes it least likely. Leave-one-out is ContextCite's simplest estimator; with at most 16
passages it needs no sampled ablations or surrogate model (ADR 0096).

**Question words (occlusion).** The question is split into words (grouped into at most
``max_spans`` contiguous spans when longer); each span is removed in turn and the answer
re-scored with every passage present. Gradient x input was not used: the batching engine runs
in inference mode with fused weights, and occlusion needs forward passes only.

**Cost.** One forward pass per ablation: 2 + passages + spans passes (bounded by
``max_passages`` and ``max_spans``); each pass after the first reuses the first one's keys and
values up to where its prompt differs, so an occlusion of the question costs the question and
the answer only. The answer carries the measured seconds. The served model is scored on the
torch runtime: a model the server runs on llama.cpp (a GGUF) is loaded once more on torch from
the same file, dequantised, so the numbers are those of the dequantised weights, not of the
quantised ones that answered (ADR 0096).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from typing import Any

from plinth.domain.bias import LoggedAnswer
from plinth.domain.projects import in_context
from plinth.errors import ErrorCode, PlinthError, not_found

log = logging.getLogger("plinth.oversight")

_WORD_RE = re.compile(r"\S+")


class ExplainService:
    """Explains logged answers on demand; keeps one torch runtime per base model it scored
    with (when the server's own runtime for it is not torch)."""

    def __init__(self, services: Any) -> None:
        self.services = services
        self._runtimes: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- the answer ----------------------------------------------------------------------------
    def logged(self, response_id: str) -> LoggedAnswer:
        """The logged answer, or why it cannot be explained (404, 409)."""
        if not response_id or len(response_id) > 80:
            raise not_found("logged response", response_id)
        la = self.services.store.logged_answer(response_id)
        if la is None:
            raise PlinthError(
                ErrorCode.NOT_FOUND,
                f"response {response_id!r} is not in the request log (not logged, pruned, or of another project)",
                param="response_id",
            )
        if la.kind != "chat":
            raise PlinthError(ErrorCode.CONFLICT, f"response {response_id!r} is a text completion; explanations cover chat answers")
        if la.prompt_text is None or la.response_text is None or not la.response_text.strip():
            raise PlinthError(
                ErrorCode.CONFLICT,
                f"the request log holds no text for response {response_id!r} (text mode {la.text_mode!r}): text is kept only for "
                "requests a guardrail policy checked, with PLINTH_REQUEST_LOG_TEXT=redacted, and the answer is explained "
                "from that redacted text",
                param="response_id",
            )
        if ":" in la.served_model:
            raise PlinthError(
                ErrorCode.CONFLICT,
                f"response {response_id!r} was answered by the adapter {la.served_model!r}; explanations score base models only",
                param="response_id",
            )
        return la

    def passages(self, la: LoggedAnswer, limit: int) -> tuple[str | None, list[dict[str, Any]]]:
        """The knowledge base and the cited passages (with their texts), in citation order."""
        if not la.citations:
            return None, []
        knowledge = self.services.knowledge
        record = None
        if knowledge is not None:
            try:
                record = knowledge.citations(la.response_id)
            except PlinthError:
                record = None
        if record is None:
            raise PlinthError(
                ErrorCode.CONFLICT,
                f"the passages cited by response {la.response_id!r} are no longer stored (its citation record is gone)",
                param="response_id",
            )
        cited = [c for c in record.citations if isinstance(c, dict) and isinstance(c.get("text"), str)]
        cited.sort(key=lambda c: int(c.get("index") or 0))
        return record.knowledge_base, cited[:limit]

    def system_prompt(self, la: LoggedAnswer) -> str | None:
        """The system prompt the route attached (the deployment revision's target, else the
        model's attachments)."""
        s = self.services
        if la.deployment is not None and la.revision is not None:
            try:
                rev = s.store.get_revision(la.deployment, la.revision)
                for t in rev.targets:
                    if t.served == la.served_model or (t.version or t.served) == la.model_version:
                        return t.system_prompt
            except PlinthError:
                pass
        attachments = s.completions.attachments_for(la.model, la.served_model)
        return attachments.system_prompt

    # -- the runtime -------------------------------------------------------------------------
    def runtime(self, base: str) -> Any:
        """A loaded torch runtime of ``base``: the server's own when it serves ``base`` on
        torch, else one loaded here from the same file (kept for the next explanation)."""
        for lm in self.services.models.loaded():
            if lm.record.name == base and getattr(lm.runtime, "name", "") == "torch" and hasattr(lm.runtime, "score"):
                return lm.runtime
        with self._lock:
            rt = self._runtimes.get(base)
            if rt is not None:
                return rt
            from plinth.runtimes.registry import load_runtime_class

            record = self.services.catalog.get(base)
            path = self.services.catalog.model_path(record)
            cls = load_runtime_class("torch")
            rt = cls(record, path, self.services.models.options)
            try:
                rt.load()
            except PlinthError:
                raise
            except Exception as e:  # a model torch cannot load must not become a 500
                raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"model {base!r} could not be loaded on torch to score it: {e}") from None
            self._runtimes[base] = rt
            return rt

    def close(self) -> None:
        with self._lock:
            runtimes, self._runtimes = list(self._runtimes.values()), {}
        for rt in runtimes:
            try:
                rt.unload()
            except Exception:  # pragma: no cover - closing must go on
                log.exception("unloading an explanation runtime failed")

    # -- explaining --------------------------------------------------------------------------
    async def explain(self, response_id: str, *, max_passages: int = 8, max_spans: int = 16) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, in_context(lambda: self.explain_blocking(response_id, max_passages, max_spans)))

    def explain_blocking(self, response_id: str, max_passages: int = 8, max_spans: int = 16) -> dict[str, Any]:
        la = self.logged(response_id)
        kb, passages = self.passages(la, max(1, min(16, max_passages)))
        system = self.system_prompt(la)
        started = time.monotonic()
        rt = self.runtime(la.served_model)
        load_s = time.monotonic() - started
        question, answer = la.prompt_text or "", la.response_text or ""
        spans = _spans(question, max(0, min(48, max_spans)))
        started = time.monotonic()
        result = attribute(rt, system, kb, passages, question, answer, spans)
        seconds = time.monotonic() - started
        return {
            "response_id": la.response_id,
            "model": la.model,
            "served_model": la.served_model,
            "model_version": la.model_version,
            "deployment": la.deployment,
            "revision": la.revision,
            "knowledge_base": kb,
            "question": question,
            "answer": answer,
            **result,
            "cost": {"forward_passes": result["forward_passes"], "seconds": round(seconds, 3), "runtime_load_seconds": round(load_s, 3)},
            "method": {
                "text": "the request log's redacted question and answer; the prompt rebuilt as the retrieval stage builds it",
                "passages": "leave-one-out ablation (ContextCite-style): drop in the answer's log-likelihood, in nats, without the passage",
                "tokens": "occlusion: drop in the answer's log-likelihood with the span removed from the question",
                "scoring": "teacher-forced on the torch runtime (a GGUF served by llama.cpp is scored dequantised)",
            },
        }


def _spans(question: str, max_spans: int) -> list[tuple[int, int]]:
    """Character spans of the question's words, grouped into at most ``max_spans``."""
    words = [m.span() for m in _WORD_RE.finditer(question)]
    if not words or max_spans <= 0:
        return []
    size = -(-len(words) // max_spans)
    return [(words[i][0], words[min(i + size, len(words)) - 1][1]) for i in range(0, len(words), size)]


def build_messages(system: str | None, kb: str | None, passages: list[dict[str, Any]], question: str) -> list[dict[str, Any]]:
    """The chat as the retrieval stage gives it to the model (plinth.rag.stage)."""
    from plinth.rag.stage import PASSAGE, TEMPLATE

    parts = [system.strip()] if system and system.strip() else []
    if kb is not None:
        block = "\n\n".join(
            PASSAGE.format(n=c.get("index"), document=c.get("document"), heading=c.get("heading") or "(top)", text=str(c["text"]).strip())
            for c in passages
        )
        parts.append(TEMPLATE.format(kb=kb, passages=block))
    messages: list[dict[str, Any]] = [{"role": "system", "content": "\n\n".join(parts)}] if parts else []
    messages.append({"role": "user", "content": question})
    return messages


def attribute(
    rt: Any,
    system: str | None,
    kb: str | None,
    passages: list[dict[str, Any]],
    question: str,
    answer: str,
    spans: list[tuple[int, int]],
) -> dict[str, Any]:
    """Scores every ablation of the passages and the question spans on ``rt``."""
    cont: list[int] | str = answer

    def ctx(ps: list[dict[str, Any]], q: str) -> list[int]:
        return list(rt.prepare_chat(build_messages(system, kb, ps, q)).token_ids)

    contexts = [ctx(passages, question)]
    if passages:
        contexts.append(ctx([], question))
        contexts += [ctx([p for j, p in enumerate(passages) if j != i], question) for i in range(len(passages))]
    occluded = [(question[:a] + question[b:]).replace("  ", " ").strip() for a, b in spans]
    contexts += [ctx(passages, q or "?") for q in occluded]
    scores = rt.score([(c, cont) for c in contexts])
    totals = [sum(s) for s in scores]
    base = totals[0]
    n = max(1, len(scores[0]))
    out: dict[str, Any] = {
        "answer_tokens": n,
        "log_likelihood": round(base, 4),
        "mean_token_logprob": round(base / n, 4),
        "forward_passes": len(contexts),
    }
    k = 1
    if passages:
        out["without_passages"] = {"log_likelihood": round(totals[1], 4), "drop": round(base - totals[1], 4)}
        k = 2
        ranked = []
        for i, p in enumerate(passages):
            drop = base - totals[k + i]
            ranked.append(
                {
                    "index": p.get("index"),
                    "document": p.get("document"),
                    "heading": p.get("heading"),
                    "chunk_id": p.get("chunk_id"),
                    "retrieval_score": p.get("score"),
                    "drop": round(drop, 4),
                    "drop_per_token": round(drop / n, 5),
                    "text": str(p["text"])[:400],
                }
            )
        k += len(passages)
        out["passages"] = sorted(ranked, key=lambda r: -r["drop"])
    else:
        out["passages"] = []
    tokens = []
    for i, (a, b) in enumerate(spans):
        drop = base - totals[k + i]
        tokens.append({"text": question[a:b], "start": a, "end": b, "drop": round(drop, 4)})
    out["prompt_tokens"] = tokens
    out["top_prompt_tokens"] = [t["text"] for t in sorted(tokens, key=lambda t: -t["drop"])[:5]]
    return out
