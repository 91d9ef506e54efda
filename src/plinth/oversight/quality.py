"""Quality signals of a deployment's revisions over a sliding window, from the request log.

:func:`quality_signals` (and :meth:`plinth.oversight.requests.RequestLogService.quality`)
answers, for the window ending now, per revision and over all of them:

- ``error_rate``: requests that failed by the server's or the revision's fault (outcome
  ``error``) over all requests;
- ``block_rate``: requests a guardrail blocked, or whose answer it halted, over all requests;
- ``refusal_rate``: answers that refuse or say they do not know (:func:`is_refusal`) over
  the answers judged (completed, not blocked);
- ``groundedness_rate``: grounded answers over the answers that cited retrieved passages or
  that a groundedness rule judged (a cited answer is grounded unless a groundedness finding
  fired on it);
- ``negative_feedback_rate``: ratings of -1 over the rated requests (their last rating);
- latency p50/p95 of successful requests and TTFT p50/p95 (request start to first token).

A rate whose denominator is 0 is None (nothing to judge), never 0. With ``buckets`` the window
is also cut into that many equal slices, each with the same signals (for charts).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from plinth.domain.requests import SignalRow
from plinth.errors import ErrorCode, PlinthError
from plinth.store import MetadataStore
from plinth.usage.service import parse_duration

#: the most rows one computation reads (the newest of the window)
MAX_ROWS = 200_000
#: how far into an answer a refusal is looked for: a refusal comes first
REFUSAL_HEAD_CHARS = 400

_VERBS = r"(?:help|answer|assist|provide|share|give|discuss|comply|respond|tell|say|do\s+that|find|access|advise|recommend)"
_REFUSAL = re.compile(
    r"""
    \bI\s*(?:do\s*not|don't|dont)\s+know\b
    | \bI\s*(?:cannot|can\s*not|can't|cant|am\s+unable|'m\s+unable|am\s+not\s+able|'m\s+not\s+able|won't|will\s+not)\s+(?:to\s+)?"""
    + _VERBS
    + r"""
    | \b(?:I'm|I\s+am)\s+(?:sorry|afraid)\b[^.!?\n]{0,60}\b(?:cannot|can\s*not|can't|unable|not\s+able|don't\s+know|do\s+not\s+know)
    | \bas\s+an\s+AI\b
    | \b(?:do(?:es)?\s*not|don't|doesn't)\s+(?:contain|have|include|mention)\s+(?:any\s+)?(?:relevant\s+)?
      (?:information|details|the\s+answer)
    | \bno\s+(?:relevant\s+)?information\s+(?:about|on|regarding)\b
    | \bnot\s+(?:something\s+)?I\s+can\s+(?:help|answer|assist)
    """,
    re.IGNORECASE | re.VERBOSE,
)


def is_refusal(text: str) -> bool:
    """Whether an answer refuses or says it does not know: English patterns ("I don't know",
    "I cannot help/answer/provide...", "I'm sorry, but I can't...", "as an AI", "the passages
    do not contain information...", "no information about...") in its first 400 characters,
    where a refusal comes. Simple and documented (ADR 0090), not a classifier: it misses
    refusals phrased otherwise and other languages."""
    head = text[:REFUSAL_HEAD_CHARS].replace("\u2019", "'").replace("\u2018", "'")
    return _REFUSAL.search(head) is not None


def window_of(window: str | timedelta) -> timedelta:
    """``1h``, ``15m``, ``7d`` (at least a minute, at most 90 days)."""
    span = window if isinstance(window, timedelta) else parse_duration(window, "window")
    if not timedelta(minutes=1) <= span <= timedelta(days=90):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"window {window!s} must be between 1m and 90d", param="window")
    return span


def quality_signals(
    store: MetadataStore,
    deployment: str,
    window: str | timedelta = "1h",
    *,
    revision: int | None = None,
    buckets: int = 0,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The quality signals of ``deployment`` over the ``window`` ending ``now`` (see the
    module's docstring), read from the request log in the caller's project."""
    span = window_of(window)
    if not 0 <= buckets <= 120:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"buckets={buckets} must be between 0 and 120", param="buckets")
    until = now or datetime.now(UTC)
    since = until - span
    rows = store.request_signals(deployment=deployment, since=since, until=until, revision=revision, limit=MAX_ROWS)
    by_revision: dict[int | None, list[SignalRow]] = {}
    for r in rows:
        by_revision.setdefault(r.revision, []).append(r)
    out: dict[str, Any] = {
        "deployment": deployment,
        "window_s": int(span.total_seconds()),
        "since": since.isoformat(),
        "until": until.isoformat(),
        "truncated": len(rows) >= MAX_ROWS,
        "overall": signals(rows),
        "revisions": [
            {"revision": rev, **signals(rs)} for rev, rs in sorted(by_revision.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
        ],
    }
    if buckets:
        step = span / buckets
        series = []
        for i in range(buckets):
            t0, t1 = since + step * i, since + step * (i + 1)
            series.append({"start": t0.isoformat(), **signals(r for r in rows if t0 <= _aware(r.at) < t1)})
        out["series"] = series
    return out


def signals(rows: Iterable[SignalRow]) -> dict[str, Any]:
    """The signals of a set of request log rows."""
    rows = list(rows)
    n = len(rows)
    errors = sum(r.outcome == "error" for r in rows)
    blocked = sum(bool(r.blocked) for r in rows)
    judged = [r.refused for r in rows if r.refused is not None]
    grounded = [r.grounded for r in rows if r.grounded is not None]
    rated = [r.feedback for r in rows if r.feedback is not None]
    latencies = sorted(r.latency_s for r in rows if r.outcome == "ok")
    ttfts = sorted(r.ttft_s for r in rows if r.ttft_s is not None)
    return {
        "requests": n,
        "errors": errors,
        "blocked": blocked,
        "answers_judged": len(judged),
        "refusals": sum(judged),
        "grounding_judged": len(grounded),
        "grounded": sum(grounded),
        "rated": len(rated),
        "negative_feedback": sum(1 for f in rated if f < 0),
        "error_rate": _rate(errors, n),
        "block_rate": _rate(blocked, n),
        "refusal_rate": _rate(sum(judged), len(judged)),
        "groundedness_rate": _rate(sum(grounded), len(grounded)),
        "negative_feedback_rate": _rate(sum(1 for f in rated if f < 0), len(rated)),
        "latency_p50_s": percentile(latencies, 0.50),
        "latency_p95_s": percentile(latencies, 0.95),
        "ttft_p50_s": percentile(ttfts, 0.50),
        "ttft_p95_s": percentile(ttfts, 0.95),
    }


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The nearest-rank percentile of sorted values (None for none)."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return round(float(sorted_values[k]), 6)


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 6)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)
