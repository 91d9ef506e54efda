"""Fixtures for the job queue: settings with short leases, a JobService, worker supervisors."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from plinth.config import Settings, load_settings
from plinth.jobs import JobService
from plinth.jobs.worker import WorkerSupervisor
from plinth.store.sql import SqlStore

FAST = {
    "jobs_poll_interval_s": 0.1,
    "jobs_lease_s": 3.0,
    "jobs_stop_grace_s": 5.0,
    "jobs_shutdown_grace_s": 5.0,
    "worker_cpu": 4,
    "worker_memory_bytes": 8 << 30,
    "worker_gpus": 0,
}


@dataclass
class JobsEnv:
    settings: Settings
    store: SqlStore
    jobs: JobService
    url: str
    workers: list[WorkerSupervisor] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def worker(self, **kw: Any) -> WorkerSupervisor:
        """A supervisor running in a thread of the test process."""
        sup = WorkerSupervisor(self.settings, self.store, **kw)
        sup.start()
        self.workers.append(sup)
        return sup

    def worker_process(self, log: Path, **env: str) -> subprocess.Popen[bytes]:
        """``plinth worker`` as a separate process (the real CLI)."""
        e = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
        e.update(
            PLINTH_HOME=str(self.settings.home),
            PLINTH_DATABASE_URL=self.url,
            PLINTH_JOBS_POLL_INTERVAL_S=str(FAST["jobs_poll_interval_s"]),
            PLINTH_JOBS_LEASE_S=str(FAST["jobs_lease_s"]),
            PLINTH_WORKER_CPU="4",
            PLINTH_WORKER_MEMORY_BYTES=str(8 << 30),
            PLINTH_WORKER_GPUS="0",
            PYTHONUNBUFFERED="1",
            **env,
        )
        with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen([sys.executable, "-m", "plinth", "worker"], env=e, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc


@pytest.fixture
def jobs_env(store_url: str, tmp_path: Path) -> Iterator[JobsEnv]:
    settings = load_settings(home=tmp_path / "home", database_url=store_url, **FAST)
    store = SqlStore(store_url)
    store.migrate()
    jobs = JobService(settings, store)
    jobs.ensure_defaults()
    env = JobsEnv(settings, store, jobs, store_url)
    try:
        yield env
    finally:
        for sup in env.workers:
            sup.stop(grace_s=1)
        for proc in env.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        store.close()
