"""Temp files owned by live writers (plinth.tempfiles): a writer killed with SIGKILL leaves a
partial file that the next start removes, while a live writer's temp file survives the same
start. Real writer processes, a real kill, the real ``plinth`` start-up."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plinth.store.artifacts import ArtifactStore
from plinth.tempfiles import owned_temp, owned_temp_dir, sweep

WRITER = r"""
import sys, time
from pathlib import Path
from plinth.store.artifacts import ArtifactStore
from plinth.tempfiles import owned_temp_dir

home, mode = Path(sys.argv[1]), sys.argv[2]
if mode == "blob":  # an import copying bytes into the artifact store, fed through stdin
    digest = ArtifactStore(home / "artifacts").put_stream(sys.stdin.buffer)
    print(digest, flush=True)
else:  # a PEFT conversion staging folder under $PLINTH_HOME/tmp
    with owned_temp_dir(home / "tmp", prefix="adapter-") as staging:
        (staging / "adapter.gguf").write_bytes(b"partial")
        sys.stdin.buffer.read()
        print("done", flush=True)
"""


def start_writer(home: Path, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(home), mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def entries(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def wait_for_new_entry(folder: Path, before: set[str], proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the writer exited early"
        new = entries(folder) - before
        if new:
            (name,) = new
            return name
        time.sleep(0.05)
    raise AssertionError(f"no temp file appeared in {folder}")


def next_start(home: Path) -> None:
    """What the next ``plinth`` start does: the real CLI builds its services (and sweeps)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(PLINTH_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "plinth", "kb", "list"], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("mode", "folder"), [("blob", "artifacts/tmp"), ("staging", "tmp")])
def test_a_killed_writers_temp_file_goes_at_the_next_start_a_live_ones_stays(tmp_path: Path, mode: str, folder: str) -> None:
    home = tmp_path / "home"
    tmp = home / folder
    killed = start_writer(home, mode)
    live = None
    try:
        killed.stdin.write(b"a" * 100_000)  # type: ignore[union-attr]
        killed.stdin.flush()  # type: ignore[union-attr]
        killed_file = wait_for_new_entry(tmp, set(), killed)
        live = start_writer(home, mode)
        live.stdin.write(b"b" * 100_000)  # type: ignore[union-attr]
        live.stdin.flush()  # type: ignore[union-attr]
        live_file = wait_for_new_entry(tmp, {killed_file}, live)

        os.kill(killed.pid, signal.SIGKILL)
        assert killed.wait(30) == -signal.SIGKILL
        assert entries(tmp) == {killed_file, live_file}  # the partial file stayed behind

        next_start(home)
        assert entries(tmp) == {live_file}, "the start removed the live writer's file or kept the dead one's"

        out, _ = live.communicate(b"c" * 1000, timeout=60)  # the live writer finishes undisturbed
        assert live.returncode == 0
        if mode == "blob":
            digest = out.decode().strip()
            assert digest == "sha256:" + hashlib.sha256(b"b" * 100_000 + b"c" * 1000).hexdigest()
            assert ArtifactStore(home / "artifacts").verify(digest)
        assert entries(tmp) == set()
    finally:
        for proc in (killed, live):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)


def test_sweep_leaves_what_this_process_holds_and_takes_what_nobody_holds(tmp_path: Path) -> None:
    with owned_temp(tmp_path, prefix="put-") as held, owned_temp_dir(tmp_path, prefix="stage-") as staging:
        held.file.write(b"x")
        (staging / "f").write_bytes(b"y")
        (tmp_path / "orphan").write_bytes(b"left by a process that is gone")
        (tmp_path / "orphan-dir").mkdir()
        assert sweep(tmp_path) == 2
        assert entries(tmp_path) == {held.path.name, staging.name}
    assert entries(tmp_path) == set()  # each removed its own on the way out


def test_sweep_keeps_to_its_prefix(tmp_path: Path) -> None:
    (tmp_path / ".stage-1").mkdir()
    (tmp_path / "0123abcd").mkdir()  # a finished materialised model
    assert sweep(tmp_path, prefix=".") == 1
    assert entries(tmp_path) == {"0123abcd"}
