"""What this machine offers to jobs, and resource requests written by people ("4GiB")."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from plinth.config import Settings
from plinth.domain.jobs import Resources, format_bytes, format_resources
from plinth.domain.numbers import INT64_MAX
from plinth.errors import ErrorCode, PlinthError

__all__ = ["format_bytes", "format_resources", "machine_capacity", "parse_bytes"]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "ki": 1024,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mi": 1024**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gi": 1024**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ti": 1024**4,
    "tib": 1024**4,
}
#: a size as people write it; also the JSON Schema ``pattern`` the API declares (ASCII only,
#: so the two regex dialects agree)
SIZE_PATTERN = r"^ *([0-9]+(?:\.[0-9]+)?) *([bB]|[kKmMgGtT][iI]?[bB]?)? *$"
_SIZE_RE = re.compile(SIZE_PATTERN)


def parse_bytes(value: str | int, *, param: str = "memory") -> int:
    """``4GiB``, ``512M``, ``1.5G``, ``1073741824`` -> bytes (decimal k/M/G, binary Ki/Mi/Gi)."""
    if isinstance(value, bool):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{param} must be a size such as 4GiB; got {value!r}", param=param)
    if isinstance(value, int):
        if value < 0:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"{param} must not be negative; got {value}", param=param)
        return _bounded(value, value, param)
    m = _SIZE_RE.match(str(value))
    unit = (m.group(2) or "").lower() if m else None
    if not m or unit not in _UNITS:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"{param} must be a size such as 4GiB, 512MiB or a number of bytes; got {value!r}",
            param=param,
        )
    size = float(m.group(1)) * _UNITS[unit]  # inf for a number too long for a float
    return _bounded(int(size) if math.isfinite(size) else INT64_MAX + 1, value, param)


def _bounded(size: int, value: str | int, param: str) -> int:
    if size > INT64_MAX:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{param} {value!r} is too large; at most {INT64_MAX} bytes", param=param)
    return size


def detect_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def detect_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        import psutil

        return int(psutil.virtual_memory().total)


def detect_gpus() -> int:
    """NVIDIA GPUs the driver reports, limited to CUDA_VISIBLE_DEVICES when it is set."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v for v in visible.split(",") if v.strip() and v.strip() != "-1"]
        return len(ids)
    root = Path("/proc/driver/nvidia/gpus")
    try:
        return sum(1 for p in root.iterdir() if p.is_dir())
    except OSError:
        return 0


def visible_gpu_ids(count: int) -> list[str]:
    """The device ids a worker hands out, in order (CUDA_VISIBLE_DEVICES' own ids when set)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v.strip() for v in visible.split(",") if v.strip() and v.strip() != "-1"]
        return ids[:count]
    return [str(i) for i in range(count)]


def machine_capacity(settings: Settings) -> Resources:
    """What one worker on this machine offers: the ``worker_*`` settings, else what is detected."""
    return Resources(
        cpu=settings.worker_cpu or detect_cpus(),
        memory=settings.worker_memory_bytes or detect_memory(),
        gpus=settings.worker_gpus if settings.worker_gpus is not None else detect_gpus(),
    )
