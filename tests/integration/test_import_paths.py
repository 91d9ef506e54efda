"""Paths a caller names, on every management API call that reads one (models, adapters,
datasets, knowledge-base documents): a NUL byte is a 400 naming the field, a FIFO or a device
inside an import folder is refused at once (never read, never blocking a worker thread), a
missing path is a 404, and no answer names an absolute path of the server. The same through
the services the CLI calls. The unreadable-file half, which needs a server that is not root,
is in test_unreadable_imports.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from plinth.errors import ErrorCode, PlinthError
from tests.support.import_paths import (
    KINDS,
    PARAM,
    SUFFIX,
    assert_no_server_path,
    ensure_kb,
    error_of,
    failed_documents,
    import_file,
    server_folders,
)
from tests.support.live_server import LiveServer


@pytest.fixture(scope="module")
def imports(live_server: LiveServer) -> Path:
    folder = live_server.home / "imports" / "paths-class"
    folder.mkdir(parents=True, exist_ok=True)
    ensure_kb(live_server)
    return folder


@pytest.mark.parametrize("kind", KINDS)
def test_a_nul_byte_is_a_400_naming_the_field(live_server: LiveServer, imports: Path, kind: str) -> None:
    r = import_file(live_server, kind, str(imports / f"a\x00b{SUFFIX[kind]}"))
    err = error_of(r, 400, "invalid_request")
    assert err["param"] == PARAM[kind] and "NUL" in err["message"]
    assert_no_server_path(r.text, server_folders(live_server))


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_path_is_a_404_without_server_paths(live_server: LiveServer, imports: Path, kind: str) -> None:
    r = import_file(live_server, kind, str(imports / f"missing{SUFFIX[kind]}"))
    err = error_of(r, 404, "not_found")
    assert "does not exist or cannot be read" in err["message"]
    assert f"$PLINTH_HOME/imports/paths-class/missing{SUFFIX[kind]}" in err["message"]  # named by its setting
    assert_no_server_path(r.text, server_folders(live_server))


@pytest.mark.parametrize("kind", KINDS)
def test_a_fifo_in_an_import_folder_is_refused_without_blocking(live_server: LiveServer, imports: Path, kind: str) -> None:
    fifo = imports / f"pipe-{kind}{SUFFIX[kind]}"
    if not fifo.exists():
        os.mkfifo(fifo)
    r = import_file(live_server, kind, str(fifo), timeout=30)  # blocking would time out here
    assert r.status_code in (400, 415), r.text
    assert "not a regular file" in r.json()["error"]["message"]
    assert_no_server_path(r.text, server_folders(live_server))
    # inside a folder, the FIFO fails alone and the other documents are added
    if kind == "kb":
        folder = imports / "with-fifo"
        folder.mkdir(exist_ok=True)
        (folder / "ok.md").write_text("# Fine\n\nA readable document about deductibles.\n")
        if not (folder / "pipe.md").exists():
            os.mkfifo(folder / "pipe.md")
        failed = failed_documents(import_file(live_server, kind, str(folder), timeout=60))
        assert set(failed) == {"pipe.md"} and "FIFO" in failed["pipe.md"]
    assert httpx.get(f"{live_server.url}/readyz", timeout=10).status_code == 200


@pytest.mark.parametrize("kind", KINDS)
def test_a_device_in_an_import_folder_is_never_read(live_server: LiveServer, imports: Path, kind: str) -> None:
    """A /dev/zero node inside an import folder (made with mknod) is refused before reading;
    a symlink to /dev/zero leads outside the import folders (403)."""
    link = imports / f"zero-link-{kind}{SUFFIX[kind]}"
    if not link.is_symlink():
        link.symlink_to("/dev/zero")
    r = import_file(live_server, kind, str(link), timeout=30)
    error_of(r, 403, "permission_denied")
    node = imports / f"zero-{kind}{SUFFIX[kind]}"
    if not node.exists():
        try:
            os.mknod(node, stat.S_IFCHR | 0o444, os.makedev(1, 5))
        except PermissionError:
            pytest.skip("mknod is not permitted here (no CAP_MKNOD): the device node case cannot be made")
    r = import_file(live_server, kind, str(node), timeout=30)
    assert r.status_code in (400, 415), r.text
    assert "not a regular file" in r.json()["error"]["message"]
    assert_no_server_path(r.text, server_folders(live_server))


@pytest.mark.parametrize("kind", KINDS)
def test_the_403_names_the_import_folders_by_setting(live_server: LiveServer, tmp_path: Path, kind: str) -> None:
    outside = tmp_path / f"outside{SUFFIX[kind]}"
    outside.write_bytes(b"x")
    r = import_file(live_server, kind, str(outside))
    err = error_of(r, 403, "permission_denied")
    assert err["param"] == PARAM[kind]
    assert "outside the allowed import directories" in err["message"]
    assert "$PLINTH_HOME/imports" in err["message"] and "PLINTH_IMPORT_DIRS" in err["message"]
    for folder in server_folders(live_server):
        assert folder not in r.text
    # a path climbing out of an import folder is named without the server's folders
    r = import_file(live_server, kind, str(live_server.home / "imports" / ".." / "plinth.db"))
    error_of(r, 403, "permission_denied")
    assert "$PLINTH_HOME/imports/../plinth.db" in r.text
    assert_no_server_path(r.text, server_folders(live_server))


def test_damaged_files_are_named_without_server_paths(live_server: LiveServer, imports: Path) -> None:
    bad = imports / "damaged.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 7)
    for kind in ("model", "adapter"):
        r = import_file(live_server, kind, str(bad))
        assert r.status_code == 422, r.text
        assert "damaged.gguf" in r.text
        assert_no_server_path(r.text, server_folders(live_server))


# -- the services the CLI calls ------------------------------------------------------------------
@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from plinth.config import load_settings
    from plinth.services import build_services

    s = build_services(load_settings(home=tmp_path_factory.mktemp("cli-paths-home")))
    yield s
    s.close()


def test_the_cli_services_refuse_nul_bytes_with_the_field(services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A command line argument cannot hold a NUL byte, but the services behind the CLI (and job
    specs) can be given one: each answers invalid_request naming the field."""
    from plinth.rag.ingest import collect_paths

    bad = tmp_path / "a\x00b"
    for call in (
        lambda: services.catalog.add(bad),
        lambda: services.catalog.inspect(bad),
        lambda: services.datasets.add(bad, "d"),
        lambda: services.artifacts.put_file(bad),
        lambda: services.artifacts.put_tree(bad),
    ):
        with pytest.raises(PlinthError) as info:
            call()
        assert info.value.code is ErrorCode.INVALID_REQUEST and info.value.param == "path", info.value.message
    (src,) = collect_paths([bad], 1000)
    assert src.error is not None and "NUL" in src.error


def test_the_cli_refuses_special_files_at_once(tmp_path: Path) -> None:
    """``plinth kb add`` and ``plinth datasets add`` on a FIFO answer at once, in one error line."""
    import subprocess
    import sys

    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update(PLINTH_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "plinth", "datasets", "add", str(fifo), "--name", "d"], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "FIFO" in proc.stderr and "not a regular file" in proc.stderr
