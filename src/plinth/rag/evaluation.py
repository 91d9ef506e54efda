"""Retrieval evaluation: recall@k and MRR of a question set against a knowledge base.

A question file is JSON Lines; each line is ``{"question": ..., "expected": [...]}`` where
each expected item is ``{"document": NAME, "contains": TEXT?}`` (a passage of that document,
whose heading path or text contains that text when given; case and whitespace are ignored). A question is answered at
rank r when the r-th passage matches any expected item. ``document`` and ``contains`` may
also stand at the top level for a single expectation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plinth.domain.knowledge import Passage
from plinth.errors import ErrorCode, PlinthError

DEFAULT_KS = (1, 3, 5, 10)


@dataclass(frozen=True)
class Question:
    question: str
    expected: list[dict[str, str]]
    id: str | None = None


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip().lower()


def parse_questions(lines: list[str], source: str = "questions") -> list[Question]:
    out: list[Question] = []
    problems: list[str] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"line {n}: not JSON ({e.msg})")
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("question"), str) or not obj["question"].strip():
            problems.append(f"line {n}: needs a non-empty string 'question'")
            continue
        expected = obj.get("expected")
        if expected is None and "document" in obj:
            expected = [{k: obj[k] for k in ("document", "contains") if k in obj}]
        if (
            not isinstance(expected, list)
            or not expected
            or not all(isinstance(e, dict) and isinstance(e.get("document"), str) for e in expected)
        ):
            problems.append(f"line {n}: needs 'expected': a list of {{'document', 'contains'?}}")
            continue
        out.append(Question(obj["question"], [{k: str(v) for k, v in e.items()} for e in expected], obj.get("id")))
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{source}: {shown}")
    if not out:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{source}: no questions")
    return out


def load_questions(path: Path) -> list[Question]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"cannot read {str(path)!r}: {e}") from None
    return parse_questions(text.splitlines(), str(path))


def matches(p: Passage, expected: list[dict[str, str]]) -> bool:
    for e in expected:
        if p.document != e["document"] and not p.document.endswith("/" + e["document"]):
            continue
        want = e.get("contains")
        if want is None or _norm(want) in _norm(p.heading + "\n" + p.text):
            return True
    return False


def evaluate(service: Any, ref: str, questions: list[Question], ks: tuple[int, ...] = DEFAULT_KS) -> dict[str, Any]:
    depth = max(ks)
    hits = dict.fromkeys(ks, 0)
    rr = 0.0
    per: list[dict[str, Any]] = []
    version = None
    for q in questions:
        result = service.search(ref, q.question, k=depth)
        version = result.version
        rank = next((i for i, p in enumerate(result.passages, start=1) if matches(p, q.expected)), None)
        for k in ks:
            if rank is not None and rank <= k:
                hits[k] += 1
        rr += 1.0 / rank if rank else 0.0
        top = result.passages[0] if result.passages else None
        per.append(
            {
                "id": q.id,
                "question": q.question,
                "rank": rank,
                "top": None if top is None else {"document": top.document, "heading": top.heading, "similarity": round(top.similarity, 4)},
            }
        )
    n = len(questions)
    return {
        "knowledge_base": ref,
        "version": version,
        "questions": n,
        "recall": {f"@{k}": round(hits[k] / n, 4) for k in ks},
        "mrr": round(rr / n, 4),
        "misses": [p for p in per if p["rank"] is None or p["rank"] > 5],
        "results": per,
    }
