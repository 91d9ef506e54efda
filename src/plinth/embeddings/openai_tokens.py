"""OpenAI's ``cl100k_base`` token ids, read back into text, offline (ADR 0113).

The OpenAI embeddings API takes ``input`` as token-id arrays too; the ids are those of the
OpenAI embedding models' tokenizer, ``cl100k_base`` (tiktoken). LangChain's
``OpenAIEmbeddings`` sends such arrays by default (``check_embedding_ctx_length=True``): it
tokenises with tiktoken's ``cl100k_base`` whatever the model name. plinth decodes them back
to text and embeds the text with its own embedder.

The encoding file ships inside plinth (``data/cl100k_base.tiktoken.gz``, the file tiktoken
downloads, gzip-compressed; tiktoken is MIT-licensed). Its content is checked at load
against the sha256 that tiktoken itself pins for it, so nothing is fetched and a damaged
copy is refused. :func:`write_tiktoken_cache` writes it where tiktoken looks before it
downloads (``TIKTOKEN_CACHE_DIR``), so clients on a machine without network (LangChain,
litellm) find it too.

Decoding needs no tiktoken: a token is a byte string, a text is the bytes of its tokens
joined and read as UTF-8 (a sequence cut inside a character decodes with U+FFFD, as
tiktoken's ``decode`` does).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from importlib import resources
from pathlib import Path

from plinth.errors import ErrorCode, PlinthError

NAME = "cl100k_base"
#: where tiktoken downloads the file from; tiktoken's cache names the file by the sha1 of it
SOURCE_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
#: sha256 of the (uncompressed) file, as pinned by tiktoken (tiktoken_ext/openai_public.py)
SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
SPECIAL_TOKENS = {
    100257: "<|endoftext|>",
    100258: "<|fim_prefix|>",
    100259: "<|fim_middle|>",
    100260: "<|fim_suffix|>",
    100276: "<|endofprompt|>",
}
#: ids 0..N_VOCAB-1; some ids between the ranks and the special tokens are unassigned
N_VOCAB = 100277


def tiktoken_cache_key() -> str:
    """The file name tiktoken gives the encoding in its cache directory."""
    return hashlib.sha1(SOURCE_URL.encode()).hexdigest()  # tiktoken names its cache files so (not a security use)


def encoding_file_bytes() -> bytes:
    """The encoding file as tiktoken reads it, checked against tiktoken's pinned sha256."""
    packed = resources.files("plinth.embeddings").joinpath("data").joinpath(f"{NAME}.tiktoken.gz").read_bytes()
    data = gzip.decompress(packed)
    actual = hashlib.sha256(data).hexdigest()
    if actual != SHA256:
        raise PlinthError(
            ErrorCode.INTEGRITY_ERROR,
            f"the packaged {NAME} encoding has sha256 {actual}, expected {SHA256}: reinstall plinth",
            details={"sha256": actual, "expected": SHA256},
        )
    return data


def write_tiktoken_cache(directory: str | Path) -> Path:
    """Write the encoding file into ``directory`` under the name tiktoken looks for, so a
    client started with ``TIKTOKEN_CACHE_DIR=directory`` never downloads it. Returns the path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / tiktoken_cache_key()
    data = encoding_file_bytes()
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != SHA256:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


class TokenDecoder:
    """``cl100k_base`` ids -> text. Thread-safe; the table (about 100k byte strings, 10 MB)
    is built on first use."""

    name = NAME
    n_vocab = N_VOCAB

    def __init__(self) -> None:
        self._table: list[bytes | None] | None = None
        self._lock = threading.Lock()

    def table(self) -> list[bytes | None]:
        if self._table is None:
            with self._lock:
                if self._table is None:
                    table: list[bytes | None] = [None] * N_VOCAB
                    for line in encoding_file_bytes().splitlines():
                        if line:
                            token, rank = line.split()
                            table[int(rank)] = base64.b64decode(token)
                    for i, text in SPECIAL_TOKENS.items():
                        table[i] = text.encode()
                    self._table = table
        return self._table

    def unknown(self, ids: list[int]) -> int | None:
        """The position of the first id that is not a token of the encoding, or None."""
        table = self.table()
        for pos, i in enumerate(ids):
            if type(i) is not int or not 0 <= i < N_VOCAB or table[i] is None:
                return pos
        return None

    def decode(self, ids: list[int]) -> str:
        """The text of ``ids`` (every id must be known: check with :meth:`unknown` first)."""
        table = self.table()
        return b"".join(table[i] or b"" for i in ids).decode("utf-8", errors="replace")


_DECODER: TokenDecoder | None = None
_DECODER_LOCK = threading.Lock()


def token_decoder() -> TokenDecoder:
    """The process's decoder (built once)."""
    global _DECODER
    if _DECODER is None:
        with _DECODER_LOCK:
            if _DECODER is None:
                _DECODER = TokenDecoder()
    return _DECODER
