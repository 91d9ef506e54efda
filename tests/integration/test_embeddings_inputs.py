"""``/v1/embeddings`` as the OpenAI API defines ``input``, ``dimensions`` and ``encoding_format``,
driven on the live server by the real clients (ADR 0113).

LangChain's ``OpenAIEmbeddings`` with its defaults sends ``cl100k_base`` token-id arrays; it
runs here offline: tiktoken reads the encoding from a ``TIKTOKEN_CACHE_DIR`` this test fills
from the copy plinth ships, and its download function is replaced by one that fails, so a
fetch would fail the test.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import openai
import pytest

from tests.support.live_server import LiveServer

TEXTS = ["How much is the Gold deductible?", "Bananas are rich in potassium.", "héllo ✓ 日本語, naïve café"]


@pytest.fixture(scope="module")
def cl100k(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """tiktoken's cl100k_base, loaded from the file plinth ships, never from the network."""
    import tiktoken
    import tiktoken.load

    from plinth.embeddings.openai_tokens import tiktoken_cache_key, write_tiktoken_cache

    cache = tmp_path_factory.mktemp("tiktoken-cache")
    path = write_tiktoken_cache(cache)
    assert path == cache / tiktoken_cache_key() and path.stat().st_size > 1_000_000
    mp = pytest.MonkeyPatch()
    mp.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    mp.delenv("DATA_GYM_CACHE_DIR", raising=False)

    def no_network(blobpath: str) -> bytes:
        raise AssertionError(f"tiktoken tried to download {blobpath}")

    mp.setattr(tiktoken.load, "read_file", no_network)
    import tiktoken.registry

    mp.setattr(tiktoken.registry, "ENCODINGS", {})  # nothing loaded earlier in this process counts
    try:
        yield tiktoken.get_encoding("cl100k_base")
    finally:
        mp.undo()


def _vectors(client: Any, input: Any, **kw: Any) -> np.ndarray:
    r = client.embeddings.create(model="minilm", input=input, **kw)
    return np.array([d.embedding for d in sorted(r.data, key=lambda d: d.index)], dtype=np.float32)


def test_langchain_openai_embeddings_with_its_defaults(live_server: LiveServer, client: Any, cl100k: Any) -> None:
    from langchain_openai import OpenAIEmbeddings

    sent: list[Any] = []

    def record(request: httpx.Request) -> None:
        if request.url.path.endswith("/embeddings"):
            sent.append(json.loads(request.content))

    http = httpx.Client(event_hooks={"request": [record]}, timeout=120)
    where: dict[str, Any] = {"base_url": live_server.v1, "api_key": "x"}  # the documented aliases of openai_api_base/_key
    emb = OpenAIEmbeddings(model="minilm", max_retries=0, http_client=http, **where)
    assert emb.check_embedding_ctx_length and emb.tiktoken_enabled  # the defaults, untouched
    docs = emb.embed_documents(TEXTS)
    query = emb.embed_query(TEXTS[0])
    # what went over the wire: token-id arrays of cl100k_base, the text's own ids
    assert sent and all(isinstance(b["input"], list) and all(isinstance(x, list) for x in b["input"]) for b in sent)
    assert sent[0]["input"] == [cl100k.encode(t) for t in TEXTS]
    # the same vectors as the text itself sent as strings
    direct = _vectors(client, TEXTS)
    assert np.allclose(np.array(docs), direct, atol=1e-5)
    assert np.allclose(np.array(query), direct[0], atol=1e-5)
    assert float(direct[0] @ direct[0]) > float(direct[0] @ direct[1])


def test_token_arrays_decode_to_the_text(client: Any, cl100k: Any) -> None:
    direct = _vectors(client, TEXTS)
    one = _vectors(client, cl100k.encode(TEXTS[2]))
    many = _vectors(client, [cl100k.encode(t) for t in TEXTS])
    assert np.allclose(one[0], direct[2], atol=1e-5) and np.allclose(many, direct, atol=1e-5)
    # special tokens decode to their text, as tiktoken's decode does
    special = cl100k.encode("<|endoftext|> hello", allowed_special="all")
    assert np.allclose(_vectors(client, special)[0], _vectors(client, "<|endoftext|> hello")[0], atol=1e-5)
    # usage counts the embedder's tokens of the decoded text
    r = client.embeddings.create(model="minilm", input=[cl100k.encode(TEXTS[0])])
    s = client.embeddings.create(model="minilm", input=TEXTS[0])
    assert r.usage.prompt_tokens == s.usage.prompt_tokens > 0


def test_dimensions_truncate_and_renormalise(client: Any) -> None:
    full = _vectors(client, TEXTS)
    for n in (1, 64, 383, 384):
        cut = _vectors(client, TEXTS, dimensions=n)
        assert cut.shape == (3, n)
        assert np.allclose(np.linalg.norm(cut, axis=1), 1, atol=1e-5)
        expected = full[:, :n] / np.linalg.norm(full[:, :n], axis=1, keepdims=True)
        assert np.allclose(cut, expected, atol=1e-5)
    for bad in (0, 385, 2**40):
        with pytest.raises(openai.BadRequestError) as e:
            client.embeddings.create(model="minilm", input="x", dimensions=bad)
        assert cast(dict[str, Any], e.value.body)["param"] == "dimensions"


def test_encoding_format_float_and_base64(live_server: LiveServer) -> None:
    url = live_server.v1 + "/embeddings"
    as_float = httpx.post(url, json={"model": "minilm", "input": TEXTS, "encoding_format": "float", "dimensions": 100}, timeout=60)
    as_b64 = httpx.post(url, json={"model": "minilm", "input": TEXTS, "encoding_format": "base64", "dimensions": 100}, timeout=60)
    assert as_float.status_code == as_b64.status_code == 200
    for f, b in zip(as_float.json()["data"], as_b64.json()["data"], strict=True):
        raw = base64.b64decode(b["embedding"])
        assert len(raw) == 100 * 4
        assert np.array_equal(np.frombuffer(raw, dtype="<f4"), np.array(f["embedding"], dtype=np.float32))
    bad = httpx.post(url, json={"model": "minilm", "input": "x", "encoding_format": "int8"}, timeout=60)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "encoding_format"


BAD_INPUTS: list[tuple[Any, str]] = [
    ("", "empty"),
    ("   \n", "empty"),
    ([], "empty list"),
    (["a", ""], "input[1] is empty"),
    ([[]], "input[0] is an empty token array"),
    ([[220, 220]], "input[0] is empty"),  # decodes to whitespace
    ([100256], "input[0] = 100256 is not a token id"),  # unassigned in cl100k_base
    ([[15339], [100261]], "input[1][0] = 100261 is not a token id"),
    ([[-1]], "input[0][0] = -1"),
    ([2**63], str(2**63)),
    ([[2**64]], str(2**64)),
    ([10**30], "is not a token id"),
    ([[1, "a"]], "input[0] must be an array of integer token ids"),
    ([[1.5]], "input[0] must be an array of integer token ids"),
    ([1, [2]], "not a mixture"),
    (["a", 1], "not a mixture"),
    ([True], "not a mixture"),
    (12, "input must be a string"),
    ({"text": "x"}, "input must be a string"),
    (["a"] * 2049, "2049 items; at most 2048"),
    ([1] * 8193, "8193 token ids; at most 8192"),
    ("word " * 400, "embeds at most 254"),
]


@pytest.mark.parametrize(("value", "says"), BAD_INPUTS, ids=[f"bad{i}" for i in range(len(BAD_INPUTS))])
def test_bad_inputs_are_400_naming_input(live_server: LiveServer, value: Any, says: str) -> None:
    r = httpx.post(live_server.v1 + "/embeddings", json={"model": "minilm", "input": value}, timeout=60)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
    assert err["param"] == "input" and says in err["message"], err


def test_over_long_token_arrays_say_how_to_split_them(live_server: LiveServer, cl100k: Any) -> None:
    ids = cl100k.encode("the quick brown fox jumps over the lazy dog " * 40)
    r = httpx.post(live_server.v1 + "/embeddings", json={"model": "minilm", "input": [ids]}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    assert "embedding_ctx_length" in r.json()["error"]["message"]


def test_total_tokens_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-request token budget (300,000 tokens cannot fit the live server's body limit: the
    service is called here with a smaller budget, on the real embedder)."""
    from plinth.config import load_settings
    from plinth.errors import PlinthError
    from plinth.rag import embedding_requests
    from plinth.services import build_services

    services = build_services(load_settings(home=tmp_path, preload_default_model=False, jobs_local_worker=False))
    try:
        assert services.knowledge is not None
        monkeypatch.setattr(embedding_requests, "MAX_TOTAL_TOKENS", 10)
        ok, _, n = embedding_requests.create_embeddings(services.knowledge, model="minilm", input=["one two three", "four five"])
        assert n == 2 and ok["usage"]["prompt_tokens"] == 5
        with pytest.raises(PlinthError) as e:
            embedding_requests.create_embeddings(
                services.knowledge, model="minilm", input=["one two three four five six", "seven eight nine ten eleven"]
            )
        assert e.value.param == "input" and "at most 10 per request" in e.value.message
    finally:
        services.close()


def test_unknown_model_is_404(client: Any) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client.embeddings.create(model="text-embedding-3-small", input=[[15339]])
    assert cast(dict[str, Any], e.value.body)["param"] == "model"


def test_langchain_long_documents_with_a_smaller_ctx_length(live_server: LiveServer, cl100k: Any) -> None:
    """LangChain splits by cl100k tokens (8,191 by default); MiniLM takes 254 of its own: the
    default refuses a long document with the hint, ``embedding_ctx_length=128`` embeds it."""
    from langchain_openai import OpenAIEmbeddings

    long_doc = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text(encoding="utf-8")[:12_000]
    where: dict[str, Any] = {"base_url": live_server.v1, "api_key": "x"}
    with pytest.raises(openai.BadRequestError) as e:
        OpenAIEmbeddings(model="minilm", max_retries=0, **where).embed_documents([long_doc])
    assert "embedding_ctx_length" in cast(dict[str, Any], e.value.body)["message"]
    [v] = OpenAIEmbeddings(model="minilm", max_retries=0, embedding_ctx_length=128, **where).embed_documents([long_doc])
    assert len(v) == 384 and abs(float(np.linalg.norm(v)) - 1) < 1e-4
