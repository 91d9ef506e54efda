"""Helpers of the job queue tests (imported as tests.unit.jobs.helpers)."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def trace(env: Any, job_id: str) -> list[dict[str, Any]]:
    """The selftest's per-step trace: attempt, pid, step, time."""
    path = env.settings.home / "jobs" / job_id / "checkpoint" / "trace.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_attempts_never_overlap(steps: list[dict[str, Any]]) -> None:
    """Every step of attempt n happened before every step of attempt n+1, and steps never repeat
    out of order within an attempt."""
    by_attempt: dict[int, list[dict[str, Any]]] = {}
    for s in steps:
        by_attempt.setdefault(s["attempt"], []).append(s)
    attempts = sorted(by_attempt)
    for a, b in itertools.pairwise(attempts):
        assert max(s["t"] for s in by_attempt[a]) < min(s["t"] for s in by_attempt[b]), f"attempts {a} and {b} overlapped"
    for a in attempts:
        nums = [s["step"] for s in by_attempt[a]]
        assert nums == sorted(nums) and len(set(nums)) == len(nums)
