"""The executor registry: job kinds by name, as ``module:function`` strings.

An executor is two functions of one module, named by strings so that nothing is imported
until it is needed:

* ``validate(spec: dict, services: Services) -> dict`` runs at submit time in the process
  that submits (API server or CLI), with that process's services. It raises :class:`~plinth.errors.PlinthError`
  (``invalid_request``, with ``param`` naming the field) for bad input, so no job is ever
  created from it, and returns the normalised spec that is stored on the job.
* ``run(ctx: JobContext) -> dict`` runs in the job's own worker process; the dict it
  returns is stored as the job's result (it must be JSON-serialisable).

The queue's own kind (``selftest``) is listed in :data:`BUILTIN_EXECUTORS`. Other kinds
come through the ``plinth.executors`` entry-point group, each entry point naming an
:class:`ExecutorEntry` (or a list of them): plinth's fine-tuning kinds
(:data:`plinth.tuning.kinds.EXECUTORS`) the same way as a third-party package's, so this
package names no module above it. :func:`register_executor` adds one in-process.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plinth.domain.jobs import NAME_RE, Resources
from plinth.errors import ErrorCode, PlinthError

log = logging.getLogger("plinth.jobs")

_TARGET_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")
ENTRY_POINT_GROUP = "plinth.executors"


@dataclass(frozen=True)
class ExecutorEntry:
    """A job kind: what runs it, what checks its spec, what it asks for by default."""

    kind: str
    run: str  # "package.module:function", called with a JobContext in the worker process
    validate: str | None = None  # "package.module:function", called with (spec, services)
    description: str = ""
    default_resources: Resources | None = None  # when the submitter gives none

    def public_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "description": self.description,
            "default_resources": self.default_resources.as_dict() if self.default_resources else None,
        }


# The queue's own kind; other areas register theirs through the entry-point group.
BUILTIN_EXECUTORS: tuple[ExecutorEntry, ...] = (
    ExecutorEntry(
        "selftest",
        run="plinth.jobs.selftest:run",
        validate="plinth.jobs.selftest:validate",
        description="Counts steps with a pause, checkpoints, honours cancel and preemption; "
        "can be told to fail or crash. Checks that a worker runs jobs.",
        default_resources=Resources(cpu=1, memory=256 << 20, gpus=0),
    ),
)

_registry: dict[str, ExecutorEntry] = {}
_lock = threading.Lock()
_loaded = False


def register_executor(
    kind: str,
    run: str,
    *,
    validate: str | None = None,
    description: str = "",
    default_resources: Resources | None = None,
    replace: bool = False,
) -> ExecutorEntry:
    """Register a job kind. ``run`` and ``validate`` are ``"module:function"`` strings.

    Registering an existing kind again with the same entry is a no-op; with a different
    entry it is an error unless ``replace``.
    """
    entry = ExecutorEntry(kind, run, validate, description, default_resources)
    _check_entry(entry)
    with _lock:
        _ensure_loaded_locked()
        return _add_locked(entry, replace=replace)


def _check_entry(entry: ExecutorEntry) -> None:
    if not NAME_RE.match(entry.kind or ""):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid job kind {entry.kind!r}: use 1-63 lowercase letters, digits, '.', '_' or '-'",
        )
    for what, target in (("run", entry.run), ("validate", entry.validate)):
        if target is not None and not _TARGET_RE.match(target):
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"executor {entry.kind!r}: {what} must be 'package.module:function', got {target!r}",
            )


def _add_locked(entry: ExecutorEntry, *, replace: bool) -> ExecutorEntry:
    existing = _registry.get(entry.kind)
    if existing is not None and existing != entry and not replace:
        raise PlinthError(
            ErrorCode.ALREADY_EXISTS,
            f"job kind {entry.kind!r} is already registered (to {existing.run}); pass replace=True to override",
        )
    _registry[entry.kind] = entry
    return entry


def _ensure_loaded_locked() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for entry in BUILTIN_EXECUTORS:
        _registry.setdefault(entry.kind, entry)
    try:
        from importlib.metadata import entry_points

        eps: list[Any] = list(entry_points(group=ENTRY_POINT_GROUP))
    except Exception:  # pragma: no cover - broken metadata must not stop the queue
        eps = []
    for ep in eps:
        try:
            value = ep.load()
            for entry in value if isinstance(value, (list, tuple)) else [value]:
                if not isinstance(entry, ExecutorEntry):
                    raise TypeError(f"{ep.value} is not an ExecutorEntry")
                _check_entry(entry)
                _add_locked(entry, replace=False)
        except Exception as e:  # a broken plugin is reported, the others still load
            log.error("cannot load job executors from entry point %s (%s): %s", ep.name, ep.value, e)


def executor_entry(kind: str) -> ExecutorEntry:
    """The entry of ``kind``; PlinthError(invalid_request) naming the known kinds if unknown."""
    with _lock:
        _ensure_loaded_locked()
        entry = _registry.get(kind)
        known = sorted(_registry)
    if entry is None:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"unknown job kind {kind!r}; known kinds: {', '.join(known)}",
            param="kind",
            details={"kind": kind, "known": known},
        )
    return entry


def executor_entries() -> list[ExecutorEntry]:
    with _lock:
        _ensure_loaded_locked()
        return [_registry[k] for k in sorted(_registry)]


def load_target(target: str) -> Callable[..., Any]:
    """Import ``module`` and return ``function`` of a ``"module:function"`` string."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise PlinthError(
            ErrorCode.RUNTIME_UNAVAILABLE,
            f"cannot import {module_name!r} for executor {target!r}: {e}",
        ) from e
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise PlinthError(ErrorCode.INTERNAL, f"executor target {target!r} is not a function")
    return fn
