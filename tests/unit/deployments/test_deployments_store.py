"""The deployments and auth areas of the store, on SQLite and Postgres: deployments with
compare-and-set changes and history, revisions, usage summaries and rule windows, feedback,
API keys, and reservations that never overspend under concurrent threads and processes."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plinth.domain.auth import ApiKey, AuditEntry, BudgetPeriod, Limits, Scope
from plinth.domain.deployments import (
    Deployment,
    DeploymentEvent,
    EventKind,
    Feedback,
    Outcome,
    Role,
    Target,
    UsageRecord,
)
from plinth.errors import ErrorCode, PlinthError
from plinth.store.sql import SqlStore

REPO = Path(__file__).resolve().parents[3]


def _targets(*models: str) -> tuple[Target, ...]:
    return tuple(Target(m, 100, pinned=m, version=m) for m in models)


def _usage(
    rev: int,
    outcome: Outcome = Outcome.OK,
    *,
    latency: float = 0.1,
    blocked: bool = False,
    at: datetime | None = None,
    key: str | None = None,
    tokens: tuple[int, int] = (10, 5),
    rid: str | None = None,
) -> UsageRecord:
    return UsageRecord(
        response_id=rid or f"chatcmpl-{random.getrandbits(128):032x}",
        kind="chat",
        model="acme-assistant",
        served_model="smollm2-135m-instruct",
        outcome=outcome,
        prompt_tokens=tokens[0],
        completion_tokens=tokens[1],
        latency_s=latency,
        key_id=key,
        deployment="acme-assistant",
        revision=rev,
        role=Role.CANARY if rev == 2 else Role.STABLE,
        model_version=f"v{rev}",
        blocked=blocked,
        at=at,
    )


def test_deployment_lifecycle_and_compare_and_set(store: SqlStore) -> None:
    dep = store.create_deployment(Deployment(name="acme-assistant", stable_revision=1), _targets("base"), actor="alice", note="first")
    assert (dep.stable_revision, dep.canary_revision, dep.generation) == (1, None, 1)
    with pytest.raises(PlinthError) as e:
        store.create_deployment(Deployment(name="acme-assistant", stable_revision=1), _targets("base"), actor="bob")
    assert e.value.code is ErrorCode.ALREADY_EXISTS
    r2 = store.add_revision("acme-assistant", _targets("acme-faq@2"), actor="alice")
    r3 = store.add_revision("acme-assistant", _targets("acme-faq@3"), actor="alice")
    assert (r2.number, r3.number) == (2, 3)
    assert [t.model for t in store.get_revision("acme-assistant", 2).targets] == ["acme-faq@2"]
    now = datetime.now(UTC)
    after = store.update_deployment(
        "acme-assistant",
        {"canary_revision": 2, "canary_percent": 10.0, "canary_started_at": now},
        expected_generation=1,
        event=DeploymentEvent("acme-assistant", EventKind.CANARY, "alice", revision=2),
    )
    assert (after.canary_revision, after.canary_percent, after.generation) == (2, 10.0, 2)
    assert after.traffic() == {1: 90.0, 2: 10.0}
    # a second actor that decided on generation 1 loses; nothing of its change is stored
    with pytest.raises(PlinthError) as e:
        store.update_deployment(
            "acme-assistant",
            {"canary_revision": None},
            expected_generation=1,
            event=DeploymentEvent("acme-assistant", EventKind.ROLLED_BACK, "bob"),
        )
    assert e.value.code is ErrorCode.CONFLICT
    assert store.get_deployment("acme-assistant").canary_revision == 2
    kinds = [ev.kind for ev in store.list_deployment_events("acme-assistant")]
    assert kinds == [EventKind.CANARY, EventKind.CREATED]
    assert [r.number for r in store.list_revisions("acme-assistant")] == [1, 2, 3]
    store.delete_deployment("acme-assistant")
    assert store.find_deployment("acme-assistant") is None
    with pytest.raises(PlinthError) as e:
        store.get_revision("acme-assistant", 1)
    assert e.value.code is ErrorCode.NOT_FOUND


def test_concurrent_changes_only_one_wins(store: SqlStore) -> None:
    store.create_deployment(Deployment(name="d", stable_revision=1), _targets("base"), actor="a")
    store.add_revision("d", _targets("x"), actor="a")
    store.update_deployment("d", {"canary_revision": 2, "canary_percent": 50.0}, expected_generation=1)
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def act(i: int) -> None:
        barrier.wait()
        try:
            store.update_deployment(
                "d",
                {"canary_revision": None, "canary_percent": 0.0},
                expected_generation=2,
                event=DeploymentEvent("d", EventKind.AUTO_ROLLBACK, f"w{i}"),
            )
            outcomes.append("won")
        except PlinthError as e:
            outcomes.append(e.code.value)

    threads = [threading.Thread(target=act, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["won"]
    assert [e.kind for e in store.list_deployment_events("d")].count(EventKind.AUTO_ROLLBACK) == 1


def test_usage_summary_window_stats_and_feedback(store: SqlStore) -> None:
    store.create_deployment(Deployment(name="acme-assistant", stable_revision=1), _targets("base"), actor="a")
    old = datetime.now(UTC) - timedelta(hours=3)
    records = [_usage(1, latency=0.1 * (i + 1)) for i in range(20)]
    records += [_usage(2, latency=1.0), _usage(2, Outcome.ERROR, latency=0.01), _usage(2, Outcome.ERROR), _usage(2, blocked=True)]
    records += [_usage(2, Outcome.REFUSED), _usage(2, Outcome.CANCELLED)]  # not the revision's doing: not counted in windows
    records += [_usage(1, at=old, key="k1"), _usage(2, at=old)]
    store.add_usage(records)
    store.add_feedback(Feedback(response_id=records[0].response_id, rating=1, deployment="acme-assistant", revision=1))
    for rating in (-1, -1, 1):
        store.add_feedback(Feedback(response_id=records[20].response_id, rating=rating, deployment="acme-assistant", revision=2))
    since = datetime.now(UTC) - timedelta(minutes=5)
    stats = store.window_stats("acme-assistant", [1, 2], since)
    assert (stats[1].requests, stats[1].errors, stats[1].ratings, stats[1].negative) == (20, 0, 1, 0)
    assert stats[1].latency_p95_s == pytest.approx(1.9)  # 19th of 0.1..2.0
    assert (stats[2].requests, stats[2].errors, stats[2].blocked, stats[2].ratings, stats[2].negative) == (4, 2, 1, 3, 2)
    assert stats[2].latency_p95_s == pytest.approx(1.0)  # of the successful requests
    # summaries: by revision, by outcome, in hour buckets, filtered by key
    rows = store.usage_summary(group_by=("revision",), since=since)
    assert [(r["revision"], r["requests"], r["errors"]) for r in rows] == [(1, 20, 0), (2, 6, 2)]
    assert rows[0]["prompt_tokens"] == 200 and rows[0]["total_tokens"] == 300
    everything = store.usage_summary(group_by=("deployment",))
    assert everything[0]["requests"] == 28
    by_outcome = {r["outcome"]: r["requests"] for r in store.usage_summary(group_by=("outcome",))}
    assert by_outcome == {"ok": 24, "error": 2, "refused": 1, "cancelled": 1}
    buckets = store.usage_summary(group_by=("revision",), bucket_s=3600)
    assert sum(r["requests"] for r in buckets) == 28 and len({r["bucket"] for r in buckets}) == 2
    assert all(datetime.fromisoformat(r["bucket"]).minute == 0 for r in buckets)
    assert store.usage_summary(group_by=("key",), filters={"key_id": "k1"}) == [
        {"key": "k1", "requests": 1, "errors": 0, "blocked": 0, "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    ]
    with pytest.raises(PlinthError):
        store.usage_summary(group_by=("nonsense",))
    assert store.find_usage(records[5].response_id).revision == 1
    assert [f.rating for f in store.list_feedback(deployment="acme-assistant", revision=2)] == [1, -1, -1]
    assert store.prune_usage(datetime.now(UTC) - timedelta(hours=1)) == 2
    assert store.usage_summary(group_by=("deployment",))[0]["requests"] == 26


def _key(store: SqlStore, limits: Limits, name: str = "app") -> ApiKey:
    return store.create_api_key(
        ApiKey(id=f"{random.getrandbits(48):012x}", name=name, scopes=frozenset({Scope.INFERENCE}), limits=limits), "0" * 64
    )


def test_keys_and_audit(store: SqlStore) -> None:
    k = _key(store, Limits(requests_per_minute=5))
    with pytest.raises(PlinthError) as e:
        _key(store, Limits(), name="app")
    assert e.value.code is ErrorCode.ALREADY_EXISTS
    assert store.find_api_key(k.id)[1] == "0" * 64
    assert store.find_api_key_by_name("app").id == k.id
    up = store.update_api_key(k.id, {"scopes": [Scope.READ], "limits": Limits(budget_tokens=10, budget_period=BudgetPeriod.DAY)})
    assert up.scopes == {Scope.READ} and up.limits.budget_tokens == 10 and up.limits.requests_per_minute is None
    store.update_api_key(k.id, {"revoked_at": datetime.now(UTC)})
    assert store.list_api_keys() == [] and [x.id for x in store.list_api_keys(include_revoked=True)] == [k.id]
    with pytest.raises(PlinthError) as e:
        store.reserve(k.id, requests=1, tokens=0, now=datetime.now(UTC))
    assert e.value.code is ErrorCode.UNAUTHENTICATED
    for i in range(3):
        store.add_audit(
            AuditEntry(
                actor="alice", action=f"deployment.step{i}", target_type="deployment", target="d", before={"i": i}, after={"i": i + 1}
            )
        )
    entries = store.list_audit(target_type="deployment")
    assert [e.action for e in entries] == ["deployment.step2", "deployment.step1", "deployment.step0"]
    assert store.list_audit(before_id=entries[0].id, limit=1)[0].action == "deployment.step1"
    assert store.list_audit(action="deployment.step0")[0].after == {"i": 1}


def _wait_for_room_in_the_minute(seconds: float = 8.0) -> None:
    now = datetime.now(UTC)
    if now.second > 60 - seconds:
        time.sleep(60 - now.second + 0.2)


_WORKER = r"""
import json, random, sys, time
from datetime import UTC, datetime
from plinth.errors import PlinthError
from plinth.store.sql import SqlStore
url, key_id, mode, n, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)
out = {"ok": 0, "refused": 0, "used": 0, "retry_after": []}
with SqlStore(url) as s:
    for _ in range(n):
        want = rng.randint(20, 60) if mode == "tokens" else 0
        try:
            r = s.reserve(key_id, requests=1 if mode == "requests" else 0, tokens=want, now=datetime.now(UTC))
        except PlinthError as e:
            out["refused"] += 1
            out["retry_after"].append(e.retry_after)
            continue
        out["ok"] += 1
        used = rng.randint(1, want) if want else 0
        time.sleep(rng.random() * 0.01)
        s.settle(r, tokens=used)
        out["used"] += used
print(json.dumps(out))
"""


def _processes(store_url: str, key_id: str, mode: str, n: int, count: int) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, store_url, key_id, mode, str(n), str(seed)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(count)
    ]


def _results(procs: list[subprocess.Popen[str]]) -> list[dict]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def test_requests_per_minute_is_exact_across_threads_and_processes(store: SqlStore, store_url: str) -> None:
    k = _key(store, Limits(requests_per_minute=25))
    _wait_for_room_in_the_minute()
    procs = _processes(store_url, k.id, "requests", 10, 3)
    results: list[str] = []

    def hammer() -> None:
        for _ in range(5):
            try:
                store.reserve(k.id, requests=1, tokens=0, now=datetime.now(UTC))
                results.append("ok")
            except PlinthError as e:
                assert e.code is ErrorCode.RATE_LIMITED and 1 <= (e.retry_after or 0) <= 60
                results.append("refused")

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    from_procs = _results(procs)
    ok = results.count("ok") + sum(r["ok"] for r in from_procs)
    assert ok == 25  # 20 in threads + 30 in processes were tried: exactly the limit got through
    assert results.count("refused") + sum(r["refused"] for r in from_procs) == 25
    assert store.key_windows(k.id, now=datetime.now(UTC)).minute_requests == 25


def test_a_token_budget_is_never_overspent_under_concurrency(store: SqlStore, store_url: str) -> None:
    """Threads and processes reserve 20-60 tokens, use part of it and settle; the budget
    window never shows more than the budget, and ends at exactly what was used."""
    budget = 2000
    k = _key(store, Limits(budget_tokens=budget, budget_period=BudgetPeriod.DAY))
    procs = _processes(store_url, k.id, "tokens", 40, 3)
    used: list[int] = []
    seen: list[int] = []
    lock = threading.Lock()

    def spend(seed: int) -> None:
        rng = random.Random(100 + seed)
        for _ in range(40):
            want = rng.randint(20, 60)
            try:
                r = store.reserve(k.id, requests=0, tokens=want, now=datetime.now(UTC))
            except PlinthError as e:
                assert e.code is ErrorCode.RATE_LIMITED and e.details["limit"] == "budget"
                continue
            seen.append(store.key_windows(k.id, now=datetime.now(UTC)).budget_tokens_used)
            actual = rng.randint(1, want)
            store.settle(r, tokens=actual)
            with lock:
                used.append(actual)

    threads = [threading.Thread(target=spend, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    from_procs = _results(procs)
    total = sum(used) + sum(r["used"] for r in from_procs)
    window = store.key_windows(k.id, now=datetime.now(UTC))
    assert window.budget_tokens_used == total <= budget
    assert max(seen) <= budget
    assert sum(r["refused"] for r in from_procs) > 0  # the budget was reached, so refusals happened
    assert total > budget - 60 * 7  # and nearly all of it could be spent (at most one reservation per worker short)
