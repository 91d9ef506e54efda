"""Model catalog domain objects (no I/O)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class ModelFormat(str, enum.Enum):
    GGUF = "gguf"
    SAFETENSORS = "safetensors"  # a Hugging Face directory: config.json + *.safetensors
    REMOTE = "remote"  # served by a remote OpenAI-compatible engine


# Model names are used in URLs, on the command line and as OpenAI model ids. ':' is kept for
# adapter ids (``base:adapter``) and '@' for versions, so neither may appear in a name.
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class ModelInfo:
    """What inspecting a model file or directory tells (before it is stored)."""

    format: ModelFormat
    architecture: str | None
    context_length: int | None
    chat_template: str | None
    license: str | None
    size_bytes: int
    parameters: dict[str, Any] = field(default_factory=dict)  # quantisation, vocab size, eos ...


@dataclass(frozen=True)
class ModelRecord:
    """A model in the catalog.

    ``digest`` is the sha256 of the GGUF file, or of the manifest of a safetensors directory
    (see :mod:`plinth.store.artifacts`); it addresses the model's bytes in the artifact store.
    ``runtime`` names the inference runtime that serves it (``llamacpp``, ``torch``, ``openai``).
    ``source`` is where it came from (a path, ``builtin:...`` or an upstream URL).
    """

    name: str
    format: ModelFormat
    runtime: str
    digest: str | None
    size_bytes: int
    architecture: str | None = None
    context_length: int | None = None
    chat_template: str | None = None
    license: str | None = None
    source: str | None = None
    builtin: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    id: str | None = None

    def public_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "format": self.format.value,
            "runtime": self.runtime,
            "digest": self.digest,
            "size_bytes": self.size_bytes,
            "architecture": self.architecture,
            "context_length": self.context_length,
            "license": self.license,
            "source": self.source,
            "builtin": self.builtin,
            "parameters": self.parameters,
            "has_chat_template": bool(self.chat_template),
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


class AdapterFormat(str, enum.Enum):
    GGUF_LORA = "gguf-lora"  # a llama.cpp LoRA GGUF (general.type = adapter)
    PEFT_LORA = "peft-lora"  # a PEFT directory: adapter_config.json + adapter_model.safetensors


@dataclass(frozen=True)
class AdapterInfo:
    """What inspecting an adapter file or directory tells (before it is stored)."""

    format: AdapterFormat
    architecture: str | None  # of the base it was trained on, when the files say
    rank: int | None
    alpha: float | None
    target_modules: list[str]
    size_bytes: int
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AdapterRecord:
    """A LoRA adapter of a base model in the catalog, served as the model id ``base:name``.

    ``digest`` addresses the adapter as imported (a GGUF file or a PEFT tree manifest);
    ``gguf_digest`` addresses the llama.cpp GGUF form (the same as ``digest`` for GGUF
    adapters, a converted copy for PEFT adapters of GGUF bases), None when not converted.
    """

    base_model: str
    name: str
    format: AdapterFormat
    digest: str
    size_bytes: int
    rank: int | None = None
    alpha: float | None = None
    target_modules: list[str] = field(default_factory=list)
    gguf_digest: str | None = None
    source: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    id: str | None = None

    @property
    def model_id(self) -> str:
        return f"{self.base_model}:{self.name}"

    def public_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model_id": self.model_id,
            "base_model": self.base_model,
            "name": self.name,
            "format": self.format.value,
            "digest": self.digest,
            "gguf_digest": self.gguf_digest,
            "size_bytes": self.size_bytes,
            "rank": self.rank,
            "alpha": self.alpha,
            "target_modules": list(self.target_modules),
            "source": self.source,
            "parameters": self.parameters,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }
