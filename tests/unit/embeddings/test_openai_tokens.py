"""The shipped cl100k_base encoding: checked, decoded as tiktoken decodes, written where tiktoken
looks for it (ADR 0113). tiktoken is loaded from that copy only: its download function fails."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest

from plinth.embeddings import openai_tokens
from plinth.embeddings.openai_tokens import N_VOCAB, SHA256, token_decoder, write_tiktoken_cache


@pytest.fixture(scope="module")
def cl100k(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import tiktoken
    import tiktoken.load
    import tiktoken.registry

    cache = tmp_path_factory.mktemp("tiktoken")
    write_tiktoken_cache(cache)
    mp = pytest.MonkeyPatch()
    mp.setenv("TIKTOKEN_CACHE_DIR", str(cache))

    def no_network(blobpath: str) -> bytes:
        raise AssertionError(f"tiktoken tried to download {blobpath}")

    mp.setattr(tiktoken.load, "read_file", no_network)
    mp.setattr(tiktoken.registry, "ENCODINGS", {})
    try:
        yield tiktoken.get_encoding("cl100k_base")
    finally:
        mp.undo()


def test_the_cache_file_is_tiktokens_own(tmp_path: Path) -> None:
    path = write_tiktoken_cache(tmp_path / "c")
    assert path.name == hashlib.sha1(openai_tokens.SOURCE_URL.encode()).hexdigest()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256
    assert write_tiktoken_cache(tmp_path / "c") == path  # idempotent
    path.write_bytes(b"damaged")
    write_tiktoken_cache(tmp_path / "c")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256  # a damaged copy is replaced


def test_decodes_as_tiktoken_does(cl100k: Any) -> None:
    d = token_decoder()
    assert cl100k.n_vocab == N_VOCAB
    for text in ["Hello world", "héllo ✓ 日本語 naïve", "  spaces\n\ttabs  ", "<|endoftext|> after"]:
        ids = cl100k.encode(text, allowed_special="all")
        assert d.unknown(ids) is None and d.decode(ids) == text
    rng = random.Random(7)
    ids = [rng.randrange(100256) for _ in range(20_000)]
    assert d.decode(ids) == cl100k.decode(ids)  # cut characters become U+FFFD in both


def test_unknown_ids() -> None:
    d = token_decoder()
    assert d.unknown([0, 100255, 100257, 100276]) is None
    bad_ids: list[Any] = [-1, 100256, 100261, 100275, 100277, 2**64, True, 1.0]
    for bad in bad_ids:
        assert d.unknown([5, bad]) == 1, bad


def test_a_damaged_package_copy_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from plinth.errors import ErrorCode, PlinthError

    monkeypatch.setattr(openai_tokens, "SHA256", "0" * 64)
    with pytest.raises(PlinthError) as e:
        openai_tokens.encoding_file_bytes()
    assert e.value.code is ErrorCode.INTEGRITY_ERROR
