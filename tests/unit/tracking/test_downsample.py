"""Server-side downsampling of metric curves: a 100k-step series comes back in about 1,000
points computed by the database, with its spikes; a short one comes back whole (SQLite and
Postgres, through the store test pattern)."""

from __future__ import annotations

import itertools
import math
from uuid import uuid4

from plinth.domain.tracking import MetricPoint, Run, RunStatus
from plinth.store.sql import SqlStore
from plinth.tracking.service import TrackingService


def _run(store: SqlStore) -> Run:
    return store.create_run(Run(id=uuid4().hex, name="long", kind="lora", status=RunStatus.RUNNING))


def test_a_long_series_keeps_its_shape_its_spikes_and_its_ends(store: SqlStore) -> None:
    run = _run(store)
    n = 100_000
    values = [3.0 * math.exp(-s / 20_000) + 0.01 * ((s * 7919) % 13) for s in range(n)]
    values[54_321] = 99.0  # one-step spikes, up and down
    values[77_777] = -5.0
    store.log_metrics(run.id, [MetricPoint("train/loss", s, v) for s, v in enumerate(values)])
    store.log_metrics(run.id, [MetricPoint("val/loss", s, 2.0 - s / 1e5) for s in range(0, n, 2_500)])  # 40 points

    series = store.downsample_metrics(run.id, max_points=1000)  # its speed: bench/console.py, not a timed assertion

    loss = series["train/loss"]
    assert 500 <= len(loss) <= 1000
    steps = [p.step for p in loss]
    assert steps == sorted(set(steps))  # ordered, no step twice
    assert (loss[0].step, loss[-1].step) == (0, n - 1)
    by_step = {p.step: p.value for p in loss}
    assert by_step[54_321] == 99.0 and by_step[77_777] == -5.0
    assert all(values[p.step] == p.value for p in loss)  # real points, not averages
    # every stretch of the curve is represented (no bucket lost)
    assert max(b - a for a, b in itertools.pairwise(steps)) <= 2 * n / 490
    # the short series is whole
    assert [p.step for p in series["val/loss"]] == list(range(0, n, 2_500))


def test_named_keys_short_series_and_the_service(store: SqlStore, artifact_store) -> None:
    run = _run(store)
    store.log_metrics(run.id, [MetricPoint("a", s, float(s)) for s in range(1, 6)])
    store.log_metrics(run.id, [MetricPoint("b", s, -float(s)) for s in range(1, 3000)])
    tracking = TrackingService(store, artifact_store)
    only_a = tracking.downsampled(run.id, ["a"], max_points=100)
    assert list(only_a) == ["a"] and [p.value for p in only_a["a"]] == [1.0, 2.0, 3.0, 4.0, 5.0]
    both = tracking.downsampled(run.id, max_points=100)
    assert sorted(both) == ["a", "b"] and len(both["b"]) <= 100
    assert both["b"][0].value == -1.0 and both["b"][-1].value == -2999.0
    assert tracking.downsampled(run.id, ["missing"]) == {}


def test_unknown_run_and_paging(store: SqlStore, artifact_store) -> None:
    import pytest

    from plinth.errors import ErrorCode, PlinthError

    tracking = TrackingService(store, artifact_store)
    with pytest.raises(PlinthError) as e:
        tracking.downsampled("nope")
    assert e.value.code == ErrorCode.NOT_FOUND
    ids = [_run(store).id for _ in range(7)]
    first, total = tracking.page(offset=0, limit=5)
    second, _ = tracking.page(offset=5, limit=5)
    assert total == 7 and len(first) == 5 and len(second) == 2
    assert {r.id for r in first + second} == set(ids)
    assert tracking.page(status=RunStatus.FINISHED)[1] == 0
