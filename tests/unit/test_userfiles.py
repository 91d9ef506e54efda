"""Files a caller names (plinth.userfiles): NUL bytes, special files, races, limits, and
missing looking exactly like unreadable. Real files, FIFOs, sockets and devices; the
unreadable case runs the reading code as the user ``nobody`` (root reads any file)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plinth.errors import ErrorCode, PlinthError
from plinth.userfiles import check_path_text, check_user_dir, open_user_file, read_user_file, user_stat
from tests.support.as_user import AS_NOBODY, nobody_can_run_plinth

#: generous: a call that blocks fails the test instead of hanging the run
NEVER_BLOCKS_S = 30


def returns_promptly(fn: Callable[[], object]) -> object:
    """Run ``fn`` on a thread; fail if it has not returned within NEVER_BLOCKS_S."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(NEVER_BLOCKS_S)
    assert not t.is_alive(), "the call blocked"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


def refused(fn: Callable[[], object], code: ErrorCode) -> PlinthError:
    with pytest.raises(PlinthError) as info:
        returns_promptly(fn)
    assert info.value.code is code, info.value.message
    return info.value


# -- NUL bytes ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda p: open_user_file(p, param="path"),
        lambda p: user_stat(p, param="path"),
        lambda p: check_user_dir(p, param="path"),
        lambda p: check_path_text(p, "path"),
    ],
)
def test_a_nul_byte_is_a_400_naming_the_field(tmp_path: Path, call: Callable[[str], object]) -> None:
    err = refused(lambda: call(str(tmp_path / "a\x00b")), ErrorCode.INVALID_REQUEST)
    assert err.http_status == 400 and err.param == "path" and "NUL" in err.message


# -- special files are refused without blocking -----------------------------------------------------
@pytest.fixture
def specials(tmp_path: Path) -> Iterator[dict[str, Path]]:
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    sock_path = Path(tempfile.mkdtemp(prefix="plinth-sock-")) / "s.md"  # AF_UNIX paths are short
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    sock.listen()
    zero_link = tmp_path / "zero.md"
    zero_link.symlink_to("/dev/zero")
    (tmp_path / "folder.md").mkdir()
    try:
        yield {"fifo": fifo, "socket": sock_path, "device": Path("/dev/zero"), "device link": zero_link, "dir": tmp_path / "folder.md"}
    finally:
        sock.close()
        shutil.rmtree(sock_path.parent, ignore_errors=True)


@pytest.mark.parametrize("kind", ["fifo", "socket", "device", "device link", "dir"])
def test_special_files_are_refused_without_blocking_or_reading(specials: dict[str, Path], kind: str) -> None:
    err = refused(lambda: read_user_file(specials[kind]), ErrorCode.INVALID_REQUEST)
    assert "not a regular file" in err.message


def test_a_fifo_swapped_in_after_the_check_never_blocks(tmp_path: Path) -> None:
    """The path flips between a regular file and a FIFO while it is opened again and again:
    every open either reads the file or refuses the FIFO (fstat on the opened descriptor),
    none blocks in open() or read()."""
    target = tmp_path / "doc.md"
    regular, fifo = tmp_path / "regular", tmp_path / "fifo"
    target.write_bytes(b"hello")
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            regular.write_bytes(b"hello")
            os.replace(regular, target)
            os.mkfifo(fifo)
            os.replace(fifo, target)

    flipper = threading.Thread(target=flip, daemon=True)
    flipper.start()
    outcomes = {"read": 0, "refused": 0, "gone": 0}
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                data = returns_promptly(lambda: read_user_file(target))
            except PlinthError as e:
                outcomes["gone" if e.code is ErrorCode.NOT_FOUND else "refused"] += 1
                assert e.code in (ErrorCode.INVALID_REQUEST, ErrorCode.NOT_FOUND), e.message
            else:
                assert data == b"hello"
                outcomes["read"] += 1
    finally:
        stop.set()
        flipper.join(10)
    assert outcomes["read"] + outcomes["refused"] > 0, outcomes


# -- limits ---------------------------------------------------------------------------------
def test_reads_are_bounded_in_size(tmp_path: Path) -> None:
    f = tmp_path / "big.txt"
    f.write_bytes(b"x" * 10_000)
    err = refused(lambda: read_user_file(f, max_bytes=100, limit_setting="PLINTH_X"), ErrorCode.PAYLOAD_TOO_LARGE)
    assert "PLINTH_X" in err.message and err.http_status == 413
    assert read_user_file(f, max_bytes=10_000) == b"x" * 10_000


def test_a_file_that_grows_past_the_limit_while_read_is_cut_off(tmp_path: Path) -> None:
    f = tmp_path / "growing.txt"
    f.write_bytes(b"x" * 50)
    with open_user_file(f, max_bytes=100) as fh:
        with open(f, "ab") as w:
            w.write(b"y" * 1000)
        with pytest.raises(PlinthError) as info:
            fh.read()
    assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE


def test_reads_are_bounded_in_time(tmp_path: Path) -> None:
    f = tmp_path / "slow.txt"
    f.write_bytes(b"x" * 1000)
    with open_user_file(f, timeout_s=0.05) as fh:
        assert fh.read(10) == b"x" * 10  # within the deadline
        time.sleep(0.2)
        with pytest.raises(PlinthError) as info:
            fh.read()
    assert "took longer than" in info.value.message


def test_the_default_deadline_grows_with_the_size(tmp_path: Path) -> None:
    from plinth.userfiles import MIN_READ_RATE, READ_GRACE_S

    f = tmp_path / "f"
    f.write_bytes(b"x" * 4096)
    with open_user_file(f) as fh:
        assert fh.raw._timeout_s == pytest.approx(READ_GRACE_S + 4096 / MIN_READ_RATE)  # type: ignore[attr-defined]


def test_the_opened_file_reads_like_a_file(tmp_path: Path) -> None:
    f = tmp_path / "lines.jsonl"
    f.write_bytes(b'{"a": 1}\n{"b": 2}\n')
    with open_user_file(f) as fh:
        assert [json.loads(line) for line in fh] == [{"a": 1}, {"b": 2}]
        fh.seek(0)
        assert fh.read(4) == b'{"a"'


# -- missing and unreadable look the same ----------------------------------------------------------
def test_missing_paths_are_one_404(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    for missing in (tmp_path / "nope", tmp_path / "file" / "below", tmp_path / "nope" / "deeper"):
        err = refused(lambda m=missing: read_user_file(m, display="doc.md", what="document"), ErrorCode.NOT_FOUND)
        assert err.message == "document 'doc.md' does not exist or cannot be read by the server"


PROBE = """
import json, sys
from plinth.errors import PlinthError
from plinth.userfiles import check_user_dir, read_user_file, user_stat
out = {}
for name in sys.argv[1:]:
    kind, path = name.split("=", 1)
    try:
        if kind == "dir":
            user_stat(path, display="x", what="path")
            check_user_dir(path, display="x", what="path")
        else:
            read_user_file(path, display="x", what="path")
        out[name] = "read"
    except PlinthError as e:
        out[name] = [e.code.value, e.message, e.details]
print(json.dumps(out))
"""


def test_unreadable_looks_exactly_like_missing_to_another_user() -> None:
    """As root every file is readable, so the reading code runs as ``nobody``: a file it may not
    read, a file in a folder it may not enter, and a folder it may not list all give the
    answer a missing path gives, word for word."""
    why = nobody_can_run_plinth()
    if why is not None:
        pytest.skip(why)
    root = Path(tempfile.mkdtemp(prefix="plinth-unreadable-"))
    try:
        os.chmod(root, 0o755)
        (root / "secret.md").write_bytes(b"secret")
        os.chmod(root / "secret.md", 0o600)
        (root / "locked").mkdir(mode=0o700)
        (root / "locked" / "inside.md").write_bytes(b"x")
        (root / "unlistable").mkdir(mode=0o711)
        (root / "open.md").write_bytes(b"open")
        os.chmod(root / "open.md", 0o644)
        args = [
            f"file={root / 'secret.md'}",
            f"file={root / 'locked' / 'inside.md'}",
            f"dir={root / 'locked'}",
            f"dir={root / 'unlistable'}",
            f"file={root / 'missing.md'}",
            f"dir={root / 'missing-dir'}",
            f"file={root / 'open.md'}",
        ]
        proc = subprocess.run(
            [*AS_NOBODY, sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60, cwd=tempfile.gettempdir()
        )
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out.pop(f"file={root / 'open.md'}") == "read"  # the probe really reads as nobody
        missing = out[f"file={root / 'missing.md'}"]
        assert missing[0] == "not_found"
        assert all(answer == missing for answer in out.values()), out
    finally:
        shutil.rmtree(root, ignore_errors=True)
