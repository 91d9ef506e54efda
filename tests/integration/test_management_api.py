"""The management API (/api/v1/models) and the torch and openai runtimes through a live server."""

from __future__ import annotations

import shutil

import httpx
import pytest

from tests.support.live_server import MODEL, LiveServer


def _canonical_error(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"]) <= {"code", "message", "param", "details"}
    assert body["error"]["code"] == code
    return body["error"]


def test_list_and_show(live_server: LiveServer) -> None:
    models = httpx.get(live_server.url + "/api/v1/models").json()["models"]
    smol = next(m for m in models if m["name"] == MODEL)
    assert smol["builtin"] is True and smol["format"] == "gguf" and smol["runtime"] == "llamacpp"
    assert smol["digest"].startswith("sha256:") and smol["architecture"] == "llama"
    assert smol["license"].lower() == "apache-2.0" and smol["context_length"] == 8192
    assert smol["loaded"] is True
    one = httpx.get(live_server.url + f"/api/v1/models/{MODEL}").json()
    assert one["digest"] == smol["digest"]
    _canonical_error(httpx.get(live_server.url + "/api/v1/models/nope"), 404, "model_not_found")


def test_runtimes_are_listed(live_server: LiveServer) -> None:
    runtimes = {r["name"]: r for r in httpx.get(live_server.url + "/api/v1/runtimes").json()["runtimes"]}
    assert set(runtimes) >= {"llamacpp", "torch", "openai"}
    assert runtimes["llamacpp"]["available"] is True


def test_import_refuses_paths_outside_import_dirs(live_server: LiveServer, tmp_path) -> None:
    for path in ("/etc/passwd", str(live_server.home / "imports" / ".." / "plinth.db")):
        err = _canonical_error(
            httpx.post(live_server.url + "/api/v1/models", json={"path": path, "name": "evil"}), 403, "permission_denied"
        )
        assert "outside the allowed import directories" in err["message"]
    _canonical_error(httpx.post(live_server.url + "/api/v1/models", json={"name": "x"}), 400, "invalid_request")
    _canonical_error(httpx.post(live_server.url + "/api/v1/models", json={"path": "a", "bogus": 1}), 400, "invalid_request")


def test_malformed_model_import_is_refused_and_nothing_is_lost(live_server: LiveServer) -> None:
    imports = live_server.home / "imports"
    imports.mkdir(exist_ok=True)
    (imports / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 7)
    (imports / "weights.bin").write_bytes(b"\x80\x04pickle")
    before = httpx.get(live_server.url + "/api/v1/models").json()["models"]
    err = _canonical_error(
        httpx.post(live_server.url + "/api/v1/models", json={"path": str(imports / "broken.gguf")}), 422, "invalid_model_file"
    )
    assert "broken.gguf" in err["message"]
    err = _canonical_error(
        httpx.post(live_server.url + "/api/v1/models", json={"path": str(imports / "weights.bin")}), 415, "unsupported_format"
    )
    assert "pickle" in err["message"]
    assert httpx.get(live_server.url + "/api/v1/models").json()["models"] == before


@pytest.mark.slow
def test_import_hf_directory_and_chat_through_torch_runtime(live_server: LiveServer, client, tmp_path) -> None:
    from tests.support.tiny_hf import make_tiny_llama

    src = make_tiny_llama(tmp_path / "tiny")
    dest = live_server.home / "imports" / "tiny-llama"
    shutil.copytree(src, dest)
    r = httpx.post(live_server.url + "/api/v1/models", json={"path": str(dest), "name": "tiny-llama"}, timeout=60)
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["format"] == "safetensors" and rec["runtime"] == "torch" and rec["digest"].startswith("sha256:")
    _canonical_error(httpx.post(live_server.url + "/api/v1/models", json={"path": str(dest), "name": "tiny-llama"}), 409, "already_exists")
    assert "tiny-llama" in [m.id for m in client.models.list().data]
    out = client.chat.completions.create(model="tiny-llama", messages=[{"role": "user", "content": "hello"}], max_tokens=6, temperature=0)
    assert out.choices[0].finish_reason in ("length", "stop")
    assert out.usage.prompt_tokens > 0 and 0 < out.usage.completion_tokens <= 6
    streamed = client.chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "hello"}], max_tokens=6, temperature=0, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == out.choices[0].message.content
    loaded = httpx.get(live_server.url + "/api/v1/models/tiny-llama").json()
    assert loaded["loaded"] is True
    assert httpx.delete(live_server.url + "/api/v1/models/tiny-llama").status_code == 204
    _canonical_error(httpx.get(live_server.url + "/api/v1/models/tiny-llama"), 404, "model_not_found")
    assert "tiny-llama" not in [m.id for m in client.models.list().data]


def test_remote_openai_runtime_proxies_another_engine(live_server: LiveServer, client) -> None:
    # The live server itself plays the remote OpenAI-compatible engine.
    r = httpx.post(
        live_server.url + "/api/v1/models",
        json={"name": "remote-smol", "base_url": live_server.v1, "upstream_model": MODEL, "context_length": 2048},
    )
    assert r.status_code == 201, r.text
    assert r.json()["runtime"] == "openai" and r.json()["format"] == "remote"
    kw = dict(messages=[{"role": "user", "content": "Say hi"}], max_tokens=10, temperature=0)
    direct = client.chat.completions.create(model=MODEL, **kw)
    proxied = client.chat.completions.create(model="remote-smol", **kw)
    assert proxied.model == "remote-smol"
    assert proxied.choices[0].message.content == direct.choices[0].message.content
    assert proxied.usage.prompt_tokens == direct.usage.prompt_tokens
    streamed = "".join(
        c.choices[0].delta.content or "" for c in client.chat.completions.create(model="remote-smol", stream=True, **kw) if c.choices
    )
    assert streamed == direct.choices[0].message.content
    text = client.completions.create(model="remote-smol", prompt="One, two,", max_tokens=4, temperature=0)
    assert text.choices[0].text == client.completions.create(model=MODEL, prompt="One, two,", max_tokens=4, temperature=0).choices[0].text
    # an unreachable upstream is a clean 502, not a 500 or a hang
    httpx.post(live_server.url + "/api/v1/models", json={"name": "remote-dead", "base_url": "http://127.0.0.1:9/v1"})
    resp = httpx.post(live_server.v1 + "/chat/completions", json={"model": "remote-dead", **kw}, timeout=30)
    assert resp.status_code == 502, resp.text
    assert resp.json()["error"]["code"] == "upstream_error"
    for name in ("remote-smol", "remote-dead"):
        assert httpx.delete(live_server.url + f"/api/v1/models/{name}").status_code == 204


def test_builtin_model_cannot_be_deleted(live_server: LiveServer) -> None:
    _canonical_error(httpx.delete(live_server.url + f"/api/v1/models/{MODEL}"), 409, "conflict")
    assert httpx.get(live_server.url + f"/api/v1/models/{MODEL}").status_code == 200


def test_attachments_api(live_server: LiveServer, client) -> None:  # type: ignore[no-untyped-def]
    url = live_server.url + f"/api/v1/models/{MODEL}/attachments"
    empty = httpx.get(url).json()
    assert empty["model"] == MODEL and empty["system_prompt"] is None
    messages = [{"role": "user", "content": "Name a colour."}]
    before = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=4).usage.prompt_tokens
    system = "You are the Acme Health member assistant. " * 10
    set_ = httpx.patch(url, json={"system_prompt": system})
    assert set_.status_code == 200, set_.text
    assert set_.json()["system_prompt"] == system and set_.json()["updated_at"]
    try:
        after = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=4).usage.prompt_tokens
        assert after > before + 40
    finally:
        assert httpx.delete(url).status_code == 204
    assert httpx.get(url).json()["system_prompt"] is None
    _canonical_error(httpx.patch(url, json={"bogus": 1}), 400, "invalid_request")
    _canonical_error(httpx.patch(live_server.url + "/api/v1/models/nope/attachments", json={"system_prompt": "x"}), 404, "model_not_found")
    _canonical_error(httpx.get(live_server.url + f"/api/v1/models/{MODEL}:nope/attachments"), 404, "model_not_found")
