"""The request log: every ``/v1`` chat and text completion, recorded off the hot path.

Three parts (ADR 0090):

- :class:`RequestLogHook`, a :class:`plinth.serving.service.RequestHook`: when a request ends
  (however it ends) it gathers what serving already knows — the deployment, revision and
  model version the route chose, the key and user, tokens, latency, time to first token,
  finish reasons, the guardrail findings and the retrieved citations — and, only when a
  guardrail policy checked the request, the text that policy left: the member's last message
  after input redaction and each answer as it was sent (redacted as it streamed). A request
  no policy checked is logged without text. It queues that and returns: no store call, no
  JSON, no embedding on the event loop.
- :class:`RequestLogWriter`, a thread: takes the queue in batches, shapes the entries
  (findings as counts, citations without passage text, a refusal and a groundedness flag,
  texts cut to ``max_text_chars``), embeds the redacted prompts with the embedded MiniLM in
  one call per batch, writes the batch in one transaction (system scope, each entry naming
  its project), applies feedback that arrived before its entry was written, and prunes by
  age and total size every ``prune_interval_s``.
- The overflow policy, because a request never waits for the log: the queue holds at most
  ``queue_size`` entries and ``text_budget`` characters of text. An entry that would pass the
  text budget is queued without its text and embedding (``plinth_request_log_text_shed_total``);
  an entry that finds the queue full is dropped (``plinth_request_log_dropped_total{reason=
  "queue_full"}``); a batch the store refuses after retries is dropped too
  (``reason="store_error"``). The depth is ``plinth_request_log_queue_depth``.

:class:`RequestLogService` reads the log for the API and the CLI (list, show, export as JSONL
or Parquet, quality signals) and for the other monitoring services: :meth:`RequestLogService.
recent_prompts` and :meth:`RequestLogService.recent_embeddings` (drift, anomaly scores),
:meth:`RequestLogService.set_anomaly_scores`, :meth:`RequestLogService.quality` (alerts).
"""

from __future__ import annotations

import builtins
import io
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from plinth.auth.context import current_call
from plinth.deployments.hook import classify_outcome
from plinth.deployments.routing import Choice
from plinth.domain.deployments import Feedback
from plinth.domain.guardrails import Action, Direction
from plinth.domain.projects import current_project, system_scope
from plinth.domain.requests import PAGE_MAX, PromptSample, RequestLogEntry, RequestQuery, TextMode
from plinth.embeddings.base import Embedder
from plinth.errors import ErrorCode, PlinthError
from plinth.monitoring.metrics import Metrics
from plinth.oversight.quality import is_refusal, quality_signals
from plinth.serving.pipeline import ChatContext
from plinth.serving.service import RequestHook, RequestOutcome
from plinth.store import MetadataStore
from plinth.usage.service import parse_time

log = logging.getLogger("plinth.oversight.requests")

_BATCH = 256
_ENTRY_OVERHEAD_BYTES = 256  # what an entry's fixed columns and indexes take, roughly
_CITATION_FIELDS = ("index", "knowledge_base", "version", "document", "chunk_id", "heading", "score", "similarity")
EXPORT_FORMATS = ("jsonl", "parquet")


# -- what the hot path queues -------------------------------------------------------------------------
@dataclass(slots=True)
class PendingEntry:
    """A finished request as the hook saw it: references to what serving already built,
    shaped into a :class:`RequestLogEntry` by the writer thread."""

    entry: RequestLogEntry  # the columns known at once (no text, findings or citations yet)
    prompt: str | None  # the prompt a guardrail policy checked (redacted); None: no policy did
    texts: tuple[str, ...]  # the answers as sent: judged for refusals, stored only beside a prompt
    guardrails: dict[str, Any] | None  # extras["guardrails"]: {"policy", "blocked", "findings"}
    citations: list[dict[str, Any]]
    completed: bool
    keep_text: bool  # the text mode is redacted
    embed: bool  # embed the prompt
    keep_response: bool = True  # the policy redacts answers: the texts may be stored (beside keep_text)

    def chars(self) -> int:
        return (len(self.prompt) if self.prompt else 0) + sum(len(t) for t in self.texts)

    def shed(self) -> None:
        """Keep the entry, drop its text and embedding (the queue's text budget is full)."""
        self.prompt, self.texts, self.keep_text, self.embed = None, (), False, False


@dataclass(slots=True)
class _FeedbackItem:
    response_id: str
    rating: int
    project: str


@dataclass
class WriterStats:
    written: int = 0
    dropped: int = 0
    shed: int = 0
    pruned: int = 0
    embedded: int = 0
    failures: list[str] = field(default_factory=list)


class RequestLogWriter:
    """The bounded queue and the thread that writes the request log (see the module)."""

    def __init__(
        self,
        store: MetadataStore,
        metrics: Metrics,
        *,
        embedder: Callable[[], Embedder] | None = None,
        queue_size: int = 10_000,
        text_budget: int = 64 * 1024 * 1024,
        max_text_chars: int = 16_000,
        retention_days: float = 30,
        max_bytes: int | None = 1 << 30,
        prune_interval_s: float = 300.0,
        max_retries: int = 5,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.embedder_factory = embedder
        self.queue_size = queue_size
        self.text_budget = text_budget
        self.max_text_chars = max_text_chars
        self.retention = timedelta(days=retention_days)
        self.max_bytes = max_bytes
        self.prune_interval_s = prune_interval_s
        self.max_retries = max_retries
        self.stats = WriterStats()
        self._q: queue.SimpleQueue[PendingEntry | _FeedbackItem | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._depth = 0  # entries queued or being written
        self._chars = 0  # their text
        self._pending = 0  # items (entries and feedback) not yet done
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._embedder: Embedder | None = None
        self._embedder_failed = False
        self._last_prune = time.monotonic()
        metrics.request_log_queue.set_function(lambda: self._depth)

    # -- producers (the event loop; any thread) ---------------------------------------------------
    def submit(self, item: PendingEntry) -> bool:
        """Queue an entry; never blocks. False when it was dropped (the queue is full)."""
        chars = item.chars()
        with self._lock:
            if self._stop.is_set():  # a request that ends after shutdown began: no writer is left
                self.stats.dropped += 1
                self.metrics.request_log_dropped.labels("shutdown").inc()
                return False
            if self._depth >= self.queue_size:
                self.stats.dropped += 1
                self.metrics.request_log_dropped.labels("queue_full").inc()
                return False
            if chars and self._chars + chars > self.text_budget:
                item.shed()
                chars = 0
                self.stats.shed += 1
                self.metrics.request_log_shed.inc()
            self._depth += 1
            self._chars += chars
            self._pending += 1
        self._ensure_started()
        self._q.put(item)
        return True

    def feedback_later(self, response_id: str, rating: int, project: str) -> None:
        """Apply a rating once the entries queued before it are written."""
        with self._lock:
            self._pending += 1
        self._ensure_started()
        self._q.put(_FeedbackItem(response_id, rating, project))

    @property
    def depth(self) -> int:
        return self._depth

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (True) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def prune(self) -> int:
        """Prune by age and size now (the writer does it every ``prune_interval_s``)."""
        with system_scope():
            gone = self.store.prune_request_logs(before=datetime.now(UTC) - self.retention, max_bytes=self.max_bytes)
        self.stats.pruned += gone
        if gone:
            log.info("request log: pruned %d entries (older than %s or over %s bytes in all)", gone, self.retention, self.max_bytes)
        return gone

    def close(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        if not self.flush(timeout):
            log.warning("request log: %d entries were still queued at shutdown and are lost", self._depth)
        self._stop.set()
        self._q.put(None)
        self._thread.join(timeout)

    # -- the writer thread --------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="plinth-request-log", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        with system_scope():  # entries of every project; each names its own
            while not self._stop.is_set():
                try:
                    first = self._q.get(timeout=1.0)
                except queue.Empty:
                    self._maybe_prune()
                    continue
                batch = [first]
                while len(batch) < _BATCH:
                    try:
                        batch.append(self._q.get_nowait())
                    except queue.Empty:
                        break
                try:
                    self._write([b for b in batch if b is not None])
                except Exception:  # never let the thread die: the log is lost, the server goes on
                    log.exception("request log writer failed on a batch")
                self._maybe_prune()

    def _write(self, batch: list[PendingEntry | _FeedbackItem]) -> None:
        items = [b for b in batch if isinstance(b, PendingEntry)]
        ratings = [b for b in batch if isinstance(b, _FeedbackItem)]
        try:
            try:
                entries = self._shape(items)
            except Exception as e:  # a bug in shaping: the batch is lost, counted as the store's would be
                self.stats.dropped += len(items)
                self.stats.failures.append(str(e))
                self.metrics.request_log_dropped.labels("store_error").inc(len(items))
                log.exception("request log: dropped %d entries that could not be shaped", len(items))
                entries = []
            self._store(entries)
            for fb in ratings:
                try:
                    self.store.set_request_feedback(fb.response_id, fb.rating, project=fb.project)
                except Exception as e:  # pragma: no cover - the store is down; the rating stays in feedback
                    log.warning("request log: could not record a rating of %s: %s", fb.response_id, e)
        finally:
            with self._cond:
                self._depth -= len(items)
                self._chars -= sum(i.chars() for i in items)
                self._pending -= len(batch)
                self._cond.notify_all()

    def _store(self, entries: list[RequestLogEntry]) -> None:
        if not entries:
            return
        for attempt in range(self.max_retries):
            try:
                self.store.add_request_logs(entries)
                self.stats.written += len(entries)
                self.metrics.request_log_written.inc(len(entries))
                return
            except Exception as e:  # the store is down or locked: retry, then drop and count
                if attempt == self.max_retries - 1:
                    self.stats.dropped += len(entries)
                    self.stats.failures.append(str(e))
                    self.metrics.request_log_dropped.labels("store_error").inc(len(entries))
                    log.error("request log: dropped %d entries after %d failures: %s", len(entries), self.max_retries, e)
                    return
                time.sleep(min(2.0, 0.05 * 2**attempt))

    def _shape(self, items: list[PendingEntry]) -> list[RequestLogEntry]:
        vectors = self._embed([i.prompt for i in items if i.embed and i.prompt])
        out = []
        k = 0
        for item in items:
            embedding = None
            if item.embed and item.prompt:
                embedding = vectors[k] if vectors is not None else None
                k += 1
            out.append(self._entry(item, embedding))
        return out

    def _embed(self, prompts: list[str]) -> list[bytes] | None:
        if not prompts or self.embedder_factory is None or self._embedder_failed:
            return None
        try:
            if self._embedder is None:
                self._embedder = self.embedder_factory()
            vecs = self._embedder.embed(prompts)
        except Exception as e:
            self._embedder_failed = True
            log.warning("request log: prompts are stored without embeddings: the embedder failed: %s", e)
            return None
        self.stats.embedded += len(prompts)
        return [np.asarray(v, dtype=np.float32).tobytes() for v in vecs]

    def _entry(self, item: PendingEntry, embedding: bytes | None) -> RequestLogEntry:
        e = item.entry
        gr = item.guardrails or {}
        findings, count, kinds = summarize_findings(gr.get("findings") or [])
        blocked = bool(gr.get("blocked")) or e.finish_reason == "content_filter"
        answer = _joined(item.texts)
        refused = None
        if item.completed and item.texts and not blocked:  # judged whether the text is kept or not
            refused = any(is_refusal(t) for t in item.texts)
        citations = [{k: c[k] for k in _CITATION_FIELDS if k in c} for c in item.citations if isinstance(c, dict)]
        grounded: bool | None = None
        if "groundedness" in kinds:
            grounded = False
        elif citations and item.completed and not blocked:
            grounded = True
        prompt_text = self._cut(item.prompt) if item.keep_text and item.prompt is not None else None
        response_text = self._cut(answer) if item.keep_text and item.keep_response and answer is not None else None
        keep = prompt_text is not None or response_text is not None
        size = _ENTRY_OVERHEAD_BYTES + len(embedding or b"")
        size += len((prompt_text or "").encode()) + len((response_text or "").encode())
        size += len(json.dumps(findings)) + len(json.dumps(citations))
        return replace(
            e,
            text_mode=TextMode.REDACTED if keep else TextMode.NONE,
            prompt_text=prompt_text,
            response_text=response_text,
            findings=findings,
            finding_count=count,
            blocked=blocked,
            refused=refused,
            grounded=grounded,
            citations=citations,
            embedding=embedding,
            size_bytes=size,
        )

    def _cut(self, text: str) -> str:
        if len(text) <= self.max_text_chars:
            return text
        return text[: self.max_text_chars] + f" [... {len(text) - self.max_text_chars} more characters not logged]"

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < self.prune_interval_s:
            return
        self._last_prune = now
        try:
            self.prune()
        except Exception as e:
            log.warning("request log: pruning failed: %s", e)


def summarize_findings(findings: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int, set[str]]:
    """Findings as counts by (detector, kind, action, label, direction) — no offsets, no text —
    their number, and the detector kinds that fired."""
    counts: dict[tuple[str, ...], int] = {}
    for f in findings:
        key = tuple(str(f.get(k, "")) for k in ("detector", "kind", "action", "label", "direction"))
        counts[key] = counts.get(key, 0) + 1
    out = [
        {"detector": d, "kind": k, "action": a, "label": lab, "direction": dr, "count": n}
        for (d, k, a, lab, dr), n in sorted(counts.items())
    ]
    return out, len(findings), {k for (_, k, _, _, _) in counts}


def _joined(texts: tuple[str, ...]) -> str | None:
    if not texts:
        return None
    if len(texts) == 1:
        return texts[0]
    return "\n\n".join(f"[choice {i}] {t}" for i, t in enumerate(texts))


# -- the hook on the serving path ------------------------------------------------------------------
class RequestLogHook(RequestHook):
    """Queues one entry per finished ``/v1`` chat or text completion (see the module)."""

    def __init__(self, writer: RequestLogWriter, *, text_mode: TextMode = TextMode.REDACTED, embeddings: bool = True) -> None:
        self.writer = writer
        self.text_mode = text_mode
        self.embeddings = embeddings

    def finished(self, ctx: ChatContext, outcome: RequestOutcome) -> None:
        choice: Choice | None = ctx.state.get("deployment")
        status, code = classify_outcome(outcome, routed=choice is not None)
        call = current_call.get()
        principal = call.principal if call is not None else None
        key = ctx.state.get("key") or (principal.key if principal is not None else None)
        served = ctx.served_model
        keep_text = self.text_mode is TextMode.REDACTED
        # Text only as a guardrail policy's redaction left it: the prompt where the policy
        # redacts input, the answers where it redacts output; otherwise none (nor a vector).
        guard = getattr(ctx.state.get("guardrails"), "guard", None)
        prompt = _prompt_of(ctx) if (keep_text or self.embeddings) and _redacts(guard, "input") else None
        finish = "content_filter" if "content_filter" in outcome.finish_reasons else (outcome.finish_reasons or (None,))[0]
        entry = RequestLogEntry(
            response_id=outcome.response_id,
            kind=ctx.kind,
            model=ctx.model_id,
            served_model=served,
            outcome=status.value,
            at=datetime.now(UTC) - timedelta(seconds=outcome.latency_s),
            model_version=(choice.target.version or choice.target.served) if choice else (ctx.model_id if "@" in ctx.model_id else served),
            adapter=served.split(":", 1)[1] if ":" in served else None,
            deployment=choice.deployment.name if choice else None,
            revision=choice.revision.number if choice else None,
            key_id=key.id if key is not None else None,
            user=principal.user if principal is not None else None,
            error_code=code,
            finish_reason=finish,
            latency_s=outcome.latency_s,
            ttft_s=outcome.ttft_s,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            policy=(ctx.extras.get("guardrails") or {}).get("policy"),
            project=current_project(),
        )
        self.writer.submit(
            PendingEntry(
                entry=entry,
                prompt=prompt or None,
                texts=outcome.texts,
                guardrails=ctx.extras.get("guardrails"),
                citations=ctx.extras.get("citations") or [],
                completed=outcome.completed,
                keep_text=keep_text,
                embed=self.embeddings,
                keep_response=_redacts(guard, "output"),
            )
        )


def _redacts(guard: Any, direction: str) -> bool:
    """Whether a guardrail policy's guard has a rule that redacts ``direction`` (input,
    output): only then is the text of that side what its redaction left."""
    if guard is None:
        return False
    for rule in guard.rules_for(Direction(direction)):
        if rule.spec.action is Action.REDACT or Action.REDACT in rule.spec.actions.values():
            return True
    return False


def _prompt_of(ctx: ChatContext) -> str:
    """The member's last message (chat) or the prompts (text), as the stages left them."""
    if ctx.kind == "chat":
        for m in reversed(ctx.messages):
            if m.get("role") == "user":
                content = m.get("content")
                return content if isinstance(content, str) else ""
        return ""
    return "\n\n".join(ctx.prompts)


# -- reading the log ----------------------------------------------------------------------------------
class RequestLogService:
    """The request log for the API, the CLI and the other monitoring services."""

    def __init__(
        self,
        store: MetadataStore,
        writer: RequestLogWriter | None,
        *,
        check_deployment: Callable[[str], Any] | None = None,
        flag_score: float = 0.9,
        enabled: bool = True,
    ) -> None:
        self.store = store
        self.writer = writer
        self.check_deployment = check_deployment
        self.flag_score = flag_score
        self.enabled = enabled

    # -- listing and export ------------------------------------------------------------------------
    def query(
        self,
        *,
        deployment: str | None = None,
        revision: int | None = None,
        model: str | None = None,
        adapter: str | None = None,
        key: str | None = None,
        outcome: str | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        has_findings: bool | None = None,
        flagged: bool | None = None,
        min_anomaly: float | None = None,
        feedback: int | None = None,
        before: int | None = None,
    ) -> RequestQuery:
        """A query from the API's and the CLI's filters (times as ISO or a duration back)."""
        if outcome is not None and outcome not in OUTCOMES:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"invalid outcome {outcome!r}: use {', '.join(OUTCOMES)}", param="outcome")
        t0 = since if isinstance(since, datetime) or since is None else parse_time(since, "since")
        t1 = until if isinstance(until, datetime) or until is None else parse_time(until, "until")
        above = min_anomaly if min_anomaly is not None else (self.flag_score if flagged else None)
        return RequestQuery(
            deployment=deployment,
            revision=revision,
            model=model,
            adapter=adapter,
            key_id=key,
            outcome=outcome,
            since=t0,
            until=t1,
            has_findings=has_findings,
            flagged_above=above,
            feedback=feedback,
            before_id=before,
        )

    def list(self, query: RequestQuery, *, limit: int = 50) -> dict[str, Any]:
        """A page of entries, newest first; ``next_before`` pages on (None at the end)."""
        limit = max(1, min(limit, PAGE_MAX))
        entries = self.store.list_request_logs(query, limit=limit)
        return {
            "requests": [e.public_dict() for e in entries],
            "next_before": entries[-1].id if len(entries) == limit else None,
        }

    def get(self, response_id: str) -> RequestLogEntry:
        """The entry of a response; a moment's wait for this process's writer."""
        found = self.store.get_request_log(response_id)
        if found is None and self.writer is not None and self.writer.depth:
            self.writer.flush(timeout=2.0)
            found = self.store.get_request_log(response_id)
        if found is None:
            raise PlinthError(
                ErrorCode.NOT_FOUND,
                f"request {response_id!r} is not in the request log (unknown, not logged or pruned)",
                param="response_id",
            )
        return found

    def export(self, query: RequestQuery, fmt: str = "jsonl") -> Iterator[bytes]:
        """Every matching entry, newest first, as JSON lines or one Parquet file, in pieces."""
        if fmt not in EXPORT_FORMATS:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"invalid format {fmt!r}: use jsonl or parquet", param="format")
        if fmt == "parquet":
            try:
                import pyarrow  # noqa: F401 - checked before the first byte is sent
            except ImportError:
                raise PlinthError(
                    ErrorCode.UNSUPPORTED,
                    "exporting Parquet needs pyarrow, which is not installed on the server: pip install 'plinth[parquet]'; or export jsonl",
                    param="format",
                ) from None
        entries = self.store.iter_request_logs(query)
        return _jsonl(entries) if fmt == "jsonl" else _parquet(entries)

    # -- for drift, anomalies and alerts ------------------------------------------------------------
    def recent_prompts(
        self,
        deployment: str | None,
        *,
        since: str | datetime | None = "24h",
        until: datetime | None = None,
        revision: int | None = None,
        adapter: str | None = None,
        limit: int = 10_000,
        with_embedding: bool = True,
        unscored_only: bool = False,
    ) -> builtins.list[PromptSample]:
        """The newest logged prompts of a deployment (None: requests made without one) in the
        caller's project, newest first: the redacted text (None where no text is kept) and
        the float32 MiniLM embedding bytes (None where none was made)."""
        t0 = since if isinstance(since, datetime) or since is None else parse_time(since, "since")
        return self.store.request_prompts(
            deployment=deployment,
            since=t0,
            until=until,
            revision=revision,
            adapter=adapter,
            limit=limit,
            with_embedding=with_embedding,
            unscored_only=unscored_only,
        )

    def recent_embeddings(self, deployment: str | None, **kwargs: Any) -> tuple[builtins.list[PromptSample], np.ndarray]:
        """:meth:`recent_prompts` that have an embedding, and their vectors as one float32
        matrix (rows L2-normalised, 384 columns for MiniLM; shape (0, 0) for none)."""
        samples = [s for s in self.recent_prompts(deployment, **kwargs) if s.embedding]
        if not samples:
            return [], np.zeros((0, 0), dtype=np.float32)
        return samples, np.vstack([np.frombuffer(s.embedding or b"", dtype=np.float32) for s in samples])

    def set_anomaly_scores(self, scores: builtins.list[tuple[int, float, dict[str, Any] | None]]) -> int:
        """Store ``(entry id, score, details)``; the number of entries changed."""
        return self.store.set_request_anomalies(scores)

    def quality(self, deployment: str, window: str | timedelta = "1h", *, revision: int | None = None, buckets: int = 0) -> dict[str, Any]:
        """Quality signals of a deployment over the window ending now (see
        :mod:`plinth.oversight.quality`); 404 for a deployment the caller's project lacks."""
        if self.check_deployment is not None:
            self.check_deployment(deployment)
        return quality_signals(self.store, deployment, window, revision=revision, buckets=buckets)

    # -- feedback ------------------------------------------------------------------------------------
    def feedback(self, fb: Feedback) -> None:
        """Record a rating on its entry; one still queued gets it once written."""
        if self.store.set_request_feedback(fb.response_id, fb.rating) == 0 and self.writer is not None:
            self.writer.feedback_later(fb.response_id, fb.rating, current_project())

    def flush(self, timeout: float = 10.0) -> bool:
        return self.writer.flush(timeout) if self.writer is not None else True


OUTCOMES = ("ok", "error", "refused", "cancelled")


def _jsonl(entries: Iterator[RequestLogEntry]) -> Iterator[bytes]:
    buf: list[bytes] = []
    for e in entries:
        buf.append(json.dumps(e.public_dict(), ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
        if len(buf) >= 200:
            yield b"".join(buf)
            buf = []
    if buf:
        yield b"".join(buf)


#: Parquet columns (text-free metadata, the redacted texts, findings and citations as JSON)
_PARQUET_JSON = ("findings", "citations", "anomaly")


def _parquet(entries: Iterator[RequestLogEntry]) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("response_id", pa.string()),
            ("at", pa.timestamp("us", tz="UTC")),
            ("project", pa.string()),
            ("kind", pa.string()),
            ("model", pa.string()),
            ("served_model", pa.string()),
            ("model_version", pa.string()),
            ("adapter", pa.string()),
            ("deployment", pa.string()),
            ("revision", pa.int64()),
            ("key_id", pa.string()),
            ("user", pa.string()),
            ("outcome", pa.string()),
            ("error_code", pa.string()),
            ("finish_reason", pa.string()),
            ("latency_s", pa.float64()),
            ("ttft_s", pa.float64()),
            ("prompt_tokens", pa.int64()),
            ("completion_tokens", pa.int64()),
            ("text_mode", pa.string()),
            ("prompt", pa.string()),
            ("response", pa.string()),
            ("policy", pa.string()),
            ("findings", pa.string()),
            ("finding_count", pa.int64()),
            ("blocked", pa.bool_()),
            ("refused", pa.bool_()),
            ("grounded", pa.bool_()),
            ("citations", pa.string()),
            ("anomaly_score", pa.float64()),
            ("anomaly", pa.string()),
            ("feedback", pa.int64()),
            ("size_bytes", pa.int64()),
        ]
    )
    sink = _Sink()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema)
    rows: list[dict[str, Any]] = []

    def flush_rows() -> None:
        table = pa.Table.from_pylist(rows, schema=schema)
        writer.write_table(table)
        rows.clear()

    for e in entries:
        d = e.public_dict()
        d["at"] = e.at
        for k in _PARQUET_JSON:
            d[k] = None if d[k] is None else json.dumps(d[k], ensure_ascii=False)
        rows.append({name: d.get(name) for name in schema.names})
        if len(rows) >= 1000:
            flush_rows()
            yield sink.take()
    if rows:
        flush_rows()
    writer.close()
    yield sink.take()


class _Sink(io.RawIOBase):
    """A write-only file that hands out what was written so far (to stream a Parquet file)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._parts.append(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out
