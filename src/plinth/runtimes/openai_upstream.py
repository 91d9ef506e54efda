"""A remote OpenAI-compatible engine (vLLM, Ollama, TGI, a llama.cpp server, another plinth).

This is the production path for GPU engines: plinth keeps the catalog, limits, metrics and
(later) guardrails and routing, and forwards generation. The model record's ``parameters``
hold ``base_url`` and ``upstream_model``; an API key, if the engine needs one, is the named
secret ``api_key_secret`` (ADR 0081; the operator defines secrets, a record only names one).
A record from before named an environment variable in ``api_key_env``: that name is now read
as a secret's name, never as a variable, so such a model fails to load until the operator
defines the secret.

Every request goes through the outbound fetcher (:mod:`plinth.outbound`, ADR 0080): the
engine's address is judged by the outbound rules and pinned for the connection, no redirect
is followed, and an answer is bounded in size and by ``upstream_timeout_s`` as a whole.

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
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from plinth.errors import ErrorCode, PlinthError
from plinth.outbound import Outbound, OutboundLimit, OutboundRefused, check_url
from plinth.runtimes.base import AdapterRef, Delta, InferenceRuntime, OutputConstraint, Prompt, RuntimeHealth, SamplingParams

log = logging.getLogger("plinth.runtimes.openai")

#: How much of an engine's error body is kept for the server log.
LOGGED_BODY_BYTES = 4096
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class OpenAIUpstreamRuntime(InferenceRuntime):
    name = "openai"
    max_concurrent = 64  # the remote engine does its own batching
    remote_structured_outputs = True
    logprobs_supported = False  # not parsed from the engine's stream (yet)

    _client: httpx.Client | None = None

    def load(self) -> None:
        params = self.model.parameters or {}
        self.base_url = str(params.get("base_url") or "").rstrip("/")
        self.upstream_model = str(params.get("upstream_model") or self.model.name)
        self.outbound = self.options.outbound or Outbound()  # no allow-list: internal addresses refused
        try:
            host = check_url(self.base_url, what="base_url").host
        except OutboundRefused as e:
            log.warning("model %r cannot be loaded: %s", self.model.name, e.message)
            raise PlinthError(
                ErrorCode.RUNTIME_UNAVAILABLE,
                f"model {self.model.name!r} has a base_url the outbound rules refuse; the server log says why",
            ) from None
        headers = {}
        secret_name = params.get("api_key_secret") or params.get("api_key_env")  # the old field names a secret now
        if secret_name:
            field = "api_key_secret" if params.get("api_key_secret") else "api_key_env (now read as a secret's name)"
            try:
                secret = self.outbound.secrets.get(str(secret_name), host=host)
            except PlinthError as e:
                raise PlinthError(
                    ErrorCode.RUNTIME_UNAVAILABLE, f"model {self.model.name!r} cannot be loaded: {field}: {e.message}"
                ) from None
            headers["Authorization"] = f"Bearer {secret.value}"
        self._client = self.outbound.client(
            self.base_url,
            headers=headers,
            timeout=httpx.Timeout(self.options.upstream_timeout_s, connect=10.0),
            deadline_s=self.options.upstream_timeout_s,
            what=f"the engine of model {self.model.name!r}",
        )
        self._ctx = self.model.context_length

    def context_length(self) -> int | None:
        return self._ctx

    def prepare_chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, prefill: str = "") -> Prompt:
        """The messages as sent (OpenAI's shape, calls and tool results included) and the tools,
        which the remote engine lays out and enforces itself; a prefill has no meaning here."""
        return Prompt(messages=messages, n_tokens=None, is_chat=True, tools=tools or None)

    def check_constraint(self, constraint: OutputConstraint) -> None:
        """The remote engine enforces ``response_format`` itself: it is passed on as sent."""

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
        if params.logit_bias:
            body["logit_bias"] = {str(t): b for t, b in params.logit_bias.items()}
        if params.constraint is not None and params.constraint.response_format is not None:
            body["response_format"] = params.constraint.response_format
        if prompt.tools:
            body["tools"] = prompt.tools
            if prompt.tool_choice is not None:
                body["tool_choice"] = prompt.tool_choice
            if prompt.parallel_tool_calls is False:
                body["parallel_tool_calls"] = False
        calls: dict[int, dict[str, str]] = {}  # streamed tool calls by index: name, arguments
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
                            delta = choice.get("delta") or {}
                            piece = delta.get("content") if prompt.is_chat else choice.get("text")
                            if piece:
                                yield Delta(text=str(piece), n_tokens=1)
                            for tc in (delta.get("tool_calls") or []) if prompt.is_chat else []:
                                entry = calls.setdefault(int(tc.get("index", len(calls))), {"name": "", "arguments": ""})
                                fn = tc.get("function") or {}
                                entry["name"] += str(fn.get("name") or "")
                                entry["arguments"] += str(fn.get("arguments") or "")
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
        except (OutboundRefused, OutboundLimit) as e:
            raise self._outbound_failure(e) from None
        for i in sorted(calls):  # whole calls, written as plinth's tool-call blocks (serving/tools.py reads them)
            call = calls[i]
            block = json.dumps({"name": call["name"], "arguments": call["arguments"]}, ensure_ascii=False)
            yield Delta(text=f"<tool_call>\n{block}\n</tool_call>\n", n_tokens=0)
        yield Delta(text="", n_tokens=0, finish_reason=finish or "stop", usage=usage)

    def _failure(self, what: str, raw: str) -> PlinthError:
        """``upstream_error`` naming the model; what the engine sent goes to the log only, with
        secret values taken out (an engine may echo the Authorization header back)."""
        body = self.outbound.secrets.redact(raw[:LOGGED_BODY_BYTES])
        log.warning("upstream %s of model %r %s: %r", self.base_url, self.model.name, what, body)
        return PlinthError(ErrorCode.UPSTREAM_ERROR, f"the engine of model {self.model.name!r} {what}")

    def _outbound_failure(self, e: PlinthError) -> PlinthError:
        """A refusal or a limit of the outbound fetcher, for a caller of /v1: the rule and the
        address go to the log, the caller learns which model and what kind of failure."""
        log.warning("upstream %s of model %r: %s", self.base_url, self.model.name, e.message)
        if isinstance(e, OutboundRefused):
            what = "is at an address the outbound rules refuse; the server log says which"
        elif e.code is ErrorCode.PAYLOAD_TOO_LARGE:
            what = "sent an answer over the size limit"
        else:
            what = "did not answer within PLINTH_UPSTREAM_TIMEOUT_S"
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
            return RuntimeHealth(ok=False, detail=type(e).__name__)
        except PlinthError as e:  # refused or over a limit
            return RuntimeHealth(ok=False, detail=e.message)

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
