"""A remote OpenAI-compatible engine (vLLM, Ollama, TGI, a llama.cpp server, another plinth).

This is the production path for GPU engines: plinth keeps the catalog, limits, metrics and
(later) guardrails and routing, and forwards generation. The model record's ``parameters``
hold ``base_url`` and ``upstream_model``; an API key, if the engine needs one, is read from
the environment variable named by ``api_key_env`` (never stored).

What the engine answers is not passed on verbatim: any status but 2xx (a redirect included:
plinth never follows one) and an answer that is not an event stream become ``upstream_error``
(502) with the status and a short summary (the engine's error ``code`` or ``type`` when it is
a plain token); the engine's own body goes to the server log, cut to
:data:`LOGGED_BODY_BYTES`, since it can hold internal hosts, paths or a prompt.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from plinth.errors import ErrorCode, PlinthError
from plinth.runtimes.base import AdapterRef, Delta, InferenceRuntime, Prompt, RuntimeHealth, SamplingParams

log = logging.getLogger("plinth.runtimes.openai")

#: How much of an engine's error body is kept for the server log.
LOGGED_BODY_BYTES = 4096
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


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
                if not 200 <= resp.status_code < 300:
                    raise self._answer_refused(resp)
                events = 0
                other = ""  # what came that is not an event, for the log
                for line in resp.iter_lines():
                    if cancel.is_set():
                        finish = "cancelled"
                        break
                    if not line.startswith("data:"):
                        if len(other) < LOGGED_BODY_BYTES:
                            other += line + "\n"
                        continue
                    data = line[5:].strip()
                    events += 1
                    if data == "[DONE]":
                        break
                    try:
                        event = json.loads(data)
                    except json.JSONDecodeError:
                        raise self._failure("sent an event that is not JSON", data) from None
                    if not isinstance(event, dict):
                        raise self._failure("sent an event that is not a JSON object", data)
                    if "error" in event:
                        raise self._failure(f"reported an error mid-stream{_summary(event)}", data)
                    try:
                        if event.get("usage"):
                            usage = {k: int(v) for k, v in event["usage"].items() if isinstance(v, int)}
                        for choice in event.get("choices") or []:
                            piece = (choice.get("delta") or {}).get("content") if prompt.is_chat else choice.get("text")
                            if piece:
                                yield Delta(text=str(piece), n_tokens=1)
                            if choice.get("finish_reason"):
                                finish = str(choice["finish_reason"])
                    except (AttributeError, TypeError, ValueError):
                        raise self._failure("sent an event in an unexpected shape", data) from None
                if events == 0 and finish != "cancelled":
                    content_type = resp.headers.get("content-type", "").split(";")[0].strip() or "none"
                    raise self._failure(f"answered {resp.status_code} without an event stream (content-type {content_type})", other)
        except httpx.HTTPError as e:
            log.warning("upstream %s of model %r failed: %r", self.base_url, self.model.name, e)
            raise PlinthError(
                ErrorCode.UPSTREAM_ERROR, f"the engine of model {self.model.name!r} could not be reached or failed ({type(e).__name__})"
            ) from None
        yield Delta(text="", n_tokens=0, finish_reason=finish or "stop", usage=usage)

    def _failure(self, what: str, raw: str) -> PlinthError:
        """``upstream_error`` naming the model; what the engine sent goes to the log only."""
        log.warning("upstream %s of model %r %s: %r", self.base_url, self.model.name, what, raw[:LOGGED_BODY_BYTES])
        return PlinthError(ErrorCode.UPSTREAM_ERROR, f"the engine of model {self.model.name!r} {what}")

    def _answer_refused(self, resp: httpx.Response) -> PlinthError:
        raw = b""
        for chunk in resp.iter_bytes():
            raw += chunk
            if len(raw) >= LOGGED_BODY_BYTES:
                break
        text = raw[:LOGGED_BODY_BYTES].decode("utf-8", errors="replace")
        status = f"{resp.status_code} {resp.reason_phrase}".strip()
        if 300 <= resp.status_code < 400:
            return self._failure(
                f"answered {status}, a redirect; plinth does not follow an engine's redirects: check the model's base_url", text
            )
        summary = ""
        with contextlib.suppress(ValueError):  # json.JSONDecodeError is a ValueError
            summary = _summary(json.loads(text))
        return self._failure(f"answered {status}{summary}", text)

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


def _summary(payload: object) -> str:
    """`` (code: X)`` from an OpenAI-style error body, when its code or type is a plain token."""
    err = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(err, dict):
        return ""
    for key in ("code", "type"):
        value = err.get(key)
        if isinstance(value, str) and _TOKEN_RE.match(value):
            return f" ({key}: {value})"
    return ""
