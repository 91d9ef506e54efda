"""Start and stop live plinth server subprocesses for integration tests.

It runs the real CLI (`python -m plinth up`) on a free port with a fresh PLINTH_HOME and the
real embedded model, configured with small limits so back-pressure and size limits can be
provoked quickly.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

MODEL = "smollm2-135m-instruct"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    home: Path
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample in /metrics (0.0 if absent)."""
        text = httpx.get(self.url + "/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def server_env(home: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(
        {
            "PLINTH_HOME": str(home),
            "PLINTH_PORT": str(port),
            "PLINTH_HOST": "127.0.0.1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def start_server(home: Path, *, command_prefix: tuple[str, ...] = (), log: Path | None = None, **extra: str) -> LiveServer:
    """``plinth up`` on a free port with ``PLINTH_HOME=home`` and the ``PLINTH_*`` settings in
    ``extra``; ``command_prefix`` runs it through another command (``setpriv`` to run it as
    another user), ``log`` writes its output elsewhere than ``home/server.log``."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = log or home / "server.log"
    with open(log, "wb") as fh:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [*command_prefix, sys.executable, "-m", "plinth", "up"],
            env=server_env(home, port, **extra),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(url=f"http://127.0.0.1:{port}", home=home, log=log, proc=proc)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"plinth up exited with {proc.returncode}:\n{server.log_text()}")
        try:
            if httpx.get(server.url + "/readyz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_server(server)
    raise RuntimeError(f"plinth up did not become ready:\n{server.log_text()}")


def stop_server(server: LiveServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(timeout=5)
