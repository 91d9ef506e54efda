"""A remote OpenAI-compatible ``/v1/embeddings`` (another plinth, vLLM, TEI, Ollama, OpenAI).

The vectors are normalised here (some servers return unnormalised ones). ``count_tokens``
is an estimate (words x 4/3) since the remote tokenizer is unknown; it is only used to size
chunks.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import httpx

from plinth.embeddings.base import Embedder
from plinth.errors import ErrorCode, PlinthError

if TYPE_CHECKING:
    import numpy as np


class RemoteEmbedder(Embedder):
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        timeout_s: float = 60.0,
        batch_size: int = 64,
        max_tokens: int = 512,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"PLINTH_EMBEDDING_URL must be an http(s) URL of an OpenAI-compatible /v1 base; got {base_url!r}",
            )
        self.base_url = base_url.rstrip("/")
        self.remote_model = model
        self.model_id = f"{model}@{self.base_url}"
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.dim = 0
        headers = {}
        if api_key_env and os.environ.get(api_key_env):
            headers["Authorization"] = f"Bearer {os.environ[api_key_env]}"
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s, transport=transport)
        self._lock = threading.Lock()

    def load(self) -> None:
        self.dim = int(self._request(["dimension probe"]).shape[1])

    def _request(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        try:
            r = self._client.post("/embeddings", json={"model": self.remote_model, "input": texts, "encoding_format": "float"})
        except httpx.HTTPError as e:
            raise PlinthError(ErrorCode.UPSTREAM_ERROR, f"embedding server {self.base_url} unreachable: {e}") from None
        if r.status_code != 200:
            raise PlinthError(ErrorCode.UPSTREAM_ERROR, f"embedding server {self.base_url} answered {r.status_code}: {r.text[:300]}")
        try:
            data: list[dict[str, Any]] = sorted(r.json()["data"], key=lambda d: d["index"])
            vecs = np.asarray([d["embedding"] for d in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as e:
            raise PlinthError(ErrorCode.UPSTREAM_ERROR, f"embedding server {self.base_url} sent an unexpected body: {e}") from None
        if vecs.ndim != 2 or vecs.shape[0] != len(texts):
            raise PlinthError(
                ErrorCode.UPSTREAM_ERROR, f"embedding server {self.base_url} returned {vecs.shape[0]} vectors for {len(texts)} inputs"
            )
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._request(list(texts[i : i + self.batch_size])) for i in range(0, len(texts), self.batch_size)]
        out = np.concatenate(parts).astype(np.float32)
        if self.dim and out.shape[1] != self.dim:
            raise PlinthError(ErrorCode.UPSTREAM_ERROR, f"embedding server {self.base_url} changed dimension {self.dim} -> {out.shape[1]}")
        return out

    def count_tokens(self, text: str) -> int:
        return max(1, round(len(text.split()) * 4 / 3)) if text.strip() else 0

    def close(self) -> None:
        self._client.close()
