"""A remote OpenAI-compatible engine (vLLM, Ollama, TGI, a llama.cpp server, another plinth).

This is the production path for GPU engines: plinth keeps the catalog, limits, metrics and
(later) guardrails and routing, and forwards generation. The model record's ``parameters``
hold ``base_url`` and ``upstream_model``; an API key, if the engine needs one, is read from
the environment variable named by ``api_key_env`` (never stored).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from plinth.errors import ErrorCode, PlinthError
from plinth.runtimes.base import AdapterRef, Delta, InferenceRuntime, Prompt, RuntimeHealth, SamplingParams


class OpenAIUpstreamRuntime(InferenceRuntime):
    name = "openai"
    max_concurrent = 64  # the remote engine does its own batching

    _client: httpx.Client | None = None

    def load(self) -> None:
        params = self.model.parameters or {}
        self.base_url = str(params.get("base_url") or "").rstrip("/")
        self.upstream_model = str(params.get("upstream_model") or self.model.name)
        if not self.base_url.startswith(("http://", "https://")):
            raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"model {self.model.name!r} has no valid base_url: {self.base_url!r}")
        headers = {}
        key_env = params.get("api_key_env")
        if key_env and os.environ.get(str(key_env)):
            headers["Authorization"] = f"Bearer {os.environ[str(key_env)]}"
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(self.options.upstream_timeout_s, connect=10.0),
        )
        self._ctx = self.model.context_length

    def context_length(self) -> int | None:
        return self._ctx

    def prepare_chat(self, messages: list[dict[str, Any]]) -> Prompt:
        return Prompt(messages=messages, n_tokens=None, is_chat=True)

    def prepare_text(self, text: str) -> Prompt:
        return Prompt(text=text, n_tokens=None, is_chat=False)

    def generate(
        self, prompt: Prompt, params: SamplingParams, cancel: threading.Event, adapter: AdapterRef | None = None
    ) -> Iterator[Delta]:
        if adapter is not None:
            raise PlinthError(ErrorCode.UNSUPPORTED, "adapters of remote models are served by the remote engine itself")
        assert self._client is not None
        body: dict[str, Any] = {
            "model": self.upstream_model,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = params.stop
        if params.presence_penalty:
            body["presence_penalty"] = params.presence_penalty
        if params.frequency_penalty:
            body["frequency_penalty"] = params.frequency_penalty
        if prompt.is_chat:
            path, body["messages"] = "/chat/completions", prompt.messages
        else:
            path, body["prompt"] = "/completions", prompt.text
        finish: str | None = None
        usage: dict[str, int] | None = None
        try:
            with self._client.stream("POST", path, json=body) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise PlinthError(
                        ErrorCode.UPSTREAM_ERROR,
                        f"upstream {self.base_url} answered {resp.status_code}: {_error_message(resp.text)}",
                    )
                for line in resp.iter_lines():
                    if cancel.is_set():
                        finish = "cancelled"
                        break
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        event = json.loads(data)
                    except json.JSONDecodeError:
                        raise PlinthError(ErrorCode.UPSTREAM_ERROR, f"upstream {self.base_url} sent malformed JSON") from None
                    if "error" in event:
                        raise PlinthError(ErrorCode.UPSTREAM_ERROR, f"upstream error: {_error_message(json.dumps(event))}")
                    if event.get("usage"):
                        usage = {k: int(v) for k, v in event["usage"].items() if isinstance(v, int)}
                    for choice in event.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content") if prompt.is_chat else choice.get("text")
                        if piece:
                            yield Delta(text=piece, n_tokens=1)
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
        except httpx.HTTPError as e:
            raise PlinthError(ErrorCode.UPSTREAM_ERROR, f"upstream {self.base_url} failed: {e}") from None
        yield Delta(text="", n_tokens=0, finish_reason=finish or "stop", usage=usage)

    def health(self) -> RuntimeHealth:
        if self._client is None:
            return RuntimeHealth(ok=False, detail="not loaded")
        try:
            r = self._client.get("/models", timeout=5.0)
            return RuntimeHealth(ok=r.status_code < 400, detail=f"GET /models -> {r.status_code}")
        except httpx.HTTPError as e:
            return RuntimeHealth(ok=False, detail=str(e))

    def unload(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


def _error_message(text: str) -> str:
    try:
        err = json.loads(text).get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err)
        return str(err or text)[:500]
    except (json.JSONDecodeError, AttributeError):
        return text[:500]
