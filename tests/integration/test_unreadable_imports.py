"""A file the server cannot read looks exactly like a missing one (404, same message), on every
import call, and no answer names an absolute server path.

Root reads any file whatever its mode, so this module starts its own live server as the user
``nobody`` (``setpriv``), with a PLINTH_HOME that user owns; the files it must not read are
root's, mode 0600, or inside a root folder of mode 0700. Where that cannot run (not root, no
setpriv) the module is skipped with the reason, and the property is still checked by
tests/unit/test_userfiles.py's probe and by test_import_paths.py (missing paths)."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.as_user import AS_NOBODY, nobody_can_run_plinth
from tests.support.import_paths import (
    KINDS,
    SUFFIX,
    assert_no_server_path,
    ensure_kb,
    error_of,
    failed_documents,
    import_file,
    server_folders,
)
from tests.support.live_server import LiveServer, start_server, stop_server


@pytest.fixture(scope="module")
def nobody_server() -> Iterator[LiveServer]:
    why = nobody_can_run_plinth()
    if why is not None:
        pytest.skip(why)
    base = Path(tempfile.mkdtemp(prefix="plinth-nobody-"))  # not under pytest's 0700 folders
    os.chmod(base, 0o755)
    home = base / "home"
    imports = home / "imports"
    imports.mkdir(parents=True)
    nobody = pwd.getpwnam("nobody")
    for p in (home, imports):
        os.chown(p, nobody.pw_uid, nobody.pw_gid)
    # what nobody may not read: root's files of mode 0600, a root folder of mode 0700
    locked = imports / "locked"
    locked.mkdir(mode=0o700)
    for kind in KINDS:
        for f in (imports / f"secret-{kind}{SUFFIX[kind]}", locked / f"inside-{kind}{SUFFIX[kind]}"):
            f.write_bytes(b"GGUF" if kind in ("model", "adapter") else b'{"prompt": "a", "completion": "b"}\n')
            os.chmod(f, 0o600)
    # a folder nobody can list, holding one readable and one unreadable document
    mixed = imports / "mixed"
    mixed.mkdir(mode=0o755)
    (mixed / "readable.md").write_text("# Deductibles\n\nThe Gold plan deductible is $500 per year.\n")
    (mixed / "secret.md").write_text("# Secret\n\nroot only\n")
    os.chmod(mixed / "readable.md", 0o644)
    os.chmod(mixed / "secret.md", 0o600)
    server = start_server(
        home,
        command_prefix=AS_NOBODY,
        log=base / "server.log",  # root's, outside the server's home
        HOME=str(home),
        PLINTH_PRELOAD_DEFAULT_MODEL="false",
        PLINTH_JOBS_LOCAL_WORKER="false",
    )
    try:
        ensure_kb(server)
        yield server
    finally:
        stop_server(server)
        log = server.log_text()
        shutil.rmtree(base, ignore_errors=True)
        assert "Traceback" not in log, f"the server logged a traceback:\n{log[-5000:]}"


def test_the_server_really_runs_as_nobody(nobody_server: LiveServer) -> None:
    assert os.stat(f"/proc/{nobody_server.proc.pid}").st_uid == pwd.getpwnam("nobody").pw_uid


@pytest.mark.parametrize("kind", KINDS)
def test_unreadable_and_missing_get_the_same_404(nobody_server: LiveServer, kind: str) -> None:
    imports = nobody_server.home / "imports"
    name = f"{kind}{SUFFIX[kind]}"
    cases = {
        "missing": f"missing-{name}",
        "unreadable": f"secret-{name}",
        "in a folder it cannot enter": f"locked/inside-{name}",
        "missing in a folder it cannot enter": f"locked/nothing-{name}",
        "a folder it cannot read": "locked",
        "a missing folder": "absent",
    }
    shapes = {}
    for case, rel in cases.items():
        r = import_file(nobody_server, kind, str(imports / rel))
        err = error_of(r, 404, "not_found")
        assert "does not exist or cannot be read by the server" in err["message"], case
        assert_no_server_path(r.text, server_folders(nobody_server))
        shapes[case] = r.text.replace(f"/{rel}", "/NAME")  # the same answer apart from the name given
    assert len(set(shapes.values())) == 1, shapes


def test_a_folder_the_server_cannot_list_looks_missing(nobody_server: LiveServer) -> None:
    imports = nobody_server.home / "imports"
    locked = error_of(import_file(nobody_server, "kb", str(imports / "locked")), 404, "not_found")
    missing = error_of(import_file(nobody_server, "kb", str(imports / "gone")), 404, "not_found")
    assert locked["message"].replace("locked", "X") == missing["message"].replace("gone", "X")


def test_an_unreadable_file_in_a_readable_folder_fails_alone(nobody_server: LiveServer) -> None:
    r = import_file(nobody_server, "kb", str(nobody_server.home / "imports" / "mixed"), timeout=300)
    assert failed_documents(r) == {"secret.md": "document 'secret.md' does not exist or cannot be read by the server"}
    assert {f["name"]: f["outcome"] for f in r.json()["files"]}["readable.md"] == "added"
    assert_no_server_path(r.text, server_folders(nobody_server))
    assert httpx.get(f"{nobody_server.url}/readyz", timeout=10).status_code == 200
