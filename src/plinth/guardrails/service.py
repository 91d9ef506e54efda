"""The guardrail service: versioned policies in the store, compiled guards, checks, events.

Policies are stored as validated documents, one immutable version per change
(``name@version``); a request on a model id uses the version its attachment names, or the
newest when the attachment names only the policy. Compiled :class:`Guard` objects are kept
per version; which version is "newest" is looked up again after ``ttl_s`` seconds, so a
new version applied by another server process of the same team store takes effect within
that time (at once in this process).

Events (findings) are written to the store by a background thread so that a request never
waits for the database; they never hold text.
"""

from __future__ import annotations

import builtins
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from plinth.domain.guardrails import CheckResult, Direction, GuardrailEvent, PolicySummary, PolicyVersion
from plinth.domain.projects import current_project, system_scope
from plinth.errors import ErrorCode, PlinthError
from plinth.guardrails.base import DetectContext, Resources, detector_kinds
from plinth.guardrails.engine import Guard
from plinth.guardrails.evaluation import EvalReport, evaluate
from plinth.guardrails.policy import canonical, digest, parse_document, split_ref, to_yaml, validate_policy

log = logging.getLogger("plinth.guardrails")

BUILTIN_POLICIES = ("default",)
MAX_TEST_CHARS = 100_000


def builtin_document(name: str) -> dict[str, Any]:
    text = resources.files("plinth.guardrails").joinpath("data").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return parse_document(text, source=f"built-in policy {name}")


class GuardrailService:
    def __init__(
        self,
        store: Any,
        metrics: Any = None,
        *,
        embedder_factory: Callable[[], Any] | None = None,
        default_policy: str | None = None,
        record_events: bool = True,
        ttl_s: float = 5.0,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.resources = Resources(embedder_factory)
        self.default_policy = default_policy
        self.record_events = record_events
        self.ttl_s = ttl_s
        self._guards: dict[tuple[str, int], Guard] = {}
        self._latest: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._events: queue.Queue[builtins.list[GuardrailEvent] | None] = queue.Queue(maxsize=10_000)
        self._writer: threading.Thread | None = None
        self._pending = 0  # batches queued or being written
        self._idle = threading.Condition()

    # -- policies --------------------------------------------------------------------------
    def ensure_builtin(self) -> None:
        """Store the built-in policies (a new version when plinth's copy changed)."""
        with system_scope():  # shared by every project
            for name in BUILTIN_POLICIES:
                self.apply(builtin_document(name), builtin=True)

    def list(self) -> builtins.list[PolicySummary]:
        return self.store.list_guardrail_policies()

    def get(self, ref: str) -> PolicyVersion:
        name, version = split_ref(ref)
        pv = self.store.get_guardrail_policy(name, version)
        if pv is None:
            if version is not None and self.store.get_guardrail_policy(name) is not None:
                raise PlinthError(
                    ErrorCode.NOT_FOUND,
                    f"guardrail policy {name!r} has no version {version}",
                    details={"kind": "guardrail policy", "name": ref},
                )
            raise PlinthError(
                ErrorCode.NOT_FOUND,
                f"guardrail policy {name!r} does not exist; `plinth guardrails list` shows the policies",
                details={"kind": "guardrail policy", "name": ref},
            )
        return pv

    def versions(self, name: str) -> builtins.list[PolicyVersion]:
        self.get(name)
        return self.store.list_guardrail_policy_versions(name)

    def apply(self, doc: dict[str, Any] | str, *, name: str | None = None, builtin: bool = False) -> tuple[PolicyVersion, bool]:
        """Validate and store a policy document (YAML text or a mapping) as a new version,
        unless it equals the latest. Returns (version, created)."""
        if isinstance(doc, str):
            doc = parse_document(doc)
        spec = validate_policy(doc, name=name)
        if spec.name in BUILTIN_POLICIES and not builtin:
            raise PlinthError(
                ErrorCode.PERMISSION_DENIED,
                f"{spec.name!r} is a built-in policy and cannot be changed; copy it under another name",
                param="name",
            )
        body = canonical(spec)
        pv, created = self.store.put_guardrail_policy(spec.name, body, digest(body), spec.description, builtin=builtin)
        with self._lock:
            self._latest.pop(spec.name, None)
        return pv, created

    def apply_file(self, path: Path) -> tuple[PolicyVersion, bool]:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"cannot read policy file {str(path)!r}: {e}") from None
        return self.apply(parse_document(text, source=path.name))

    def delete(self, name: str, *, attached_to: builtins.list[str] | None = None) -> None:
        summary = next((p for p in self.list() if p.name == name), None)
        if summary is None:
            self.get(name)  # raises NOT_FOUND
            return
        if summary.builtin:
            raise PlinthError(ErrorCode.PERMISSION_DENIED, f"{name!r} is a built-in policy and cannot be removed")
        if attached_to:
            raise PlinthError(
                ErrorCode.CONFLICT,
                f"guardrail policy {name!r} is attached to {', '.join(sorted(attached_to))}; detach it first",
                details={"attached_to": sorted(attached_to)},
            )
        self.store.delete_guardrail_policy(name)
        with self._lock:
            self._latest.pop(name, None)
            for key in [k for k in self._guards if k[0] == name]:
                del self._guards[key]

    def as_yaml(self, pv: PolicyVersion) -> str:
        return to_yaml(pv.spec)

    # -- guards ----------------------------------------------------------------------------
    def guard(self, ref: str) -> Guard:
        name, version = split_ref(ref)
        if version is None:
            now = time.monotonic()
            with self._lock:
                hit = self._latest.get(name)
            if hit is not None and now - hit[0] < self.ttl_s:
                version = hit[1]
            else:
                version = self.get(name).version
                with self._lock:
                    self._latest[name] = (now, version)
        key = (name, version)
        with self._lock:
            guard = self._guards.get(key)
        if guard is not None:
            return guard
        pv = self.get(f"{name}@{version}")
        guard = Guard.build(pv, validate_policy(pv.spec), self.resources)
        with self._lock:
            self._guards.setdefault(key, guard)
            return self._guards[key]

    def policy_for(self, attached: str | None) -> str | None:
        return attached or self.default_policy

    def check(
        self, ref: str, text: str, direction: Direction = Direction.INPUT, passages: builtins.list[dict[str, Any]] | None = None
    ) -> CheckResult:
        """Check one text (``plinth guardrails test``, ``POST .../test``): nothing is recorded."""
        if not isinstance(text, str) or not text:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "text must be a non-empty string", param="text")
        if len(text) > MAX_TEST_CHARS:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"text has {len(text)} characters; at most {MAX_TEST_CHARS}", param="text")
        guard = self.guard(ref)
        if not guard.uses(direction):
            return CheckResult(text=text)
        return guard.check(text, direction, DetectContext(direction=direction, passages=passages or []))

    def evaluate(
        self,
        ref: str,
        records: builtins.list[dict[str, Any]],
        *,
        detector: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> EvalReport:
        return evaluate(self.guard(ref), records, detector=detector, progress=progress)

    @staticmethod
    def detectors() -> builtins.list[dict[str, Any]]:
        out = []
        for kind, cls in sorted(detector_kinds().items()):
            schema = cls.Options.model_json_schema()
            out.append(
                {
                    "kind": kind,
                    "description": cls.description,
                    "spans": cls.spans,
                    "labels": list(cls.labels),
                    "directions": sorted(d.value for d in cls.directions),
                    "options": schema.get("properties", {}),
                }
            )
        return out

    # -- events ------------------------------------------------------------------------------
    def record(self, events: builtins.list[GuardrailEvent], deployment: str) -> None:
        """Count the events and queue them for the store (never blocks a request)."""
        if not events:
            return
        if self.metrics is not None:
            for e in events:
                self.metrics.guardrail_hits.labels(e.detector, e.action.value, deployment, e.direction.value).inc()
        if not self.record_events:
            return
        # the writer thread stores them later: each event names its request's project now
        project = current_project()
        events = [e if e.project is not None else dataclasses.replace(e, project=project) for e in events]
        self._start_writer()
        with self._idle:
            self._pending += 1
        try:
            self._events.put_nowait(events)
        except queue.Full:
            self._done(1)
            log.warning("guardrail event queue is full: %d events not stored", len(events))

    def observe(self, direction: Direction, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.guardrail_check_seconds.labels(direction.value).observe(seconds)

    def _start_writer(self) -> None:
        if self._writer is None:
            with self._lock:
                if self._writer is None:
                    self._writer = threading.Thread(target=self._write_loop, name="guardrail-events", daemon=True)
                    self._writer.start()

    def _write_loop(self) -> None:
        while True:
            batch = self._events.get()
            if batch is None:
                return
            taken = 1
            stop = False
            # gather what else is waiting, to write it in one transaction
            while True:
                try:
                    more = self._events.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch = batch + more
                taken += 1
            self._write(batch)
            self._done(taken)
            if stop:
                return

    def _done(self, n: int) -> None:
        with self._idle:
            self._pending -= n
            if self._pending <= 0:
                self._idle.notify_all()

    def _write(self, batch: builtins.list[GuardrailEvent]) -> None:
        try:
            with system_scope():  # the events of every project, each naming its own
                self.store.add_guardrail_events(batch)
        except Exception as e:  # a lost event must not take the server down
            log.error("could not store %d guardrail events: %s", len(batch), getattr(e, "message", type(e).__name__))

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every queued event is stored (tests, shutdown)."""
        with self._idle:
            self._idle.wait_for(lambda: self._pending <= 0, timeout=timeout)

    def close(self) -> None:
        if self._writer is not None:
            self.flush()
            self._events.put(None)
            self._writer.join(timeout=10)
            self._writer = None

    def events(self, **filters: Any) -> builtins.list[GuardrailEvent]:
        return self.store.list_guardrail_events(**filters)


def event_from(
    f: Any, *, request_id: str, model_id: str, policy: PolicyVersion, direction: Direction, choice: int | None = None
) -> GuardrailEvent:
    return GuardrailEvent(
        request_id=request_id,
        model_id=model_id,
        policy=policy.name,
        policy_version=policy.version,
        direction=direction,
        detector=f.detector,
        kind=f.kind,
        label=f.label,
        action=f.action,
        score=float(f.score),
        start=f.start,
        end=f.end,
        reason=f.reason,
        choice=choice,
    )


__all__ = ["BUILTIN_POLICIES", "GuardrailService", "event_from"]
