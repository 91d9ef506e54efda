"""The request log below the API: the store area on SQLite and Postgres, the writer (its
bounded queue and overflow policy, embeddings with the real MiniLM, retention by age and
size, feedback that arrives first), the refusal detector and quality signals from known rows."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from plinth.domain.projects import project_scope, system_scope
from plinth.domain.requests import RequestLogEntry, RequestQuery, TextMode
from plinth.monitoring.metrics import Metrics
from plinth.oversight.quality import is_refusal, percentile, quality_signals
from plinth.oversight.requests import PendingEntry, RequestLogWriter, summarize_findings
from plinth.store.sql import SqlStore

NOW = datetime.now(UTC)


def entry(n: int, **kw: object) -> RequestLogEntry:
    base: dict[str, object] = {
        "response_id": f"chatcmpl-{n:032x}",
        "kind": "chat",
        "model": "acme",
        "served_model": "smol:acme-lora",
        "outcome": "ok",
        "at": NOW - timedelta(seconds=100 - n),
        "deployment": "acme",
        "revision": 1,
        "model_version": "acme-faq@1",
        "adapter": "acme-lora",
        "latency_s": 0.1 * n,
        "ttft_s": 0.01 * n,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "size_bytes": 1000,
        "project": "claims",
    }
    base.update(kw)
    return RequestLogEntry(**base)  # type: ignore[arg-type]


def metric(m: Metrics, name: str, **labels: str) -> float:
    return float(m.registry.get_sample_value(name, labels) or 0.0)


# -- the store -----------------------------------------------------------------------------------------
def test_entries_round_trip_and_each_project_sees_its_own(store: SqlStore) -> None:
    vec = np.arange(384, dtype=np.float32).tobytes()
    with system_scope():
        store.add_request_logs(
            [
                entry(1, prompt_text="my email is [EMAIL]", response_text="ok", text_mode=TextMode.REDACTED, embedding=vec),
                entry(2, findings=[{"detector": "pii", "count": 1}], finding_count=1, key_id="k1", outcome="error"),
                entry(3, revision=2, model_version="acme-faq@2", anomaly_score=0.95, feedback=-1),
                entry(4, project="marketing", deployment="mkt", prompt_text="marketing secret"),
            ]
        )
    with project_scope("claims"):
        got = store.list_request_logs(RequestQuery())
        assert [e.response_id[-1] for e in got] == ["3", "2", "1"]  # newest first, no marketing
        one = store.get_request_log(entry(1).response_id)
        assert one is not None and one.embedding == vec and one.prompt_text == "my email is [EMAIL]"
        assert one.text_mode is TextMode.REDACTED and one.project == "claims" and one.adapter == "acme-lora"
        assert got[-1].embedding is None  # listings leave the vectors out, but say whether one is stored
        assert [e.public_dict()["has_embedding"] for e in got] == [False, False, True]
        assert store.get_request_log(entry(4).response_id) is None  # marketing's
        q = RequestQuery
        assert [e.revision for e in store.list_request_logs(q(revision=2))] == [2]
        assert len(store.list_request_logs(q(model="acme-faq@2"))) == 1
        assert len(store.list_request_logs(q(model="smol:acme-lora"))) == 3
        assert [e.key_id for e in store.list_request_logs(q(key_id="k1"))] == ["k1"]
        assert [e.outcome for e in store.list_request_logs(q(outcome="error"))] == ["error"]
        assert [e.finding_count for e in store.list_request_logs(q(has_findings=True))] == [1]
        assert len(store.list_request_logs(q(has_findings=False))) == 2
        assert [e.anomaly_score for e in store.list_request_logs(q(flagged_above=0.9))] == [0.95]
        assert [e.feedback for e in store.list_request_logs(q(feedback=-1))] == [-1]
        assert len(store.list_request_logs(q(since=NOW - timedelta(seconds=98.5)))) == 2
        assert len(store.list_request_logs(q(until=NOW - timedelta(seconds=98.5)))) == 1
        page = store.list_request_logs(q(), limit=2)
        assert [e.id for e in store.list_request_logs(q(before_id=page[-1].id))] == [got[-1].id]
        assert [e.id for e in store.iter_request_logs(q(), batch=1)] == [e.id for e in got]
        assert store.set_request_feedback(entry(1).response_id, 1) == 1
        assert store.set_request_feedback(entry(4).response_id, 1) == 0  # not claims' to rate
        assert store.get_request_log(entry(1).response_id).feedback == 1  # type: ignore[union-attr]
        prompts = store.request_prompts(deployment="acme")
        assert [p.prompt_text for p in prompts] == ["my email is [EMAIL]"]  # those with text or a vector
        assert prompts[0].embedding == vec and prompts[0].adapter == "acme-lora"
        assert store.set_request_anomalies([(prompts[0].id, 0.5, {"distance": 0.5})]) == 1
        assert store.request_prompts(deployment="acme", unscored_only=True) == []
        signals = store.request_signals(deployment="acme", since=NOW - timedelta(hours=1))
        assert sorted(s.revision or 0 for s in signals) == [1, 1, 2]
        assert store.request_log_bytes() == 3000
    with project_scope("marketing"):
        assert [e.prompt_text for e in store.list_request_logs(RequestQuery())] == ["marketing secret"]


def test_pruning_by_age_then_by_total_size(store: SqlStore) -> None:
    with system_scope():
        store.add_request_logs([entry(i, at=NOW - timedelta(days=40 - i)) for i in range(10)])  # 40..31 days old
        store.add_request_logs([entry(100 + i, at=NOW - timedelta(minutes=10 - i), size_bytes=1000) for i in range(10)])
        assert store.prune_request_logs(before=NOW - timedelta(days=35)) == 5  # 40..36 days old
        assert store.prune_request_logs(max_bytes=5500) == 10  # the 5 old ones left, then the 5 oldest new ones
    with project_scope("claims"):  # a system-scope read sees the default project's entries, as other logs
        left = store.list_request_logs(RequestQuery(), limit=100)
    assert [e.response_id for e in left] == [entry(100 + i).response_id for i in (9, 8, 7, 6, 5)]


# -- the writer ----------------------------------------------------------------------------------------
def pending(n: int, *, prompt: str | None = "question", texts: tuple[str, ...] = ("answer",), **kw: object) -> PendingEntry:
    return PendingEntry(
        entry=entry(n, **kw),
        prompt=prompt,
        texts=texts,
        guardrails=None,
        citations=[],
        completed=True,
        keep_text=True,
        embed=False,
    )


@pytest.fixture
def sqlite_store(migrated_sqlite_url: str) -> SqlStore:
    s = SqlStore(migrated_sqlite_url)
    yield s  # type: ignore[misc]
    s.close()


def test_a_writer_that_falls_behind_drops_and_counts_and_never_blocks(sqlite_store: SqlStore, migrated_sqlite_url: str) -> None:
    metrics = Metrics()
    writer = RequestLogWriter(sqlite_store, metrics, queue_size=5, text_budget=30)
    path = migrated_sqlite_url.removeprefix("sqlite:///")
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the database is busy: the writer waits on its first batch
    try:
        t0 = time.perf_counter()
        accepted = [writer.submit(pending(i, prompt="q" * 10, texts=("a" * 10,))) for i in range(12)]
        took = time.perf_counter() - t0
        assert took < 0.05, f"submitting 12 entries took {took:.3f} s: producers must never wait for the writer"
        assert accepted == [True] * 5 + [False] * 7
        assert metric(metrics, "plinth_request_log_dropped_total", reason="queue_full") == 7
        # 30 characters of text may wait: the first entry fits (20), the others are kept without text
        assert metric(metrics, "plinth_request_log_text_shed_total") == 4
        assert metric(metrics, "plinth_request_log_queue_depth") == 5
    finally:
        time.sleep(0.3)
        lock.execute("ROLLBACK")
        lock.close()
    assert writer.flush(15)
    with project_scope("claims"):
        rows = sqlite_store.list_request_logs(RequestQuery(), limit=100)
    assert len(rows) == 5 and metric(metrics, "plinth_request_log_records_total") == 5
    assert [r.prompt_text for r in sorted(rows, key=lambda r: r.id or 0)] == ["q" * 10, None, None, None, None]
    assert metric(metrics, "plinth_request_log_queue_depth") == 0
    writer.close()


def test_the_writer_embeds_redacted_prompts_with_minilm_and_shapes_entries(sqlite_store: SqlStore) -> None:
    from plinth.config import Settings
    from plinth.embeddings import get_embedder

    emb = get_embedder(Settings(), "minilm")
    writer = RequestLogWriter(sqlite_store, Metrics(), embedder=lambda: emb, max_text_chars=20)
    findings = [
        {"direction": "input", "detector": "pii", "kind": "pii", "label": "EMAIL", "action": "redact", "start": 3, "end": 10},
        {"direction": "input", "detector": "pii", "kind": "pii", "label": "EMAIL", "action": "redact", "start": 20, "end": 30},
        {"direction": "output", "detector": "grounded", "kind": "groundedness", "label": "UNGROUNDED", "action": "flag"},
    ]
    cited = [{"index": 1, "document": "plan.md", "chunk_id": "c1", "score": 0.5, "text": "the passage text"}]
    item = PendingEntry(
        entry=entry(1, policy="acme@1"),
        prompt="Is [EMAIL] covered for dental care?",
        texts=("I don't know: the passages do not say.",),
        guardrails={"policy": "acme@1", "blocked": False, "findings": findings},
        citations=cited,
        completed=True,
        keep_text=True,
        embed=True,
    )
    no_text = PendingEntry(
        entry=entry(2), prompt="dental?", texts=("Yes.",), guardrails=None, citations=cited, completed=True, keep_text=False, embed=True
    )
    assert writer.submit(item) and writer.submit(no_text)
    assert writer.flush(60)
    with project_scope("claims"):
        e = sqlite_store.get_request_log(entry(1).response_id)
        n = sqlite_store.get_request_log(entry(2).response_id)
    assert e is not None and n is not None
    assert e.prompt_text == "Is [EMAIL] covered f [... 15 more characters not logged]"
    assert e.response_text is not None and e.response_text.startswith("I don't know: the pa")
    vec = np.frombuffer(e.embedding or b"", dtype=np.float32)
    assert vec.shape == (384,) and np.allclose(vec, emb.embed(["Is [EMAIL] covered for dental care?"])[0], atol=1e-6)
    assert e.findings == [
        {"detector": "grounded", "kind": "groundedness", "action": "flag", "label": "UNGROUNDED", "direction": "output", "count": 1},
        {"detector": "pii", "kind": "pii", "action": "redact", "label": "EMAIL", "direction": "input", "count": 2},
    ]
    assert e.finding_count == 3 and e.refused is True and e.grounded is False and not e.blocked
    assert e.citations == [{"index": 1, "document": "plan.md", "chunk_id": "c1", "score": 0.5}]  # no passage text
    # text mode none: no text, but the vector, the refusal flag and groundedness are still there
    assert n.text_mode is TextMode.NONE and n.prompt_text is None and n.response_text is None
    assert n.embedding is not None and n.refused is False and n.grounded is True
    assert e.size_bytes > n.size_bytes > 256
    writer.close()


def test_feedback_that_arrives_before_its_entry_is_applied_after_it(sqlite_store: SqlStore) -> None:
    writer = RequestLogWriter(sqlite_store, Metrics())
    path = sqlite_store.url.removeprefix("sqlite:///")
    lock = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # released by a timer thread
    lock.execute("BEGIN EXCLUSIVE")
    try:
        writer.submit(pending(7))
        with project_scope("claims"):
            writer.feedback_later(entry(7).response_id, -1, "claims")
    finally:
        threading.Timer(0.2, lambda: (lock.execute("ROLLBACK"), lock.close())).start()
    assert writer.flush(15)
    with project_scope("claims"):
        assert sqlite_store.get_request_log(entry(7).response_id).feedback == -1  # type: ignore[union-attr]
    writer.close()


def test_the_writer_prunes_by_age_and_size(sqlite_store: SqlStore) -> None:
    writer = RequestLogWriter(sqlite_store, Metrics(), retention_days=1, max_bytes=600, prune_interval_s=0.2)
    for i in range(3):
        writer.submit(pending(i, at=NOW - timedelta(days=2)))
    for i in range(5):
        writer.submit(pending(10 + i, at=NOW - timedelta(seconds=5 - i)))
    assert writer.flush(15)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and writer.stats.pruned < 3 + 3:
        time.sleep(0.1)
    with project_scope("claims"):
        left = sqlite_store.list_request_logs(RequestQuery(), limit=100)
    # an entry without text takes about 270 bytes: two fit in 600; the newest stay
    assert writer.stats.pruned == 6 and [e.response_id for e in left] == [entry(14).response_id, entry(13).response_id]
    assert sum(e.size_bytes for e in left) <= 600
    writer.close()


def test_findings_are_summarised_as_counts_without_offsets() -> None:
    out, n, kinds = summarize_findings(
        [{"detector": "pii", "kind": "pii", "label": "US_SSN", "action": "redact", "start": 1, "end": 9}] * 2
    )
    assert (
        n == 2
        and kinds == {"pii"}
        and out == [{"detector": "pii", "kind": "pii", "action": "redact", "label": "US_SSN", "direction": "", "count": 2}]
    )


# -- refusals and quality signals ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "I don't know: the knowledge base has nothing relevant.",
        "I do not know the answer to that.",
        "I'm sorry, but I can't help with that request.",
        "I cannot provide medical advice.",
        "I am unable to answer questions about other members.",
        "As an AI, I have no access to your claims.",
        "The passages do not contain information about dental implants.",
        "There is no information about that plan in my sources.",
        "I\u2019m afraid I can\u2019t share that.",
    ],
)
def test_refusals_are_recognised(text: str) -> None:
    assert is_refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        "Your Gold plan covers two dental cleanings a year.",
        "If you can't pay the bill at once, ask for a payment plan.",
        "The deductible is $500; I know this from the plan summary [1].",
        "Claims must be filed within 30 days of treatment. " * 20 + "I don't know more.",  # past the head
    ],
)
def test_ordinary_answers_are_not_refusals(text: str) -> None:
    assert not is_refusal(text)


def test_quality_signals_from_known_rows(store: SqlStore) -> None:
    rows = []
    # revision 1: 10 requests, 1 error, 1 blocked, of 8 judged answers 2 refusals, 4 grounding-judged
    # with 3 grounded, 4 rated with 1 negative
    for i in range(10):
        rows.append(
            entry(
                i,
                at=NOW - timedelta(minutes=30, seconds=i),
                outcome="error" if i == 0 else "ok",
                blocked=i == 1,
                refused=None if i in (0, 1) else i in (2, 3),
                grounded={2: True, 3: True, 4: True, 5: False}.get(i),
                feedback=None if i >= 4 else (-1 if i == 2 else 1),
                latency_s=float(i + 1),
                ttft_s=0.1 * (i + 1),
            )
        )
    rows.append(entry(50, revision=2, at=NOW - timedelta(minutes=5), latency_s=0.5, ttft_s=None))
    rows.append(entry(51, revision=1, at=NOW - timedelta(hours=3)))  # outside the window
    rows.append(entry(52, deployment="other", at=NOW - timedelta(minutes=1)))
    with system_scope():
        store.add_request_logs(rows)
    with project_scope("claims"):
        q = quality_signals(store, "acme", "1h", buckets=2, now=NOW + timedelta(seconds=1))  # the rows' clock (set at import)
    r1 = next(r for r in q["revisions"] if r["revision"] == 1)
    assert r1["requests"] == 10 and r1["error_rate"] == 0.1 and r1["block_rate"] == 0.1
    assert (r1["answers_judged"], r1["refusal_rate"]) == (8, 0.25)
    assert (r1["grounding_judged"], r1["groundedness_rate"]) == (4, 0.75)
    assert (r1["rated"], r1["negative_feedback_rate"]) == (4, 0.25)
    assert (r1["latency_p50_s"], r1["latency_p95_s"]) == (6.0, 10.0)  # the 9 successful: 2..10 s
    assert (r1["ttft_p50_s"], r1["ttft_p95_s"]) == (0.5, 1.0)
    r2 = next(r for r in q["revisions"] if r["revision"] == 2)
    assert r2["requests"] == 1 and r2["refusal_rate"] is None and r2["ttft_p50_s"] is None
    assert q["overall"]["requests"] == 11 and q["window_s"] == 3600
    assert [s["requests"] for s in q["series"]] == [10, 1]
    with project_scope("marketing"):
        assert quality_signals(store, "acme", "1h", now=NOW + timedelta(seconds=1))["overall"]["requests"] == 0


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([1.0], 0.95) == 1.0
    assert percentile([float(i) for i in range(1, 101)], 0.95) == 95.0
    assert percentile([float(i) for i in range(1, 101)], 0.5) == 50.0


def test_closing_the_writer_writes_what_is_queued(sqlite_store: SqlStore) -> None:
    writer = RequestLogWriter(sqlite_store, Metrics())
    writer.close()  # never started: nothing to do
    path = sqlite_store.url.removeprefix("sqlite:///")
    lock = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        for i in range(20):
            assert writer.submit(pending(200 + i))
        assert writer.depth == 20  # the store is locked: all still queued
    finally:
        threading.Timer(0.2, lambda: (lock.execute("ROLLBACK"), lock.close())).start()
    writer.close(timeout=15)  # the server's shutdown: flush, then stop the thread
    assert writer.depth == 0 and writer.stats.written == 20
    with project_scope("claims"):
        assert len(sqlite_store.list_request_logs(RequestQuery(), limit=100)) == 20


def test_an_entry_after_shutdown_is_dropped_and_counted(sqlite_store: SqlStore) -> None:
    metrics = Metrics()
    writer = RequestLogWriter(sqlite_store, metrics)
    assert writer.submit(pending(300))
    writer.close()
    assert not writer.submit(pending(301))  # the writer thread is gone: counted, not queued forever
    assert metric(metrics, "plinth_request_log_dropped_total", reason="shutdown") == 1 and writer.depth == 0
