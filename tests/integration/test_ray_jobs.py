"""Jobs run on a real local Ray head through the Ray Jobs API with plinth's queue semantics (ADR 0105).

The module starts ``ray start --head --block`` on 127.0.0.1 (its own temp dir and ports,
stopped at teardown) and ``plinth up`` with ``PLINTH_RAY_ADDRESS`` pointing at its dashboard.
The server's worker admits the jobs and submits them to Ray; the Ray job runs plinth's own job
process against the same store and home (one filesystem here). Covered: a ``selftest`` job, a
driver killed on Ray retried by plinth (Ray does not retry), a cancel that stops the Ray job,
a tiny LoRA ``tune`` job on the embedded model, and (in-process, no head) a cluster that cannot
be reached: plinth requeues each attempt as a restart and then fails the job.

Skipped with the reason when ray is not installed (``pip install 'plinth[ray]'``), except where
``PLINTH_REQUIRE_RAY`` is set (CI): then a missing ray fails the module.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.live_server import MODEL, LiveServer, free_port, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
FAQ = ROOT / "examples" / "acme-health" / "faq.jsonl"

try:
    from ray.job_submission import JobSubmissionClient
except ImportError as e:  # pragma: no cover - depends on the environment
    if os.environ.get("PLINTH_REQUIRE_RAY"):
        raise RuntimeError(f"PLINTH_REQUIRE_RAY is set but ray cannot be imported (pip install 'plinth[ray]'): {e}") from e
    pytest.skip(f"ray is not installed (pip install 'plinth[ray]'): {e}", allow_module_level=True)

pytestmark = pytest.mark.slow


def _ray_head(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``ray start --head --block`` on 127.0.0.1; returns at once (see :func:`_wait_head`)."""
    dash = free_port()
    ray = Path(sys.executable).with_name("ray")
    cmd = [
        str(ray),
        "start",
        "--head",
        "--block",
        "--port=0",
        "--node-ip-address=127.0.0.1",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dash}",
        f"--ray-client-server-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        "--num-cpus=1",
        "--include-dashboard=true",
        f"--temp-dir={tmp}",
        "--disable-usage-stats",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    with open(tmp / "head.log", "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(tmp), start_new_session=True)
    return proc, f"http://127.0.0.1:{dash}"


def _wait_head(proc: subprocess.Popen[bytes], address: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            if httpx.get(f"{address}/api/version", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("the Ray head did not come up:\n" + log.read_text(errors="replace"))


def _stop_head(proc: subprocess.Popen[bytes]) -> None:
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    proc.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    for child in children:  # anything it left behind, by pid
        try:
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                child.kill()
        except psutil.Error:
            pass


@pytest.fixture(scope="module")
def ray_head() -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    tmp = Path(tempfile.mkdtemp(prefix="plray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    proc, address = _ray_head(tmp)
    try:
        yield proc, address, tmp / "head.log"
    finally:
        _stop_head(proc)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_address(ray_head: tuple[subprocess.Popen[bytes], str, Path]) -> str:
    return ray_head[1]


@pytest.fixture(scope="module")
def server(
    ray_head: tuple[subprocess.Popen[bytes], str, Path], tmp_path_factory: pytest.TempPathFactory, smol32_dir: Path
) -> Iterator[LiveServer]:
    proc, address, log = ray_head
    home = tmp_path_factory.mktemp("ray-plinth") / "home"
    # the tune job trains on the session's float32 copy of the embedded model (see test_tuning_api)
    cache = home / "cache" / "torch"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / smol32_dir.name).symlink_to(smol32_dir, target_is_directory=True)
    # the server starts while the head comes up: its worker reaches Ray only when a job is admitted
    srv = start_server(
        home,
        PLINTH_PRELOAD_DEFAULT_MODEL="false",
        PLINTH_RAY_ADDRESS=address,
        PLINTH_RAY_KINDS='["tune", "eval", "selftest"]',
        PLINTH_JOBS_POLL_INTERVAL_S="0.2",
        PLINTH_JOBS_STOP_GRACE_S="1",
        PLINTH_WORKER_CPU="2",
    )
    try:
        _wait_head(proc, address, log)
        yield srv
    finally:
        stop_server(srv)


def _api(server: LiveServer) -> str:
    return server.url + "/api/v1"


def _submit(server: LiveServer, kind: str, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    r = httpx.post(f"{_api(server)}/jobs", json={"kind": kind, "spec": spec, "resources": {"cpu": 1}, **extra}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def _wait(server: LiveServer, job_id: str, until: Any = None, timeout: float = 120) -> dict[str, Any]:
    until = until or (lambda j: j["state"] in ("succeeded", "failed", "cancelled"))
    deadline = time.monotonic() + timeout
    while True:
        job = httpx.get(f"{_api(server)}/jobs/{job_id}", timeout=10).json()
        if until(job):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def _logs(server: LiveServer, job_id: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = httpx.get(f"{_api(server)}/jobs/{job_id}/logs", params={"limit": 1000}, timeout=10).json()["lines"]
    return lines


def _ray_end(ray_address: str, sid: str, timeout: float = 60) -> Any:
    """The info of Ray job ``sid`` once it ended (plinth's job ends a moment before its driver exits)."""
    ray = JobSubmissionClient(ray_address)
    deadline = time.monotonic() + timeout
    while True:
        info = ray.get_job_info(sid)
        if info.status.value in ("SUCCEEDED", "FAILED", "STOPPED"):
            return info
        assert time.monotonic() < deadline, info
        time.sleep(0.2)


def _log_with(server: LiveServer, job_id: str, text: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The job's log once a line of stream ``ray`` contains ``text`` (the worker copies Ray's logs as it polls)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = _logs(server, job_id)
        if any(ln["stream"] == "ray" and text in ln["line"] for ln in lines):
            return lines
        assert time.monotonic() < deadline, lines
        time.sleep(0.2)


def test_selftest_runs_on_ray_with_its_logs(server: LiveServer, ray_address: str) -> None:
    job = _submit(server, "selftest", {"steps": 3, "sleep_s": 0.05, "result": {"where": "ray"}})
    done = _wait(server, job["id"])
    assert done["state"] == "succeeded" and done["attempt"] == 1, done
    assert done["result"]["where"] == "ray" and done["process_id"] is None  # nothing ran on the server's host as its child
    info = _ray_end(ray_address, f"plinth-{job['id']}-1")
    assert info.status.value == "SUCCEEDED" and info.metadata["plinth_job"] == job["id"]
    env = info.runtime_env["env_vars"]
    assert "PLINTH_RAY_JOB_SETTINGS" in env and '"secrets"' not in env["PLINTH_RAY_JOB_SETTINGS"]  # never sent to Ray
    # the driver's lines reach plinth's job log (stream "ray"); plinth's own log records are not doubled
    lines = _log_with(server, job["id"], "the job process exited with")
    assert any(ln["stream"] == "ray" and "Running entrypoint" in ln["line"] for ln in lines), lines
    assert not any(ln["stream"] == "ray" and " INFO plinth." in ln["line"] for ln in lines), lines
    out = (server.home / "jobs" / job["id"] / "attempt-1.out").read_text()
    assert "Running entrypoint" in out


def test_a_driver_killed_on_ray_is_retried_by_plinth(server: LiveServer, ray_address: str) -> None:
    job = _submit(server, "selftest", {"steps": 4, "sleep_s": 0.05, "crash_at": 2, "crash_attempts": [1]})
    done = _wait(server, job["id"])
    assert done["state"] == "succeeded" and done["attempt"] == 2 and done["restarts"] == 1, done
    assert done["result"]["resumed_from"] >= 1
    first = _ray_end(ray_address, f"plinth-{job['id']}-1")
    second = _ray_end(ray_address, f"plinth-{job['id']}-2")
    # Ray ran each attempt once and retried nothing: plinth submitted the second attempt itself
    assert first.status.value == "FAILED" and first.driver_exit_code == 128 + signal.SIGKILL
    assert second.status.value == "SUCCEEDED"
    text = " ".join(ln["line"] for ln in _logs(server, job["id"]))
    assert "requeued (process_killed)" in text or "process_killed" in text, text


def test_cancel_stops_the_ray_job(server: LiveServer, ray_address: str) -> None:
    job = _submit(server, "selftest", {"steps": 600, "sleep_s": 0.1, "ignore_stop": True})
    _wait(server, job["id"], until=lambda j: j["state"] == "running" and j["progress"]["done"] >= 2, timeout=60)
    r = httpx.post(f"{_api(server)}/jobs/{job['id']}/cancel", timeout=10)
    assert r.status_code == 200, r.text
    done = _wait(server, job["id"], timeout=60)
    assert done["state"] == "cancelled", done
    assert done["progress"]["done"] < 600
    # it ignored the request: plinth stopped it on Ray after the grace period
    assert _ray_end(ray_address, f"plinth-{job['id']}-1").status.value == "STOPPED"


def test_a_tiny_lora_tune_job_runs_on_ray(server: LiveServer, ray_address: str) -> None:
    api = _api(server)
    lines = FAQ.read_text(encoding="utf-8").splitlines()[:8]
    r = httpx.post(f"{api}/datasets/ray-tune/versions", content="\n".join(lines).encode(), params={"filename": "faq.jsonl"}, timeout=60)
    assert r.status_code in (200, 201), r.text
    spec = {
        "base_model": MODEL,
        "dataset": "ray-tune",
        "name": "ray-tuned",
        "max_steps": 2,
        "batch_size": 2,
        "eval_every": 2,
        "checkpoint_every": 2,
        "learning_rate": 1e-3,
        "warmup_steps": 0,
    }
    job = _submit(server, "tune", spec)
    done = _wait(server, job["id"], timeout=300)
    assert done["state"] == "succeeded", (done, _logs(server, job["id"])[-20:])
    assert done["result"]["registered"] == "ray-tuned@1"
    run = httpx.get(f"{api}/runs/{done['result']['run_id']}", timeout=10).json()
    assert run["status"] == "finished"
    assert _ray_end(ray_address, f"plinth-{job['id']}-1").status.value == "SUCCEEDED"


def test_ray_outcomes_map_to_plinth_exit_codes() -> None:
    """What the supervisor sees for each way a Ray job ends without the job process's outcome:
    a negative code (a signal) is requeued as a restart, another code fails the job."""
    from plinth.jobs.ray_backend import exit_code

    assert exit_code("SUCCEEDED", 0) == 0
    assert exit_code("FAILED", 128 + signal.SIGKILL) == -signal.SIGKILL  # the job process was killed
    assert exit_code("FAILED", None) == -signal.SIGKILL  # the driver was lost (node died, runtime env failed)
    assert exit_code("STOPPED", None) == -signal.SIGTERM  # stopped on Ray's side, not by plinth
    assert exit_code("FAILED", 2) == 2  # a plain non-zero exit: failed (process_exited)


def test_an_unreachable_cluster_is_retried_then_fails_the_job(migrated_sqlite_url: str, tmp_path: Path) -> None:
    """No Ray at the address: each attempt is requeued as a restart (plinth's policy), then the job
    fails naming the address; no process ran on this host. In-process worker on the real store."""
    from plinth.config import load_settings
    from plinth.domain.jobs import Resources
    from plinth.jobs import JobService
    from plinth.jobs.worker import WorkerSupervisor
    from plinth.store.sql import SqlStore

    closed = f"http://127.0.0.1:{free_port()}"
    settings = load_settings(
        home=tmp_path / "home",
        database_url=migrated_sqlite_url,
        jobs_poll_interval_s=0.05,
        worker_cpu=2,
        worker_memory_bytes=4 << 30,
        worker_gpus=0,
        ray_address=closed,
        ray_kinds=["selftest"],
    )
    store = SqlStore(migrated_sqlite_url)
    jobs = JobService(settings, store)
    jobs.ensure_defaults()
    worker = WorkerSupervisor(settings, store)
    worker.start()
    try:
        job = jobs.submit("selftest", {"steps": 1}, resources=Resources(cpu=1, memory=256 << 20), max_restarts=2)
        done = jobs.wait(job.id, timeout_s=60, poll_s=0.05)
    finally:
        worker.stop(grace_s=1)
        store.close()
    assert done.state.value == "failed" and done.reason.value == "process_killed" and done.restarts == 2, done
    assert done.message is not None and f"cannot submit the job to Ray at {closed}" in done.message
    assert "gave up after 2 restart(s)" in done.message and done.process_id is None


def test_a_ray_job_that_cannot_be_read_is_lost_after_a_while(migrated_sqlite_url: str, tmp_path: Path) -> None:
    """A head that stops answering (restarted, cut off) is waited out for ``lost_after_s`` on an
    injected clock, then the driver is called lost: SIGKILL to the supervisor (a restart), with a
    line in the job's log saying why."""
    from plinth.config import load_settings
    from plinth.domain.jobs import Resources
    from plinth.jobs import JobService
    from plinth.jobs.ray_backend import RayBackend, RayJob
    from plinth.store.sql import SqlStore

    settings = load_settings(home=tmp_path / "home", database_url=migrated_sqlite_url, worker_cpu=2, worker_gpus=0)
    store = SqlStore(migrated_sqlite_url)
    try:
        jobs = JobService(settings, store)
        jobs.ensure_defaults()
        job = jobs.submit("selftest", {"steps": 1}, resources=Resources(cpu=1, memory=256 << 20))
        now = [1000.0]
        backend = RayBackend(f"http://127.0.0.1:{free_port()}", ["selftest"], lost_after_s=60, clock=lambda: now[0])
        handle = RayJob(backend, job.id, 1, "plinth-x-1", tmp_path / "attempt-1.out", store)
        assert handle.poll() is None  # first failure: wait
        now[0] += 59
        assert handle.poll() is None  # still within lost_after_s
        now[0] += 2
        assert handle.poll() == -signal.SIGKILL and handle.status == "LOST"
        lines = [ln.line for ln in store.job_logs(job.id) if ln.stream == "ray"]
        assert len(lines) == 1 and "its driver is lost" in lines[0] and backend.address in lines[0]
    finally:
        store.close()
