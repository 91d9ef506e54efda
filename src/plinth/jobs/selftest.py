"""The built-in ``selftest`` job kind: checks that workers run jobs, and tests the queue.

It counts ``steps`` steps with a pause of ``sleep_s`` each, saving the step reached to
``checkpoint_dir/state.json`` after every step, and resumes from there on a later attempt.
Between steps it honours ``should_stop()``. It holds an exclusive lock on its checkpoint
directory while it runs, so two processes running the same job at once is detected (and
fails the second). Every step is appended to ``checkpoint_dir/trace.jsonl`` (attempt, pid,
step, time), which tests read to check resumption and that attempts never overlapped.

Spec (all optional)::

    steps          int    10      steps to count (1..1000000)
    sleep_s        float  0.1     pause per step (0..60)
    fail_at        int    -       raise an error at this step
    crash_at       int    -       kill this process with SIGKILL at this step ...
    crash_attempts [int]  [1]     ... on these attempts only
    ignore_stop    bool   false   never look at should_stop() (tests the kill after the grace period)
    allocate_mb    int    0       hold this much memory while running (tests the memory limit)
    result         dict   {}      merged into the result
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from plinth.errors import ErrorCode, PlinthError

_FIELDS: dict[str, Any] = {
    "steps": 10,
    "sleep_s": 0.1,
    "fail_at": None,
    "crash_at": None,
    "crash_attempts": [1],
    "ignore_stop": False,
    "allocate_mb": 0,
    "result": {},
}


def _bad(param: str, message: str) -> PlinthError:
    return PlinthError(ErrorCode.INVALID_REQUEST, f"spec.{param}: {message}", param=f"spec.{param}")


def _int(spec: dict[str, Any], key: str, lo: int, hi: int, *, optional: bool = False) -> int | None:
    value = spec.get(key, _FIELDS[key])
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _bad(key, f"must be an integer from {lo} to {hi}; got {value!r}")
    return value


def validate(spec: dict[str, Any], services: Any) -> dict[str, Any]:
    unknown = sorted(set(spec) - set(_FIELDS))
    if unknown:
        raise _bad(unknown[0], f"unknown field(s) {', '.join(unknown)}; known: {', '.join(_FIELDS)}")
    steps = _int(spec, "steps", 1, 1_000_000)
    assert steps is not None
    sleep_s = spec.get("sleep_s", _FIELDS["sleep_s"])
    if isinstance(sleep_s, bool) or not isinstance(sleep_s, (int, float)) or not 0 <= sleep_s <= 60:
        raise _bad("sleep_s", f"must be a number of seconds from 0 to 60; got {sleep_s!r}")
    fail_at = _int(spec, "fail_at", 1, steps, optional=True)
    crash_at = _int(spec, "crash_at", 1, steps, optional=True)
    attempts = spec.get("crash_attempts", _FIELDS["crash_attempts"])
    if not isinstance(attempts, list) or not all(isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in attempts):
        raise _bad("crash_attempts", f"must be a list of attempt numbers (1, 2, ...); got {attempts!r}")
    ignore_stop = spec.get("ignore_stop", False)
    if not isinstance(ignore_stop, bool):
        raise _bad("ignore_stop", f"must be true or false; got {ignore_stop!r}")
    allocate_mb = _int(spec, "allocate_mb", 0, 1 << 20)
    result = spec.get("result", {})
    if not isinstance(result, dict):
        raise _bad("result", f"must be an object; got {type(result).__name__}")
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise _bad("result", f"must be JSON: {e}") from None
    return {
        "steps": steps,
        "sleep_s": float(sleep_s),
        "fail_at": fail_at,
        "crash_at": crash_at,
        "crash_attempts": attempts,
        "ignore_stop": ignore_stop,
        "allocate_mb": allocate_mb,
        "result": result,
    }


def run(ctx: Any) -> dict[str, Any]:
    spec = ctx.spec
    ckpt: Path = ctx.checkpoint_dir
    lock = _exclusive_lock(ckpt / ".running")
    try:
        state_file = ckpt / "state.json"
        start = 0
        if state_file.exists():
            start = int(json.loads(state_file.read_text())["step"])
            ctx.log(f"resuming from step {start} (attempt {ctx.attempt})")
        hold = bytearray(spec["allocate_mb"] << 20) if spec["allocate_mb"] else None
        if hold is not None:
            for i in range(0, len(hold), 4096):  # touch every page so it counts in RSS
                hold[i] = 1
        steps = spec["steps"]
        ctx.progress(start, steps, f"step {start}/{steps}")
        for step in range(start + 1, steps + 1):
            if not spec["ignore_stop"]:
                ctx.check_stop()  # the checkpoint on disk is current here
            time.sleep(spec["sleep_s"])
            if spec["fail_at"] == step:
                raise RuntimeError(f"selftest failed at step {step} as asked (spec.fail_at)")
            if spec["crash_at"] == step and ctx.attempt in spec["crash_attempts"]:
                ctx.log(f"crashing at step {step} as asked (spec.crash_at)")
                ctx.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            _write_json(state_file, {"step": step})
            with open(ckpt / "trace.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps({"attempt": ctx.attempt, "pid": os.getpid(), "step": step, "t": time.time()}) + "\n")
            ctx.progress(step, steps, f"step {step}/{steps}", step=step)
        ctx.log(f"counted {steps} steps")
        return {
            **spec["result"],
            "steps": steps,
            "resumed_from": start,
            "attempt": ctx.attempt,
            "pid": os.getpid(),
            "resources": ctx.resources.as_dict(),
            "gpu_ids": list(ctx.gpu_ids),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        }
    finally:
        lock.close()


def _exclusive_lock(path: Path) -> Any:
    import fcntl

    f = open(path, "a+")  # noqa: SIM115 - held until the job ends
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise PlinthError(ErrorCode.CONFLICT, "another process is running this job right now: a job must never run twice at once") from None
    return f


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
