"""A remote OpenAI-compatible ``/v1/embeddings`` (another plinth, vLLM, TEI, Ollama, OpenAI).

The vectors are normalised here (some servers return unnormalised ones). ``count_tokens``
is an estimate (words x 4/3) since the remote tokenizer is unknown; it is only used to size
chunks. Requests go through the outbound fetcher (ADR 0080): the server's address is judged
and pinned, answers are bounded, no redirect is followed; the API key is a named secret
(``PLINTH_EMBEDDING_API_KEY_SECRET``, ADR 0081). What the server answers on failure goes to
the log, never into the error.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import httpx

from plinth.embeddings.base import Embedder
from plinth.errors import ErrorCode, PlinthError
from plinth.outbound import Outbound, OutboundRefused, check_url, shown_url

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("plinth.embeddings.remote")

#: Largest answer of the embeddings server (a batch of 64 x 4096 floats is about 5 MiB as JSON).
MAX_ANSWER_BYTES = 256 * 1024 * 1024


class RemoteEmbedder(Embedder):
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        outbound: Outbound | None = None,
        api_key_secret: str | None = None,
        timeout_s: float = 60.0,
        batch_size: int = 64,
        max_tokens: int = 512,
    ) -> None:
        try:
            host = check_url(base_url, what="PLINTH_EMBEDDING_URL").host
        except OutboundRefused as e:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, f"PLINTH_EMBEDDING_URL must be an http(s) URL of an OpenAI-compatible /v1 base: {e.message}"
            ) from None
        self.outbound = outbound or Outbound()
        self.base_url = base_url.rstrip("/")
        self.shown = shown_url(self.base_url)
        self.remote_model = model
        self.model_id = f"{model}@{self.shown}"
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.dim = 0
        headers = {}
        if api_key_secret:
            secret = self.outbound.secrets.get(
                api_key_secret, host=host, param="embedding_api_key_secret", what="PLINTH_EMBEDDING_API_KEY_SECRET"
            )
            headers["Authorization"] = f"Bearer {secret.value}"
        self._client = self.outbound.client(
            self.base_url, headers=headers, timeout=timeout_s, deadline_s=timeout_s, max_bytes=MAX_ANSWER_BYTES, what="embedding server"
        )
        self._lock = threading.Lock()

    def load(self) -> None:
        self.dim = int(self._request(["dimension probe"]).shape[1])

    def _request(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        try:
            r = self._client.post("/embeddings", json={"model": self.remote_model, "input": texts, "encoding_format": "float"})
        except httpx.HTTPError as e:
            log.warning("embedding server %s unreachable: %r", self.shown, e)
            raise PlinthError(ErrorCode.UPSTREAM_ERROR, f"embedding server {self.shown} unreachable ({type(e).__name__})") from None
        except PlinthError as e:  # refused by the outbound rules, or over a limit
            log.warning("embedding server %s: %s", self.shown, e.message)
            raise PlinthError(ErrorCode.UPSTREAM_ERROR, e.message) from None
        if r.status_code != 200:
            log.warning("embedding server %s answered %s: %r", self.shown, r.status_code, self.outbound.secrets.redact(r.text[:4096]))
            raise PlinthError(
                ErrorCode.UPSTREAM_ERROR, f"embedding server {self.shown} answered {r.status_code}; the server log has its body"
            )
        try:
            data: list[dict[str, Any]] = sorted(r.json()["data"], key=lambda d: d["index"])
            vecs = np.asarray([d["embedding"] for d in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as e:
            log.warning("embedding server %s sent an unexpected body (%r): %r", self.shown, e, self.outbound.secrets.redact(r.text[:4096]))
            raise PlinthError(
                ErrorCode.UPSTREAM_ERROR, f"embedding server {self.shown} sent an unexpected body ({type(e).__name__})"
            ) from None
        if vecs.ndim != 2 or vecs.shape[0] != len(texts):
            raise PlinthError(
                ErrorCode.UPSTREAM_ERROR, f"embedding server {self.shown} returned {vecs.shape[0]} vectors for {len(texts)} inputs"
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
            raise PlinthError(ErrorCode.UPSTREAM_ERROR, f"embedding server {self.shown} changed dimension {self.dim} -> {out.shape[1]}")
        return out

    def count_tokens(self, text: str) -> int:
        return max(1, round(len(text.split()) * 4 / 3)) if text.strip() else 0

    def close(self) -> None:
        self._client.close()
