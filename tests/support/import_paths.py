"""The four management API calls that read a file named by the caller, for tests of the whole
class: model import, adapter import, dataset import, knowledge-base documents from paths."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import httpx

from tests.support.live_server import MODEL, LiveServer

KINDS = ("model", "adapter", "dataset", "kb")
#: the request field each call names in its errors
PARAM = {"model": "path", "adapter": "path", "dataset": "path", "kb": "paths.0"}
#: a file name of each kind (the suffix decides how the server reads it)
SUFFIX = {"model": ".gguf", "adapter": ".gguf", "dataset": ".jsonl", "kb": ".md"}
KB_NAME = "import-paths"


def ensure_kb(server: LiveServer) -> None:
    r = httpx.post(f"{server.url}/api/v1/knowledge-bases", json={"name": KB_NAME}, timeout=120)
    assert r.status_code in (201, 409), r.text


def import_file(server: LiveServer, kind: str, path: str, timeout: float = 60) -> httpx.Response:
    """The import call of ``kind`` for ``path`` (a timeout fails the test instead of hanging it)."""
    api = f"{server.url}/api/v1"
    if kind == "model":
        return httpx.post(f"{api}/models", json={"path": path, "name": "imported"}, timeout=timeout)
    if kind == "adapter":
        return httpx.post(f"{api}/models/{MODEL}/adapters", json={"path": path, "name": "imported"}, timeout=timeout)
    if kind == "dataset":
        return httpx.post(f"{api}/datasets", json={"name": "imported", "path": path}, timeout=timeout)
    assert kind == "kb"
    return httpx.post(f"{api}/knowledge-bases/{KB_NAME}/documents", json={"paths": [path]}, timeout=timeout)


def error_of(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, f"{r.status_code} {r.text}"
    err = r.json()["error"]
    assert err["code"] == code, r.text
    return err


def failed_documents(r: httpx.Response) -> dict[str, str]:
    """A knowledge-base ingest report's failed files: name -> reason."""
    assert r.status_code == 200, r.text
    return {f["name"]: f["error"] for f in r.json()["files"] if f["outcome"] == "failed"}


def server_folders(server: LiveServer, *more: Path) -> list[str]:
    """Absolute paths of the server that must never appear in an answer."""
    found = set()
    for p in (server.home, server.home / "imports", server.home / "artifacts", *more):
        found.add(str(p))
        found.add(os.path.realpath(p))
    return sorted(found, key=len, reverse=True)


ABSOLUTE_PATH = re.compile(r"(?<![\w$.\]])/(?:[\w.-]+/)+[\w.-]*")


def assert_no_server_path(text: str, folders: list[str]) -> None:
    for folder in folders:
        assert folder not in text, f"{folder!r} appears in {text!r}"
    assert not ABSOLUTE_PATH.search(text), f"an absolute path appears in {text!r}"
