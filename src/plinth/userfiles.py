"""Opening files a caller named: nothing blocks, reads are bounded, missing looks like unreadable.

Every place that opens a path a user gave (model, adapter and dataset imports, knowledge-base
documents and their archives) goes through :func:`open_user_file`:

1. the path text is checked: a NUL byte is a 400 naming the field, never a ``ValueError``;
2. ``stat`` must say "regular file": FIFOs, character devices (``/dev/zero``), sockets and
   block devices are refused before anything is opened (and something the server may not
   read is answered as missing before its type is told);
3. the file is opened ``O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC``, so a FIFO swapped in
   after the ``stat`` cannot block the ``open``, and ``fstat`` on the opened descriptor must
   again say "regular file" (race-free: that descriptor is what is read);
4. ``O_NONBLOCK`` is cleared and every read is bounded in size (``max_bytes``) and in time (a
   deadline, by default :data:`READ_GRACE_S` plus the size at :data:`MIN_READ_RATE`).

A path that does not exist, that the server may not read (``EACCES``, ``EPERM``), whose
parent is not a directory, or that loops, gives the same ``not_found`` error with the same
message, so no answer tells a caller that a file exists which the server cannot read.

This module imports nothing of plinth's own except :mod:`plinth.errors`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import stat
import time
from collections.abc import Iterator
from typing import Any

from plinth.errors import ErrorCode, PlinthError

__all__ = [
    "MIN_READ_RATE",
    "READ_GRACE_S",
    "check_path_text",
    "check_user_dir",
    "mapped_os_errors",
    "missing_or_unreadable",
    "open_user_file",
    "read_user_file",
    "user_stat",
]

#: Time every read of a user file gets before the rate below applies (seconds).
READ_GRACE_S = 60.0
#: Slowest average read rate accepted after the grace time (bytes per second).
MIN_READ_RATE = 1024 * 1024

#: errno values that mean "absent or not ours to read": all answered the same way.
_HIDDEN_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.ELOOP, errno.ENAMETOOLONG, errno.ENXIO})

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_path_text(raw: str | os.PathLike[str], param: str | None = "path") -> str:
    """The path as text; PlinthError(INVALID_REQUEST, naming ``param``) if it holds a NUL byte or is empty."""
    text = os.fspath(raw)
    if not isinstance(text, str):  # pragma: no cover - bytes paths are never given
        text = os.fsdecode(text)
    field = param or "path"
    if "\x00" in text:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{field} must not contain a NUL byte", param=param)
    if not text:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{field} must not be empty", param=param)
    return text


def missing_or_unreadable(display: str, what: str = "file", param: str | None = None) -> PlinthError:
    """The one answer for a path that is absent or that the server may not read."""
    return PlinthError(
        ErrorCode.NOT_FOUND,
        f"{what} {display!r} does not exist or cannot be read by the server",
        param=param,
        details={"kind": what, "name": display},
    )


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _not_regular(display: str, mode: int, what: str, param: str | None) -> PlinthError:
    return PlinthError(
        ErrorCode.INVALID_REQUEST,
        f"{what} {display!r} is {_kind(mode)}, not a regular file; only regular files are read",
        param=param,
        details={"kind": what, "name": display},
    )


def _hidden(exc: OSError) -> bool:
    return exc.errno in _HIDDEN_ERRNOS


@contextlib.contextmanager
def mapped_os_errors(display: str, what: str = "file", param: str | None = None) -> Iterator[None]:
    """Inside, an ``OSError`` meaning "absent or not readable" becomes :func:`missing_or_unreadable`."""
    try:
        yield
    except OSError as exc:
        if _hidden(exc):
            raise missing_or_unreadable(display, what, param) from None
        raise


def user_stat(
    path: str | os.PathLike[str], *, display: str | None = None, what: str = "file", param: str | None = "path"
) -> os.stat_result:
    """``os.stat`` of a user path (symlinks followed) with the path text checked and errors mapped.

    Something the server may not read is answered as missing even when ``stat`` works, so
    neither its existence nor its type (a directory, a FIFO) shows.
    """
    text = check_path_text(path, param)
    shown = text if display is None else display
    with mapped_os_errors(shown, what, param):
        st = os.stat(text)
        if not os.access(text, os.R_OK):
            raise PermissionError(errno.EACCES, "not readable")
        return st


def check_user_dir(
    path: str | os.PathLike[str], *, display: str | None = None, what: str = "directory", param: str | None = "path"
) -> None:
    """PlinthError unless ``path`` is a directory the server can list and enter.

    Read permission alone lets ``listdir`` work while every ``stat`` inside fails; search
    permission alone hides the names. Both are needed, and lacking either looks like absence.
    """
    text = check_path_text(path, param)
    shown = text if display is None else display
    with mapped_os_errors(shown, what, param):
        fd = os.open(text, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            os.listdir(fd)
            if not os.access(text, os.X_OK):
                raise PermissionError(errno.EACCES, "not searchable")
        finally:
            os.close(fd)


class _BoundedFileIO(io.FileIO):
    """A file descriptor read with a byte limit and a deadline, checked on every read."""

    def __init__(self, fd: int, display: str, max_bytes: int | None, timeout_s: float) -> None:
        super().__init__(fd, "rb", closefd=True)
        self._display = display
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._deadline = time.monotonic() + timeout_s

    def _before(self) -> None:
        if time.monotonic() > self._deadline:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"reading {self._display!r} took longer than {self._timeout_s:.0f} s; "
                "the server reads only files on a responsive filesystem",
                details={"name": self._display, "timeout_s": round(self._timeout_s, 1)},
            )

    def _after(self) -> None:
        if self._max_bytes is not None and self.tell() > self._max_bytes:
            raise PlinthError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"{self._display!r} is larger than the limit of {self._max_bytes} bytes (it may have grown while being read)",
                details={"name": self._display, "limit_bytes": self._max_bytes},
            )

    def readinto(self, buffer: Any) -> int | None:
        self._before()
        n = super().readinto(buffer)
        self._after()
        return n

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0:
            return self.readall()
        self._before()
        data = super().read(size) or b""  # None only for a non-blocking descriptor: this one blocks
        self._after()
        return data

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(1024 * 1024):
            chunks.append(chunk)
        return b"".join(chunks)


def open_user_file(
    path: str | os.PathLike[str],
    *,
    display: str | None = None,
    what: str = "file",
    param: str | None = "path",
    max_bytes: int | None = None,
    limit_setting: str | None = None,
    timeout_s: float | None = None,
) -> io.BufferedReader:
    """Open a regular file a user named, for bounded binary reading (see the module docstring).

    ``display`` is how messages name the file (default: the path as given); ``max_bytes``
    bounds what can be read (PAYLOAD_TOO_LARGE past it; ``limit_setting`` names the setting
    behind the limit in the message), ``timeout_s`` how long reading may
    take (default: :data:`READ_GRACE_S` + size / :data:`MIN_READ_RATE`). The file's size at
    open is ``os.fstat(f.fileno()).st_size``.
    """
    text = check_path_text(path, param)
    shown = text if display is None else display
    st = user_stat(text, display=shown, what=what, param=param)
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(shown, st.st_mode, what, param)
    with mapped_os_errors(shown, what, param):
        fd = os.open(text, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced between the stat and the open
            raise _not_regular(shown, st.st_mode, what, param)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        if max_bytes is not None and st.st_size > max_bytes:
            raise PlinthError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"{what} {shown!r} is {st.st_size} bytes, over the limit of {max_bytes}" + (f" ({limit_setting})" if limit_setting else ""),
                param=param,
                details={"name": shown, "size_bytes": st.st_size, "limit_bytes": max_bytes},
            )
        if timeout_s is None:
            timeout_s = READ_GRACE_S + st.st_size / MIN_READ_RATE
        raw = _BoundedFileIO(fd, shown, max_bytes, timeout_s)
    except BaseException:
        os.close(fd)
        raise
    return io.BufferedReader(raw, buffer_size=64 * 1024)


def read_user_file(path: str | os.PathLike[str], **options: Any) -> bytes:
    """The whole file, through :func:`open_user_file` (same options)."""
    with open_user_file(path, **options) as f:
        return f.read()
