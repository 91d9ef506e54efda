"""The embedder interface on the real all-MiniLM-L6-v2 weights."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from plinth.config import load_settings
from plinth.embeddings import Embedder, embedder_names, get_embedder
from plinth.embeddings.minilm import DIGESTS, MiniLMEmbedder, model_dir, verify_files
from plinth.errors import ErrorCode, PlinthError
from plinth.outbound import Outbound, OutboundPolicy, Secret, SecretStore
from tests.support.http_targets import Answer, Seen, serve

TEXTS = [
    "How much is the Gold plan deductible?",
    "The annual in-network deductible of the Gold plan is $500 per member.",
    "Bananas are rich in potassium.",
    "x",
]


@pytest.fixture(scope="module")
def emb(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    settings = load_settings(home=tmp_path_factory.mktemp("home"))
    return get_embedder(settings)


def test_shape_dtype_unit_length(emb: Embedder) -> None:
    v = emb.embed(TEXTS)
    assert emb.name == "minilm" and emb.dim == 384
    assert v.shape == (4, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert emb.embed([]).shape == (0, 384)


def test_similarity_is_meaningful(emb: Embedder) -> None:
    q, passage, other, _ = emb.embed(TEXTS)
    assert float(q @ passage) > float(q @ other) + 0.3


def test_deterministic_and_independent_of_batching(emb: Embedder) -> None:
    one = emb.embed([TEXTS[1]])
    many = emb.embed(TEXTS * 20)  # several internal batches, sorted by length
    assert np.array_equal(emb.embed([TEXTS[1]]), one)
    assert np.allclose(many[1], one[0], atol=1e-5)
    assert np.allclose(many[41], one[0], atol=1e-5)


def test_matches_the_reference_implementation(emb: Embedder) -> None:
    """Same vectors as transformers' BertModel with sentence-transformers' mean pooling."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    d = str(model_dir())
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModel.from_pretrained(d).eval()
    batch = tok(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ref = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).numpy()
    assert np.abs(ref - emb.embed(TEXTS)).max() < 1e-5


def test_long_text_is_truncated_not_refused(emb: Embedder) -> None:
    long = "deductible " * 2000
    assert emb.count_tokens(long) > 10 * emb.max_tokens
    v = emb.embed([long])
    assert v.shape == (1, 384) and np.isfinite(v).all()


def test_count_tokens(emb: Embedder) -> None:
    assert emb.count_tokens("") == 0
    assert emb.count_tokens("hello world") == 2
    assert emb.count_tokens_many(["hello world", "a b c"]) == [2, 3]


def test_one_instance_per_process_loaded_once(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    got: list[Embedder] = []
    threads = [threading.Thread(target=lambda: got.append(get_embedder(settings))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(e) for e in got}) == 1
    assert get_embedder(settings, "minilm") is got[0]


def test_concurrent_embedding_is_safe(emb: Embedder) -> None:
    ref = emb.embed(TEXTS)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(emb.embed(TEXTS))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.allclose(r, ref, atol=1e-6) for r in results)


def test_unknown_backend_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PlinthError) as e:
        get_embedder(load_settings(home=tmp_path), "nope")
    assert e.value.code == ErrorCode.INVALID_REQUEST and "minilm" in e.value.message
    assert {"minilm", "openai"} <= set(embedder_names())


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    src = model_dir()
    copy = tmp_path / "model"
    copy.mkdir()
    for name in DIGESTS:
        if name != "config.json":
            os.symlink(src / name, copy / name)
    config = json.loads((src / "config.json").read_text())
    config["layer_norm_eps"] = 1e-5
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(PlinthError) as e:
        verify_files(copy)
    assert e.value.code == ErrorCode.INTEGRITY_ERROR and "config.json" in e.value.message
    with pytest.raises(PlinthError) as e:
        MiniLMEmbedder(directory=copy).load()
    assert e.value.code == ErrorCode.INTEGRITY_ERROR
    (copy / "tokenizer.json").unlink()
    with pytest.raises(PlinthError, match="missing"):
        verify_files(copy)


def test_installed_weights_verify() -> None:
    verify_files(model_dir())  # the pinned package's files are the pinned digests


# -- the remote backend, against a fake of a third-party embeddings server (a real local one) ------
KEY = "emb-key-0123456789"


def _embeddings(seen: Seen) -> Answer:
    body = json.loads(seen.body)
    assert body["encoding_format"] == "float"
    if seen.headers.get("authorization") != f"Bearer {KEY}":
        return Answer(401, f"bad key {seen.headers.get('authorization')}".encode())
    data = [{"index": i, "embedding": [float(len(t)), 1.0, 0.0], "object": "embedding"} for i, t in enumerate(body["input"])]
    return Answer(200, json.dumps({"data": list(reversed(data)), "object": "list"}).encode(), "application/json")


def _outbound(*allow: str) -> Outbound:
    return Outbound(OutboundPolicy.from_entries(allow), secrets=SecretStore([Secret("emb", KEY)]))


def test_remote_embedder_normalises_and_orders() -> None:
    from plinth.embeddings.remote import RemoteEmbedder

    with serve({"/v1/embeddings": _embeddings}) as server:
        e = RemoteEmbedder(server.url("/v1"), "m", outbound=_outbound("127.0.0.1"), api_key_secret="emb", batch_size=2)
        e.load()
        assert e.dim == 3
        v = e.embed(["a", "bbb", "cc"])
    assert v.shape == (3, 3) and np.allclose(np.linalg.norm(v, axis=1), 1.0)
    assert v[1, 0] > v[2, 0] > v[0, 0]  # order kept although the server answered reversed


def test_remote_embedder_errors(caplog: pytest.LogCaptureFixture) -> None:
    from plinth.embeddings.remote import RemoteEmbedder

    with pytest.raises(PlinthError, match="http"):
        RemoteEmbedder("ftp://x", "m")
    with pytest.raises(PlinthError, match="unknown PLINTH_EMBEDDING_API_KEY_SECRET 'nope'"):
        RemoteEmbedder("http://127.0.0.1:9/v1", "m", outbound=_outbound("127.0.0.1"), api_key_secret="nope")
    with serve({"/v1/embeddings": lambda _s: Answer(500, b"boom at /srv/secret-path")}) as server:
        down = RemoteEmbedder(server.url("/v1"), "m", outbound=_outbound("127.0.0.1"))
        with pytest.raises(PlinthError) as e:
            down.embed(["a"])
        assert e.value.code == ErrorCode.UPSTREAM_ERROR and "500" in e.value.message and "/srv/secret-path" not in e.value.message
    with serve({"/v1/embeddings": _embeddings}) as server:
        closed = RemoteEmbedder(server.url("/v1"), "m", outbound=_outbound(), api_key_secret="emb")
        with pytest.raises(PlinthError) as e:
            closed.embed(["a"])  # loopback is not allowed: refused before anything is sent
        assert "loopback" in e.value.message and server.seen == []
    echo = {"/v1/embeddings": lambda s: Answer(500, f"bad header {s.headers.get('authorization')}".encode())}
    with serve(echo) as server:  # an engine that echoes the key back: the log gets it redacted
        echoed = RemoteEmbedder(server.url("/v1"), "m", outbound=_outbound("127.0.0.1"), api_key_secret="emb")
        with caplog.at_level("WARNING"), pytest.raises(PlinthError, match="answered 500") as e:
            echoed.embed(["a"])
    assert KEY not in caplog.text and "Bearer [secret]" in caplog.text and KEY not in e.value.message


def test_openai_backend_needs_a_url(tmp_path: Path) -> None:
    with pytest.raises(PlinthError, match="PLINTH_EMBEDDING_URL"):
        get_embedder(load_settings(home=tmp_path, embedding_model="openai"))


def test_package_import_is_light() -> None:
    import subprocess
    import sys

    code = "import sys, plinth.embeddings; print(any(m in sys.modules for m in ('onnxruntime', 'onnx', 'tokenizers', 'torch')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_model_dir_files_exist() -> None:
    assert (model_dir() / "model.safetensors").stat().st_size > 80_000_000
