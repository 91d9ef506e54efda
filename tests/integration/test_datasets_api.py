"""Datasets through the live server: upload, server-path import, versions, rows, diff, errors."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.live_server import LiveServer

FAQ = Path(__file__).resolve().parents[2] / "examples" / "acme-health" / "faq.jsonl"


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    return body["error"]


@pytest.fixture(scope="module")
def api(live_server: LiveServer) -> str:
    return live_server.url + "/api/v1"


def test_upload_versions_rows_and_diff(api: str) -> None:
    data = FAQ.read_bytes()
    r = httpx.post(
        f"{api}/datasets/acme-api/versions",
        content=data,
        params={"filename": "faq.jsonl", "note": "first"},
        headers={"content-type": "application/x-ndjson"},
    )
    assert r.status_code == 201, r.text
    v1 = r.json()
    assert v1["ref"] == "acme-api@1" and v1["created"] and v1["rows"] == 303 and v1["validation_rows"] == 30
    assert v1["stats"]["tokens"]["total"] > 10_000 and v1["stats"]["tokenizer"]["model"] == "smollm2-135m-instruct"
    assert v1["source"]["name"] == "faq.jsonl" and r.headers["location"] == "/api/v1/datasets/acme-api/versions/1"
    same = httpx.post(f"{api}/datasets/acme-api/versions", content=data, params={"filename": "faq.jsonl"})
    assert same.status_code == 200 and same.json()["created"] is False and same.json()["version"] == 1
    lines = data.decode().splitlines()
    edited = "\n".join(lines[:-3] + lines[-2:]) + "\n"  # one row removed
    v2 = httpx.post(f"{api}/datasets/acme-api/versions", content=edited.encode(), params={"filename": "faq-2.jsonl"}).json()
    assert v2["version"] == 2 and v2["rows"] == 302
    d = httpx.get(f"{api}/datasets/acme-api/diff", params={"from": "1", "to": "2"}).json()
    assert (d["removed"], d["added"], d["unchanged"]) == (1, 0, 302) and d["from"] == "acme-api@1"
    rows = httpx.get(f"{api}/datasets/acme-api/versions/latest/rows", params={"split": "validation", "limit": 5}).json()
    assert rows["ref"] == "acme-api@2" and rows["total"] == v2["validation_rows"] and len(rows["rows"]) == 5
    assert all(set(row) == {"messages"} for row in rows["rows"])
    ds = httpx.get(f"{api}/datasets/acme-api").json()
    assert ds["latest_version"] == 2 and [v["version"] for v in ds["versions"]] == [1, 2]
    listed = {d["name"]: d for d in httpx.get(f"{api}/datasets").json()["datasets"]}
    assert listed["acme-api"]["latest"]["ref"] == "acme-api@2"


def test_bad_uploads(api: str, live_server: LiveServer) -> None:
    bad = b'{"messages": [{"role": "user", "content": "q"}]}\n{"prompt": 1, "completion": "c"}\n'
    e = _error(httpx.post(f"{api}/datasets/bad/versions", content=bad, params={"filename": "bad.jsonl"}), 400, "invalid_request")
    assert [p["line"] for p in e["details"]["problems"]] == [1, 2]
    _error(httpx.post(f"{api}/datasets/bad/versions", content=b"", params={"filename": "x.jsonl"}), 400, "invalid_request")
    _error(httpx.post(f"{api}/datasets/bad%20name/versions", content=FAQ.read_bytes()), 400, "invalid_request")
    too_big = b'{"prompt": "p", "completion": "' + b"x" * (300 * 1024) + b'"}\n'
    _error(httpx.post(f"{api}/datasets/big/versions", content=too_big), 413, "payload_too_large")
    _error(httpx.post(f"{api}/datasets/x/versions", content=b"a,b\n1,2\n", params={"filename": "x.csv"}), 400, "invalid_request")
    _error(httpx.post(f"{api}/datasets/x/versions", content=b"\x00\x01", params={"filename": "x.bin"}), 415, "unsupported_format")
    _error(httpx.get(f"{api}/datasets/nope"), 404, "not_found")
    _error(httpx.get(f"{api}/datasets/bad/versions/zero"), 400, "invalid_request")
    _error(httpx.get(f"{api}/datasets/nope/diff", params={"from": "1"}), 404, "not_found")
    assert "bad" not in {d["name"] for d in httpx.get(f"{api}/datasets").json()["datasets"]}


def test_import_from_server_directories_only(api: str, live_server: LiveServer, tmp_path: Path) -> None:
    outside = tmp_path / "faq.jsonl"
    shutil.copy(FAQ, outside)
    e = _error(httpx.post(f"{api}/datasets", json={"name": "imp", "path": str(outside)}), 403, "permission_denied")
    assert "outside the allowed import directories" in e["message"]
    imports = live_server.home / "imports"
    imports.mkdir(exist_ok=True)
    shutil.copy(FAQ, imports / "faq.jsonl")
    r = httpx.post(f"{api}/datasets", json={"name": "imp", "path": str(imports / "faq.jsonl"), "validation_fraction": 0.2, "seed": 3})
    assert r.status_code == 201, r.text
    assert r.json()["validation_rows"] == 61 and r.json()["split"]["seed"] == 3
    _error(httpx.post(f"{api}/datasets", json={"name": "imp", "path": str(imports / "../../etc/passwd")}), 403, "permission_denied")
    _error(httpx.post(f"{api}/datasets", json={"name": "imp", "path": str(imports / "missing.jsonl")}), 404, "not_found")
    assert httpx.delete(f"{api}/datasets/imp").status_code == 204
    _error(httpx.get(f"{api}/datasets/imp"), 404, "not_found")
