"""Measure a policy's detectors on a labelled JSONL file: precision, recall, F1, and the
false positives and negatives themselves.

The file's task is read from its records (the schema of the guardrail evaluation sets):

- ``entities`` (``[{"type", "start", "end", "value"}]``): PII; a prediction counts only
  when its type, start and end equal a labelled span's (exact span match), reported over
  all types and per type;
- ``label`` ``toxic``/``benign``, ``injection``/``benign``: the positive class is the
  first; a text counts as predicted positive when the policy's rule of that kind fires on
  it as input (score at or above the rule's threshold, whatever its action);
- ``label`` ``on_topic``/``off_topic``: the topic rule's ``off_topic`` finding predicts
  ``off_topic``; accuracy is reported with precision and recall of ``off_topic``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plinth.domain.guardrails import Direction
from plinth.errors import ErrorCode, PlinthError
from plinth.guardrails.base import DetectContext
from plinth.guardrails.engine import CompiledRule, Guard

TASKS = {
    "pii": ("pii", None),
    "toxicity": ("toxicity", "toxic"),
    "injection": ("injection", "injection"),
    "topic": ("topic", "off_topic"),
}
_LABEL_TASK = {"toxic": "toxicity", "injection": "injection", "on_topic": "topic", "off_topic": "topic"}
MAX_RECORDS = 100_000


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }
        if self.tn or self.fp:
            negatives = self.tn + self.fp
            out["tn"] = self.tn
            out["false_positive_rate"] = round(self.fp / negatives, 4) if negatives else 0.0
            out["accuracy"] = round((self.tp + self.tn) / max(1, self.tp + self.tn + self.fp + self.fn), 4)
        return out


@dataclass
class EvalReport:
    policy: str
    task: str
    detector: str
    n: int
    overall: Counts
    by_label: dict[str, Counts] = field(default_factory=dict)
    false_positives: list[dict[str, Any]] = field(default_factory=list)
    false_negatives: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "task": self.task,
            "detector": self.detector,
            "items": self.n,
            "overall": self.overall.as_dict(),
            "by_label": {k: v.as_dict() for k, v in sorted(self.by_label.items())},
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
        }


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a labelled file; PlinthError naming the line for anything malformed."""
    if not path.is_file():
        raise PlinthError(ErrorCode.NOT_FOUND, f"evaluation file {str(path)!r} does not exist")
    records = []
    try:
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise PlinthError(ErrorCode.INVALID_REQUEST, f"{path.name} line {n} is not JSON: {e.msg}") from None
                check_record(obj, f"{path.name} line {n}")
                records.append(obj)
                if len(records) > MAX_RECORDS:
                    raise PlinthError(ErrorCode.INVALID_REQUEST, f"{path.name} has more than {MAX_RECORDS} records")
    except UnicodeDecodeError as e:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{path.name} is not UTF-8: {e}") from None
    if not records:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{path.name} has no records")
    return records


def check_record(obj: Any, where: str) -> None:
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"]:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{where}: each record needs a non-empty string 'text'")
    if "entities" in obj:
        ents = obj["entities"]
        if not isinstance(ents, list):
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"{where}: 'entities' must be a list")
        for e in ents:
            if not (
                isinstance(e, dict)
                and isinstance(e.get("type"), str)
                and isinstance(e.get("start"), int)
                and isinstance(e.get("end"), int)
                and 0 <= e["start"] < e["end"] <= len(obj["text"])
            ):
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"{where}: each entity needs 'type' and 0 <= 'start' < 'end' <= len(text)")
    elif obj.get("label") not in (*_LABEL_TASK, "benign"):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"{where}: a record needs 'entities' or a 'label' of toxic, injection, on_topic, off_topic or benign",
        )


def task_of(records: list[dict[str, Any]]) -> str:
    if all("entities" in r for r in records):
        return "pii"
    tasks = {_LABEL_TASK[r["label"]] for r in records if r.get("label") in _LABEL_TASK}
    if len(tasks) != 1 or any("entities" in r for r in records):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            "the file mixes tasks (or has no positive labels): one file is PII spans, toxicity, injection or topic",
        )
    return tasks.pop()


def _rule_for(guard: Guard, kind: str, detector: str | None) -> CompiledRule:
    candidates = [r for r in guard.rules if r.detector.kind == kind and (detector is None or r.id == detector)]
    if not candidates:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"policy {guard.policy.ref} has no {kind} rule"
            + (f" with id {detector!r}" if detector else "")
            + f" to evaluate; its rules: {', '.join(r.id for r in guard.rules)}",
        )
    return candidates[0]


def evaluate(
    guard: Guard,
    records: list[dict[str, Any]],
    *,
    detector: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> EvalReport:
    task = task_of(records)
    kind, positive = TASKS[task]
    rule = _rule_for(guard, kind, detector)
    if task == "pii":
        return _evaluate_spans(guard, rule, records, progress)
    return _evaluate_labels(guard, rule, task, positive or "", records, progress)


def _snippet(text: str, start: int, end: int, pad: int = 30) -> str:
    a, b = max(0, start - pad), min(len(text), end + pad)
    return ("…" if a else "") + text[a:start] + "[[" + text[start:end] + "]]" + text[end:b] + ("…" if b < len(text) else "")


def _evaluate_spans(
    guard: Guard, rule: CompiledRule, records: Iterable[dict[str, Any]], progress: Callable[[int], None] | None
) -> EvalReport:
    overall = Counts()
    by_label: dict[str, Counts] = defaultdict(Counts)
    fps, fns = [], []
    n = 0
    ctx = DetectContext(direction=Direction.INPUT)
    for rec in records:
        n += 1
        text = rec["text"]
        gold = {(e["type"], e["start"], e["end"]) for e in rec["entities"]}
        pred = {(f.label, f.start, f.end) for f in rule.run(text, ctx) if f.start is not None and f.end is not None}  # f.is_span
        for label, _s, _e in pred & gold:
            overall.tp += 1
            by_label[label].tp += 1
        for label, s, e in sorted(pred - gold, key=lambda t: t[1]):
            overall.fp += 1
            by_label[label].fp += 1
            near = [g for g in gold if g[1] < e and s < g[2]]
            fps.append(
                {
                    "id": rec.get("id"),
                    "label": label,
                    "value": text[s:e],
                    "context": _snippet(text, s, e),
                    "overlaps": [{"label": g[0], "value": text[g[1] : g[2]]} for g in near],
                }
            )
        for label, s, e in sorted(gold - pred, key=lambda t: t[1]):
            overall.fn += 1
            by_label[label].fn += 1
            fns.append({"id": rec.get("id"), "label": label, "value": text[s:e], "context": _snippet(text, s, e)})
        if progress:
            progress(1)
    return EvalReport(guard.policy.ref, "pii", rule.id, n, overall, dict(by_label), fps, fns)


def _evaluate_labels(
    guard: Guard,
    rule: CompiledRule,
    task: str,
    positive: str,
    records: list[dict[str, Any]],
    progress: Callable[[int], None] | None,
) -> EvalReport:
    c = Counts()
    fps, fns = [], []
    ctx = DetectContext(direction=Direction.INPUT)
    for rec in records:
        findings = [f for f in rule.run(rec["text"], ctx) if task != "topic" or f.label == "off_topic"]
        predicted = bool(findings)
        actual = rec["label"] == positive
        score = max((f.score for f in findings), default=_best_score(rule, rec["text"], ctx))
        item = {"id": rec.get("id"), "text": rec["text"], "label": rec["label"], "score": round(score, 4)}
        if predicted and actual:
            c.tp += 1
        elif predicted:
            c.fp += 1
            fps.append({**item, "reason": findings[0].reason})
        elif actual:
            c.fn += 1
            fns.append(item)
        else:
            c.tn += 1
        if progress:
            progress(1)
    counts = Counter(r["label"] for r in records)
    by_label = {positive: c}
    report = EvalReport(guard.policy.ref, task, rule.id, len(records), c, by_label, fps, fns)
    report.by_label = {k: v for k, v in by_label.items() if counts.get(k)}
    return report


def _best_score(rule: CompiledRule, text: str, ctx: DetectContext) -> float:
    """The detector's score below the threshold (for the listing of false negatives)."""
    return max((f.score for f in rule.detector.detect(text, ctx)), default=0.0)
