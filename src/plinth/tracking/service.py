"""Runs: start, log metrics and artifacts, sample system metrics, end, compare.

Every fine-tuning job is a run; evaluations and exports are runs too. A run's per-step
metrics (``train/loss``, ``train/lr``, ``train/tokens_per_s``, ``val/loss``...) and its
system metrics (``system/rss_mb``, ``system/cpu_percent``, sampled in the background) go to
the metadata store; artifacts (adapters, models, plots) go to the content-addressed artifact
store and are recorded on the run.
"""

from __future__ import annotations

import builtins
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

from plinth.domain.tracking import ArtifactKind, EvalReport, MetricPoint, Run, RunArtifact, RunStatus
from plinth.errors import ErrorCode, PlinthError
from plinth.store import ArtifactStore, MetadataStore
from plinth.tracking.plots import line_chart_svg

log = logging.getLogger("plinth.tracking")


class TrackingService:
    def __init__(self, store: MetadataStore, artifacts: ArtifactStore) -> None:
        self.store = store
        self.artifacts = artifacts

    # -- lifecycle -------------------------------------------------------------------------
    def start_run(
        self,
        name: str,
        kind: str,
        *,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        job_id: str | None = None,
        base_model: str | None = None,
        dataset: str | None = None,
        run_id: str | None = None,
    ) -> Run:
        return self.store.create_run(
            Run(
                id=run_id or uuid4().hex,
                name=name[:200],
                kind=kind,
                status=RunStatus.RUNNING,
                params=params or {},
                tags=tags or {},
                job_id=job_id,
                base_model=base_model,
                dataset=dataset,
                started_at=datetime.now(UTC),
            )
        )

    def resume_or_start(self, job_id: str, name: str, kind: str, **fields: Any) -> Run:
        """The run of a job that ran before (preempted, requeued), marked running again; or
        a new run."""
        run = self.store.find_run_by_job(job_id)
        if run is None:
            return self.start_run(name, kind, job_id=job_id, **fields)
        return self.store.update_run(run.id, status=RunStatus.RUNNING)

    def end_run(self, run_id: str, status: RunStatus, *, summary: dict[str, Any] | None = None, error: str | None = None) -> Run:
        return self.store.update_run(run_id, status=status, summary=summary, error=error, ended=status != RunStatus.PREEMPTED)

    def get(self, run_id: str) -> Run:
        return self.store.get_run(run_id)

    def list(self, **filters: Any) -> builtins.list[Run]:
        return self.store.list_runs(**filters)

    # -- metrics ---------------------------------------------------------------------------
    def log_metrics(self, run_id: str, step: int, **values: float) -> None:
        now = datetime.now(UTC)
        self.store.log_metrics(run_id, [MetricPoint(k.replace("__", "/"), step, float(v), now) for k, v in values.items()])

    def log_metric_points(self, run_id: str, points: builtins.list[MetricPoint]) -> None:
        self.store.log_metrics(run_id, points)

    def metrics(self, run_id: str, keys: builtins.list[str] | None = None) -> dict[str, builtins.list[MetricPoint]]:
        self.store.get_run(run_id)
        return self.store.get_metrics(run_id, keys)

    def downsampled(
        self, run_id: str, keys: builtins.list[str] | None = None, max_points: int = 1000
    ) -> dict[str, builtins.list[MetricPoint]]:
        """The run's metrics (or the named ones) in at most about ``max_points`` points each,
        spikes kept (see :meth:`plinth.store.base_tracking.TrackingStore.downsample_metrics`):
        what a chart draws, however long the run."""
        self.store.get_run(run_id)
        return self.store.downsample_metrics(run_id, keys, max_points)

    def metric_keys(self, run_id: str) -> dict[str, int]:
        """The run's metric keys with their number of points (no point is read)."""
        self.store.get_run(run_id)
        return self.store.metric_keys(run_id)

    def run_of_job(self, job_id: str) -> Run | None:
        """The run a job records (None until the job started it)."""
        return self.store.find_run_by_job(job_id)

    def page(
        self, *, kind: str | None = None, status: RunStatus | None = None, offset: int = 0, limit: int = 50
    ) -> tuple[builtins.list[Run], int]:
        """One page of runs, newest first, and how many there are in all."""
        runs = self.store.list_runs(kind=kind, status=status, limit=limit, offset=offset)
        return runs, self.store.count_runs(kind=kind, status=status)

    def eval_reports(self, *, model: str | None = None) -> builtins.list[EvalReport]:
        """Evaluation reports, newest first (of one evaluated model id, or all)."""
        return self.store.list_eval_reports(model=model)

    @contextmanager
    def system_metrics(self, run_id: str, every_s: float = 5.0) -> Iterator[None]:
        """Sample this process tree's RSS and CPU into the run while the block runs."""
        stop = threading.Event()

        def sample() -> None:
            try:
                import psutil
            except ImportError:  # pragma: no cover - psutil is a dependency
                return
            proc = psutil.Process(os.getpid())
            proc.cpu_percent(None)
            step = 0
            while not stop.wait(every_s):
                try:
                    procs = [proc, *proc.children(recursive=True)]
                    rss = sum(p.memory_info().rss for p in procs)
                    cpu = proc.cpu_percent(None)
                    self.log_metrics(run_id, step, **{"system/rss_mb": rss / 1e6, "system/cpu_percent": cpu})
                except Exception as e:  # a failed sample must not stop training
                    log.debug("system metrics sample failed: %s", e)
                step += 1

        t = threading.Thread(target=sample, name="run-system-metrics", daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join(timeout=2)

    # -- artifacts -------------------------------------------------------------------------
    def log_artifact(self, run_id: str, name: str, kind: ArtifactKind, path: Path, meta: dict[str, Any] | None = None) -> RunArtifact:
        """Store a file or directory content-addressed and record it on the run."""
        path = Path(path)
        if path.is_dir():
            digest = self.artifacts.put_tree(path)
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        elif path.is_file():
            digest = self.artifacts.put_file(path)
            size = path.stat().st_size
        else:
            raise PlinthError(ErrorCode.NOT_FOUND, f"artifact {str(path)!r} does not exist")
        return self.store.add_run_artifact(
            RunArtifact(run_id=run_id, name=name, kind=kind, digest=digest, size_bytes=size, meta=meta or {})
        )

    def log_text_artifact(self, run_id: str, name: str, kind: ArtifactKind, text: str, meta: dict[str, Any] | None = None) -> RunArtifact:
        data = text.encode("utf-8")
        digest = self.artifacts.put_bytes(data)
        return self.store.add_run_artifact(
            RunArtifact(run_id=run_id, name=name, kind=kind, digest=digest, size_bytes=len(data), meta=meta or {})
        )

    def artifacts_of(self, run_id: str) -> builtins.list[RunArtifact]:
        self.store.get_run(run_id)
        return self.store.list_run_artifacts(run_id)

    # -- reading ---------------------------------------------------------------------------
    def loss_curve_svg(self, run_id: str) -> str:
        m = self.metrics(run_id)
        series = {k: [(p.step, p.value) for p in pts] for k, pts in m.items() if k.endswith("loss")}
        return line_chart_svg(series, title=f"loss of run {self.get(run_id).name}", y_label="loss")

    def compare(self, run_ids: builtins.list[str]) -> dict[str, Any]:
        """Params and final metrics of several runs side by side, with the keys that differ."""
        runs = [self.get(r) for r in run_ids]
        param_keys = sorted({k for r in runs for k in _flatten(r.params)})
        metric_keys = sorted({k for r in runs for k in r.summary if isinstance(r.summary.get(k), int | float)})
        flat = [_flatten(r.params) for r in runs]
        params = {k: [f.get(k) for f in flat] for k in param_keys}
        metrics = {k: [r.summary.get(k) for r in runs] for k in metric_keys}
        return {
            "runs": [r.public_dict() for r in runs],
            "params": params,
            "differing_params": [k for k, vals in params.items() if len({repr(v) for v in vals}) > 1],
            "metrics": metrics,
        }


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
