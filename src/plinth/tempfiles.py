"""Temp files and folders that tell whether their writer is still alive.

A writer makes its temp file with :func:`owned_temp` (or a staging folder with
:func:`owned_temp_dir`) and holds an exclusive ``flock`` on it until the file has been renamed
into place or removed. The kernel drops that lock when the writer's process ends, however it
ends (SIGKILL included), so :func:`sweep` removes exactly what no live writer holds: it tries
the lock itself without waiting, and removes an entry only after taking it and checking that
the name still leads to the locked file. Nothing depends on ages or clocks, so a partial file
of a writer killed a second ago goes at the next start, and a write of many hours is never
mistaken for debris (ADR 0066).

A writer that finds its new file already removed (a sweep took the lock between ``mkstemp``
and ``flock``) simply makes another one.

This module imports nothing of plinth's own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["OwnedTemp", "owned_temp", "owned_temp_dir", "sweep"]


@dataclass
class OwnedTemp:
    """A locked temp file: write to ``file`` (or open ``path`` again), rename ``path`` into place."""

    path: Path
    file: BinaryIO


def _lock_new(make: Callable[[], tuple[int, str]]) -> tuple[int, str]:
    """``make()`` -> (fd, name) of a fresh entry; returns one this process holds the lock of."""
    while True:
        fd, name = make()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a sweep is looking at it this instant and will remove it
            os.close(fd)
            continue
        if os.fstat(fd).st_nlink == 0:  # a sweep removed it before we locked it
            os.close(fd)
            continue
        return fd, name


@contextlib.contextmanager
def owned_temp(directory: Path, prefix: str = "tmp-", suffix: str = "") -> Iterator[OwnedTemp]:
    """A new temp file in ``directory``, locked for the whole ``with`` block.

    On leaving the block the name is removed if it is still there (after a successful
    ``os.replace`` it is not), then the file is closed, which drops the lock.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = _lock_new(lambda: tempfile.mkstemp(dir=directory, prefix=prefix, suffix=suffix))
    f = os.fdopen(fd, "w+b")
    path = Path(name)
    try:
        yield OwnedTemp(path=path, file=f)
    finally:
        try:
            path.unlink(missing_ok=True)
        finally:
            f.close()


@contextlib.contextmanager
def owned_temp_dir(directory: Path, prefix: str = "tmp-") -> Iterator[Path]:
    """A new staging folder in ``directory``, locked for the whole ``with`` block.

    The caller renames it into place; on leaving, whatever is still at the staging name is
    removed, then the lock is dropped.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    def make() -> tuple[int, str]:
        name = tempfile.mkdtemp(dir=directory, prefix=prefix)
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), name

    fd, name = _lock_new(make)
    path = Path(name)
    try:
        yield path
    finally:
        try:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)


def sweep(directory: Path, *, prefix: str = "") -> int:
    """Remove the entries of ``directory`` (whose names start with ``prefix``) that no live
    writer holds; returns how many were removed."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    removed = 0
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
            if not is_dir and not entry.is_file(follow_symlinks=False):
                continue
            flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if is_dir else 0)
            fd = os.open(entry.path, flags)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            held = os.fstat(fd)
            try:
                now = os.stat(entry.path, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
                continue  # renamed away and the name reused meanwhile
            if stat.S_ISDIR(now.st_mode):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
            removed += 1
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed
