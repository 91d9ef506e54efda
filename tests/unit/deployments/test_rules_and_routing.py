"""Rules judged against hand-computed windows; routing weights within statistical tolerance
(a seeded generator, so the test is exact and repeatable); stickiness; key scopes, model
patterns and calendar periods."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import pytest

from plinth.deployments.routing import choose, pick_target, unit
from plinth.domain.auth import ApiKey, BudgetPeriod, Scope, effective_scopes, period_bounds
from plinth.domain.deployments import (
    Comparison,
    Deployment,
    Revision,
    Role,
    RolloutRule,
    RuleMetric,
    Target,
    WindowStats,
    judge,
    p95,
)


def _dep(percent: float, canary: int | None = 2) -> tuple[Deployment, dict[int, Revision]]:
    dep = Deployment(name="acme-assistant", stable_revision=1, canary_revision=canary, canary_percent=percent)
    revs = {
        1: Revision("acme-assistant", 1, (Target("base", 100),)),
        2: Revision("acme-assistant", 2, (Target("acme-faq@1", 70), Target("acme-faq@2", 30))),
    }
    return dep, revs


def _binomial_ok(hits: int, n: int, p: float, sigmas: float = 4.5) -> bool:
    return abs(hits - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_p95_is_the_nearest_rank() -> None:
    assert p95([]) is None
    assert p95([1.0]) == 1.0
    values = [float(i) for i in range(1, 101)]
    assert p95(values) == 95.0
    assert p95(list(reversed(values))) == 95.0
    assert p95([float(i) for i in range(1, 21)]) == 19.0  # ceil(0.95 * 20) = 19th value


@pytest.mark.parametrize(
    ("comparison", "threshold", "canary", "stable", "breached"),
    [
        (Comparison.DELTA, 0.05, WindowStats(2, requests=20, errors=3), WindowStats(1, requests=100, errors=5), True),  # 0.15 - 0.05 > 0.05
        (Comparison.DELTA, 0.05, WindowStats(2, requests=20, errors=1), WindowStats(1, requests=100, errors=5), False),  # 0.05 - 0.05
        (Comparison.ABSOLUTE, 0.04, WindowStats(2, requests=20, errors=1), WindowStats(1, requests=100, errors=0), True),
        (Comparison.ABSOLUTE, 0.05, WindowStats(2, requests=20, errors=1), WindowStats(1, requests=100, errors=0), False),
    ],
)
def test_error_rate_rule(comparison: Comparison, threshold: float, canary: WindowStats, stable: WindowStats, breached: bool) -> None:
    check = judge(RolloutRule(RuleMetric.ERROR_RATE, comparison, threshold, min_samples=10), canary, stable)
    assert check.judged and check.breached is breached
    assert check.canary == canary.errors / canary.requests and check.stable == stable.errors / stable.requests


def test_a_rule_waits_for_enough_samples() -> None:
    rule = RolloutRule(RuleMetric.ERROR_RATE, Comparison.DELTA, 0.05, min_samples=10)
    check = judge(rule, WindowStats(2, requests=9, errors=9), WindowStats(1, requests=100))
    assert not check.judged and not check.breached and check.samples == 9
    assert judge(rule, WindowStats(2, requests=10, errors=9), WindowStats(1, requests=100)).breached


def test_latency_ratio_and_missing_baseline() -> None:
    rule = RolloutRule(RuleMetric.LATENCY_P95, Comparison.RATIO, 2.0, min_samples=5)
    slow = WindowStats(2, requests=10, latency_p95_s=2.5)
    assert judge(rule, slow, WindowStats(1, requests=50, latency_p95_s=1.0)).breached
    assert not judge(rule, slow, WindowStats(1, requests=50, latency_p95_s=1.3)).breached
    # no stable baseline: a ratio cannot be judged (a delta against 0 could)
    assert not judge(rule, slow, WindowStats(1)).judged


def test_feedback_and_block_rates() -> None:
    fb = RolloutRule(RuleMetric.NEGATIVE_FEEDBACK_RATE, Comparison.DELTA, 0.2, min_samples=4)
    check = judge(fb, WindowStats(2, requests=3, ratings=4, negative=3), WindowStats(1, ratings=10, negative=2))
    assert check.judged and check.samples == 4 and check.breached  # 0.75 - 0.2 > 0.2
    block = RolloutRule(RuleMetric.GUARDRAIL_BLOCK_RATE, Comparison.DELTA, 0.1, min_samples=10)
    assert judge(block, WindowStats(2, requests=10, blocked=3), WindowStats(1, requests=10, blocked=1)).breached
    assert not judge(block, WindowStats(2, requests=10, blocked=2), WindowStats(1, requests=10, blocked=1)).breached


@pytest.mark.parametrize("percent", [10.0, 50.0])
def test_the_split_matches_the_weights(percent: float) -> None:
    dep, revs = _dep(percent)
    rng = random.Random(1234)
    n = 20_000
    picks = [choose(dep, revs, None, rng) for _ in range(n)]
    canary = [c for c in picks if c.role is Role.CANARY]
    assert _binomial_ok(len(canary), n, percent / 100)
    assert all(c.revision.number == 2 for c in canary)
    # inside the canary revision, targets by weight 70/30
    v2 = sum(1 for c in canary if c.target.model == "acme-faq@2")
    assert _binomial_ok(v2, len(canary), 0.3)
    # chi-square over the three outcomes (2 degrees of freedom; 13.8 is p = 0.001)
    p = percent / 100
    expected = {"base": n * (1 - p), "acme-faq@1": n * p * 0.7, "acme-faq@2": n * p * 0.3}
    observed = {k: sum(1 for c in picks if c.target.model == k) for k in expected}
    chi2 = sum((observed[k] - e) ** 2 / e for k, e in expected.items())
    assert chi2 < 13.8, (observed, expected)


def test_sticky_keys_keep_their_revision_and_hashes_are_uniform() -> None:
    dep, revs = _dep(20.0)
    rng = random.Random(0)
    users = [f"member-{i}" for i in range(5000)]
    first = {u: choose(dep, revs, u, rng) for u in users}
    for u in users[:500]:
        again = choose(dep, revs, u, random.Random(99))
        assert (again.revision.number, again.target.model) == (first[u].revision.number, first[u].target.model)
    in_canary = {u for u, c in first.items() if c.role is Role.CANARY}
    assert _binomial_ok(len(in_canary), len(users), 0.2)
    # more canary traffic moves members from stable to canary, never back
    wider, wider_revs = _dep(50.0)
    after = {u for u in users if choose(wider, wider_revs, u, rng).role is Role.CANARY}
    assert in_canary <= after and _binomial_ok(len(after), len(users), 0.5)
    # no canary: everybody on stable
    plain, plain_revs = _dep(0.0, canary=None)
    assert {choose(plain, plain_revs, u, rng).revision.number for u in users[:200]} == {1}


def test_unit_hash_and_target_pick() -> None:
    assert 0.0 <= unit("a", "b") < 1.0 and unit("a", "b") == unit("a", "b") != unit("a", "c")
    targets = (Target("x", 1), Target("y", 3))
    assert pick_target(targets, 0.0).model == "x" and pick_target(targets, 0.24).model == "x"
    assert pick_target(targets, 0.25).model == "y" and pick_target(targets, 0.999).model == "y"


def test_scopes_imply_and_model_patterns_match() -> None:
    assert effective_scopes({Scope.MANAGE}) == {Scope.MANAGE, Scope.READ}
    assert effective_scopes({Scope.ADMIN}) == set(Scope)
    key = ApiKey(id="0" * 12, name="app", scopes=frozenset({Scope.INFERENCE}), models=("acme-*", "smollm2-135m-instruct"))
    assert key.allows(Scope.INFERENCE) and not key.allows(Scope.READ)
    assert key.allows_model("acme-assistant") and key.allows_model("smollm2-135m-instruct")
    assert not key.allows_model("smollm2-135m-instruct:acme-faq-v1") and not key.allows_model("other")


def test_budget_periods_are_utc_calendar_periods() -> None:
    t = datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC)  # a Thursday
    assert period_bounds(BudgetPeriod.HOUR, t) == (datetime(2026, 12, 31, 23, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert period_bounds(BudgetPeriod.DAY, t) == (datetime(2026, 12, 31, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert period_bounds(BudgetPeriod.WEEK, t) == (datetime(2026, 12, 28, tzinfo=UTC), datetime(2027, 1, 4, tzinfo=UTC))
    assert period_bounds(BudgetPeriod.MONTH, t) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
