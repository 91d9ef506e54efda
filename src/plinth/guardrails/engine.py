"""A policy version compiled into detectors: check a text, redact it, filter a stream.

:class:`Guard` is built once per policy version (detectors, compiled patterns, loaded
weights) and used by every request on it; it holds no per-request state. Checking applies
each rule's threshold and action: ``block`` findings make the result blocked with the
rule's (or the policy's) safe answer, ``redact`` findings are replaced by typed
placeholders, ``flag`` findings only ride along. A span finding whose text is on the
policy's allow list (its own public phone numbers, service names) becomes an ``allow``
finding, recorded and acting on nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from plinth.domain.guardrails import Action, CheckResult, Direction, Finding, PolicyVersion
from plinth.guardrails.base import DetectContext, Detector, Resources, detector_kind
from plinth.guardrails.policy import AllowList, PolicySpec, RuleSpec
from plinth.guardrails.text import sentences


@dataclass
class CompiledRule:
    spec: RuleSpec
    detector: Detector
    #: the policy's allow list (span rules only): matching findings become ``allow`` findings
    allow: AllowList | None = None

    @property
    def id(self) -> str:
        return self.spec.id

    def applies(self, direction: Direction) -> bool:
        return self.spec.enabled and direction in self.spec.on

    def run(self, text: str, ctx: DetectContext) -> list[Finding]:
        out = []
        for f in self.detector.detect(text, ctx):
            if f.score < self.spec.threshold:
                continue
            out.append(replace(f, action=self.spec.actions.get(f.label, self.spec.action)))
        if self.allow and out:
            out = self.allow.apply(out, text)
        return out


@dataclass
class Guard:
    policy: PolicyVersion
    spec: PolicySpec
    rules: list[CompiledRule] = field(default_factory=list)

    @classmethod
    def build(cls, policy: PolicyVersion, spec: PolicySpec, resources: Resources) -> Guard:
        rules = []
        allow = AllowList(spec.allow)
        for r in spec.rules:
            kind = detector_kind(r.detector)
            rules.append(CompiledRule(r, kind(r.id, kind.Options(**r.options), resources), allow if kind.spans and allow else None))
        return cls(policy, spec, rules)

    def warm_up(self) -> None:
        for r in self.rules:
            r.detector.warm_up()

    def rules_for(self, direction: Direction) -> list[CompiledRule]:
        return [r for r in self.rules if r.applies(direction)]

    def uses(self, direction: Direction) -> bool:
        return bool(self.rules_for(direction))

    def placeholder(self, label: str) -> str:
        return self.spec.placeholder.replace("{label}", label)

    def safe_answer_for(self, findings: list[Finding]) -> str:
        """The safe answer of the most confident blocking rule (or the policy's)."""
        blocking = sorted((f for f in findings if f.action is Action.BLOCK), key=lambda f: -f.score)
        for f in blocking:
            rule = next((r for r in self.rules if r.id == f.detector), None)
            if rule is not None and rule.spec.safe_answer:
                return rule.spec.safe_answer
        return self.spec.safe_answer

    # -- whole texts -------------------------------------------------------------------------
    def check(
        self,
        text: str,
        direction: Direction,
        ctx: DetectContext | None = None,
        *,
        only: Callable[[CompiledRule], bool] | None = None,
    ) -> CheckResult:
        ctx = ctx or DetectContext(direction=direction)
        findings: list[Finding] = []
        for rule in self.rules_for(direction):
            if only is not None and not only(rule):
                continue
            findings.extend(rule.run(text, ctx))
        return self.result(text, findings)

    def result(self, text: str, findings: list[Finding]) -> CheckResult:
        blocked = any(f.action is Action.BLOCK for f in findings)
        redacted = self.redact(text, [f for f in findings if f.action is Action.REDACT and f.is_span])
        return CheckResult(
            text=redacted, findings=findings, blocked=blocked, safe_answer=self.safe_answer_for(findings) if blocked else None
        )

    def redact(self, text: str, findings: list[Finding]) -> str:
        spans = merge_spans(findings)
        if not spans:
            return text
        out = []
        pos = 0
        for start, end, label in spans:
            out.append(text[pos:start])
            out.append(self.placeholder(label))
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def stream_filter(self, on_findings: Callable[[list[Finding]], None], ctx: DetectContext | None = None) -> GuardFilter | None:
        if not self.uses(Direction.OUTPUT):
            return None
        return GuardFilter(self, on_findings, ctx or DetectContext(direction=Direction.OUTPUT))


def holds_answer(rule: CompiledRule) -> bool:
    """Whether a rule judges the complete answer rather than each sentence as it streams:
    groundedness (each answer sentence against the passages retrieved for the request)."""
    return rule.detector.kind == "groundedness"


def merge_spans(findings: list[Finding]) -> list[tuple[int, int, str]]:
    """Overlapping spans joined; the label of the longest part names the whole."""
    spans = [(f.start, f.end, f.label) for f in findings if f.start is not None and f.end is not None]  # f.is_span
    items = sorted(spans, key=lambda t: (t[0], -t[1]))
    merged: list[list[object]] = []
    for s, e, label in items:
        if merged and s < merged[-1][1]:  # type: ignore[operator]
            last = merged[-1]
            if e - s > last[1] - last[0]:  # type: ignore[operator]
                last[2] = label
            last[1] = max(last[1], e)  # type: ignore[call-overload]
        else:
            merged.append([s, e, label])
    return [(int(a), int(b), str(c)) for a, b, c in merged]  # type: ignore[call-overload]


_CONTEXT_CHARS = 64


class GuardFilter:
    """Output rules applied to one streamed choice (an OutputFilter of the serving pipeline:
    ``feed``, ``flush``, ``halt``, ``halt_reason``).

    Span rules (PII, secrets) are run on the text not yet sent plus the last
    ``_CONTEXT_CHARS`` characters already sent (so cue words such as ``SSN`` or ``born``
    still count); what is sent is everything up to the earliest point where an entity could
    still be growing (each detector's :meth:`~plinth.guardrails.base.Detector.pending`), with
    finished entities redacted. Whole-text rules that block (toxicity) are checked on each
    sentence as it completes, so the current sentence is held until it ends; a block halts
    the stream with the safe answer. Rules that judge the whole answer and can block
    (groundedness: each sentence against the passages) hold the entire answer: nothing is
    released until :meth:`flush`, which checks the whole text and then releases it
    (redacted) or halts with the safe answer (ADR 0114). Findings are reported with offsets
    in the choice's raw text.
    """

    halt: str | None = None
    halt_reason: str = "content_filter"

    def __init__(self, guard: Guard, on_findings: Callable[[list[Finding]], None], ctx: DetectContext) -> None:
        self.guard = guard
        self.ctx = ctx
        self.on_findings = on_findings
        rules = guard.rules_for(Direction.OUTPUT)
        self.span_rules = [r for r in rules if r.detector.spans]
        # whole-text rules that act while streaming; flag-only ones wait for the end
        self.sentence_rules = [r for r in rules if not r.detector.spans and r.spec.blocks and not holds_answer(r)]
        # whole-answer rules that can block: the answer is held until they have seen all of it
        # (groundedness judges against the passages: with none retrieved it finds nothing)
        self.answer_rules = [r for r in rules if r.spec.blocks and holds_answer(r)] if ctx.passages else []
        self.sent_raw = ""  # raw text already released (only the tail is kept)
        self.sent_offset = 0  # raw offset of sent_raw[0]
        self.buf = ""  # raw text not yet released
        self.elapsed = 0.0

    @property
    def released(self) -> int:
        return self.sent_offset + len(self.sent_raw)

    def feed(self, text: str) -> str:
        self.buf += text
        if self.answer_rules:
            return ""
        return self._release(final=False)

    def flush(self) -> str:
        if self.answer_rules and self.halt is None and self.buf:
            t0 = time.perf_counter()
            found = [f for r in self.answer_rules for f in r.run(self.buf, self.ctx)]
            self.elapsed += time.perf_counter() - t0
            if any(f.action is Action.BLOCK for f in found):
                self.halt = self.guard.safe_answer_for(found)
                self.on_findings([f.shifted(self.released) for f in found])
                self.buf = ""
                return ""
            if found:
                self.on_findings([f.shifted(self.released) for f in found])
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        t0 = time.perf_counter()
        try:
            return self._release_inner(final)
        finally:
            self.elapsed += time.perf_counter() - t0

    def _release_inner(self, final: bool) -> str:
        if not self.buf:
            return ""
        if not final and not any(c.isspace() for c in self.buf):
            # span detectors hold back the unfinished last token, and the sentence rules the
            # unfinished sentence: with no whitespace since the last release nothing can go
            return ""
        context = self.sent_raw[-_CONTEXT_CHARS:]
        window = context + self.buf
        base = len(context)
        origin = self.released - base  # raw offset of window[0]
        cut = len(window)
        findings: list[Finding] = []
        for rule in self.span_rules:
            if not final:
                cut = min(cut, rule.detector.pending(window))
            findings.extend(rule.run(window, self.ctx))
        if self.sentence_rules and not final:
            cut = min(cut, _last_sentence_start(window, base))
        cut = max(cut, base)
        # never release part of an entity
        for f in findings:
            assert f.start is not None and f.end is not None
            if f.start < cut < f.end:
                cut = max(base, f.start)
        if cut == base and not final:
            return ""
        released = [f for f in findings if f.start is not None and f.end is not None and f.end > base and f.start < cut]
        # classifiers that block: each completed sentence of the released text
        whole: list[Finding] = []
        if self.sentence_rules:
            piece = window[base:cut]
            for s, e in sentences(piece):
                sentence = piece[s:e]
                for rule in self.sentence_rules:
                    whole.extend(rule.run(sentence, self.ctx))
        if any(f.action is Action.BLOCK for f in released + whole):
            self.halt = self.guard.safe_answer_for(released + whole)
            self.on_findings([f.shifted(origin) for f in released] + whole)
            self.buf = ""
            return ""
        to_redact = [
            replace(f, start=max(f.start, base) - base, end=min(f.end, cut) - base)
            for f in released
            if f.action is Action.REDACT and f.start is not None and f.end is not None  # released holds spans only
        ]
        out = self.guard.redact(window[base:cut], to_redact)
        if released or whole:
            self.on_findings([f.shifted(origin) for f in released] + whole)
        self.sent_raw = (self.sent_raw + window[base:cut])[-_CONTEXT_CHARS * 2 :]
        self.sent_offset = origin + cut - len(self.sent_raw)
        self.buf = window[cut:]
        return out


def _last_sentence_start(window: str, base: int) -> int:
    spans = sentences(window[base:])
    if not spans:
        return len(window)
    last_start, last_end = spans[-1]
    tail = window[base + last_end :]
    # a sentence is complete once its end punctuation is followed by whitespace
    if window[base + last_end - 1 : base + last_end] in ".!?。！？\n" and tail[:1].isspace():
        return len(window)
    return base + last_start
