"""Text helpers shared by the local runtimes: chat templates and incremental decoding."""

from __future__ import annotations

import codecs
import re
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from plinth.errors import ErrorCode, PlinthError

# Used when a model ships no chat template: ChatML, which SmolLM2 and many others use.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def template_handles_tools(source: str | None) -> bool:
    """Whether a chat template renders tool definitions (reads a ``tools`` variable)."""
    return bool(source) and re.search(r"\btools\b", source or "") is not None


def _raise(message: str) -> None:
    raise PlinthError(ErrorCode.INVALID_REQUEST, f"the model's chat template refused the messages: {message}")


class ChatTemplate:
    """A model's Jinja chat template, rendered in a sandbox (templates come from model files)."""

    def __init__(self, source: str | None, *, bos_token: str = "", eos_token: str = "") -> None:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        try:
            self._template = env.from_string(source or CHATML_TEMPLATE)
        except TemplateError as e:
            raise PlinthError(ErrorCode.INVALID_MODEL_FILE, f"the model's chat template does not parse: {e}") from None
        self.bos_token = bos_token
        self.eos_token = eos_token
        #: whether the template lays out tool definitions itself (it reads a ``tools`` variable)
        self.handles_tools = template_handles_tools(source)

    def render(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True, tools: list[dict[str, Any]] | None = None) -> str:
        extra: dict[str, Any] = {"tools": tools} if tools else {}
        try:
            return self._template.render(
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                **extra,
            )
        except PlinthError:
            raise
        except Exception as e:  # TemplateError, and TypeError/ValueError/... from the template's own code
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"the model's chat template failed on these messages: {e}") from None


class IncrementalDecoder:
    """Turns token bytes into text without splitting multi-byte UTF-8 characters."""

    def __init__(self) -> None:
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._dec.decode(data, final=False)

    def flush(self) -> str:
        return self._dec.decode(b"", final=True)
