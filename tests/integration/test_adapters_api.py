"""LoRA adapters through the live server: import (GGUF and PEFT), routing by model id
``base:adapter`` with the official openai client, mixed concurrent traffic, removal."""

from __future__ import annotations

import concurrent.futures

import httpx
import openai
import pytest

from plinth.formats import locate_embedded_gguf
from tests.support.adapters import random_peft_llama_tensors, write_peft_dir, write_random_gguf_lora
from tests.support.live_server import MODEL, LiveServer

Q = [{"role": "user", "content": "Name a large animal."}]


def _answer(client, model: str) -> str:  # type: ignore[no-untyped-def]
    r = client.chat.completions.create(model=model, messages=Q, max_tokens=16, temperature=0)
    return r.choices[0].message.content


@pytest.fixture(scope="module")
def two_adapters(live_server: LiveServer) -> list[str]:
    imports = live_server.home / "imports"
    imports.mkdir(exist_ok=True)
    names = []
    for i in range(2):
        f = write_random_gguf_lora(imports / f"lora-{i}.gguf", base_gguf=locate_embedded_gguf(), seed=i, scale=0.1)
        r = httpx.post(f"{live_server.url}/api/v1/models/{MODEL}/adapters", json={"path": str(f), "name": f"style{i}"}, timeout=60)
        assert r.status_code == 201, r.text
        assert r.json()["model_id"] == f"{MODEL}:style{i}"
        names.append(f"{MODEL}:style{i}")
    yield names
    for n in names:
        httpx.delete(f"{live_server.url}/api/v1/models/{MODEL}/adapters/{n.split(':')[1]}")


def test_adapters_are_listed_as_model_ids(client, two_adapters) -> None:
    ids = {m.id for m in client.models.list().data}
    assert set(two_adapters) <= ids
    assert client.models.retrieve(two_adapters[0]).id == two_adapters[0]


def test_requests_are_routed_to_their_adapter_in_mixed_traffic(client, two_adapters, live_server: LiveServer) -> None:
    models = [MODEL, *two_adapters]
    alone = {m: _answer(client, m) for m in models}
    assert len(set(alone.values())) == 3, f"each adapter should answer differently: {alone}"
    order = models * 3
    with concurrent.futures.ThreadPoolExecutor(6) as pool:  # within the server's 4 slots + 3 queued
        mixed = list(pool.map(lambda m: (m, _answer(client, m)), order))
    for m, text in mixed:
        assert text == alone[m], m
    listed = httpx.get(f"{live_server.url}/api/v1/models/{MODEL}/adapters").json()["adapters"]
    loaded = {a["name"]: a["loaded"] for a in listed}  # other files' adapters may be on this shared server too
    assert loaded.get("style0") is True and loaded.get("style1") is True, loaded
    engine = httpx.get(f"{live_server.url}/api/v1/models/{MODEL}").json()["engine"]
    assert engine["adapter_loads"] >= 2


def test_streaming_with_an_adapter(client, two_adapters) -> None:
    full = _answer(client, two_adapters[1])
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model=two_adapters[1], messages=Q, max_tokens=16, temperature=0, stream=True)
        if c.choices
    )
    assert streamed == full


def test_unknown_adapter_is_an_unknown_model(client) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model=f"{MODEL}:nope", messages=Q, max_tokens=4)
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-base:nope", messages=Q, max_tokens=4)


def test_peft_adapter_is_converted_and_served(client, live_server: LiveServer) -> None:
    tensors = random_peft_llama_tensors(n_layers=30, hidden=576, n_head=9, n_head_kv=3, ffn=1536, r=4, modules=("q_proj", "v_proj"), seed=3)
    d = write_peft_dir(live_server.home / "imports" / "peft-faq", tensors, r=4, alpha=8, target_modules=["q_proj", "v_proj"])
    r = httpx.post(f"{live_server.url}/api/v1/models/{MODEL}/adapters", json={"path": str(d), "name": "faq"}, timeout=60)
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["format"] == "peft-lora" and rec["gguf_digest"] and rec["gguf_digest"] != rec["digest"]
    assert rec["rank"] == 4 and sorted(rec["target_modules"]) == ["q_proj", "v_proj"]
    answer = _answer(client, f"{MODEL}:faq")
    assert answer and answer != _answer(client, MODEL)
    assert httpx.delete(f"{live_server.url}/api/v1/models/{MODEL}/adapters/faq").status_code == 204
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=f"{MODEL}:faq", messages=Q, max_tokens=4)


def test_bad_adapter_imports_are_refused(live_server: LiveServer) -> None:
    imports = live_server.home / "imports"
    (imports / "junk.gguf").write_bytes(b"GGUF" + b"\x00" * 40)
    r = httpx.post(f"{live_server.url}/api/v1/models/{MODEL}/adapters", json={"path": str(imports / "junk.gguf")})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_model_file"
    # a full model is not an adapter
    r = httpx.post(f"{live_server.url}/api/v1/models/{MODEL}/adapters", json={"path": str(live_server.home / "imports" / "..")})
    assert r.status_code in (400, 403)
    r = httpx.post(f"{live_server.url}/api/v1/models/nope/adapters", json={"path": str(imports / "junk.gguf")})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    # and the server still answers
    assert httpx.get(f"{live_server.url}/readyz").status_code == 200


@pytest.mark.slow
def test_peft_adapter_on_a_torch_model(client, live_server: LiveServer, tmp_path) -> None:
    import shutil

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tests.support.tiny_hf import make_tiny_llama

    src = make_tiny_llama(tmp_path / "tiny")
    base_dir = live_server.home / "imports" / "tiny-base"
    shutil.copytree(src, base_dir)
    assert httpx.post(f"{live_server.url}/api/v1/models", json={"path": str(base_dir), "name": "tiny-base"}, timeout=60).status_code == 201
    torch.manual_seed(7)
    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(src)),
        LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    peft_model.save_pretrained(str(live_server.home / "imports" / "tiny-lora"))
    r = httpx.post(
        f"{live_server.url}/api/v1/models/tiny-base/adapters",
        json={"path": str(live_server.home / "imports" / "tiny-lora"), "name": "style"},
        timeout=60,
    )
    assert r.status_code == 201, r.text
    assert r.json()["format"] == "peft-lora" and r.json()["gguf_digest"] is None
    kw = dict(messages=[{"role": "user", "content": "hello"}], max_tokens=6, temperature=0)
    base = client.chat.completions.create(model="tiny-base", **kw).choices[0].message.content
    tuned = client.chat.completions.create(model="tiny-base:style", **kw).choices[0].message.content
    assert tuned != base
    assert client.chat.completions.create(model="tiny-base", **kw).choices[0].message.content == base
    # a GGUF LoRA cannot be attached to a torch model
    f = write_random_gguf_lora(live_server.home / "imports" / "wrong.gguf", base_gguf=locate_embedded_gguf(), seed=1)
    r = httpx.post(f"{live_server.url}/api/v1/models/tiny-base/adapters", json={"path": str(f)})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported"
    assert httpx.delete(f"{live_server.url}/api/v1/models/tiny-base").status_code == 204
