"""Runtimes register by name. Built-in runtimes use the same mechanism a third party would.

The registry maps a name to ``module:Class`` so that ``torch`` or ``llama_cpp`` are imported
only when a model that needs them is loaded; a missing optional dependency fails loudly with
the install hint.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from plinth.errors import ErrorCode, PlinthError
from plinth.runtimes.base import InferenceRuntime


@dataclass(frozen=True)
class RuntimeEntry:
    name: str
    target: str  # "package.module:ClassName"
    requires: tuple[str, ...]  # importable module names
    install_hint: str
    description: str


_REGISTRY: dict[str, RuntimeEntry] = {}


def register_runtime(entry: RuntimeEntry) -> None:
    _REGISTRY[entry.name] = entry


def runtime_names() -> list[str]:
    return sorted(_REGISTRY)


def runtime_entry(name: str) -> RuntimeEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"unknown runtime {name!r}; known runtimes: {', '.join(runtime_names())}",
            param="runtime",
        ) from None


def missing_requirements(name: str) -> list[str]:
    entry = runtime_entry(name)
    return [m for m in entry.requires if importlib.util.find_spec(m) is None]


def load_runtime_class(name: str) -> type[InferenceRuntime]:
    entry = runtime_entry(name)
    missing = missing_requirements(name)
    if missing:
        raise PlinthError(
            ErrorCode.RUNTIME_UNAVAILABLE,
            f"runtime {name!r} needs {', '.join(missing)}, which is not installed: {entry.install_hint}",
        )
    module_name, _, cls_name = entry.target.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    if not (isinstance(cls, type) and issubclass(cls, InferenceRuntime)):
        raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"runtime {name!r} target {entry.target} is not an InferenceRuntime")
    return cls


# Built-in runtimes: registered exactly as a plugin would register its own.
register_runtime(
    RuntimeEntry(
        name="llamacpp",
        target="plinth.runtimes.llamacpp:LlamaCppRuntime",
        requires=("llama_cpp",),
        install_hint="pip install 'llama-cpp-python>=0.3.36,<0.4' (compiles llama.cpp, about 4 minutes)",
        description="GGUF models on CPU through llama.cpp (the default for the embedded model)",
    )
)
register_runtime(
    RuntimeEntry(
        name="torch",
        target="plinth.runtimes.torch_hf:TorchRuntime",
        requires=("torch", "transformers"),
        install_hint="pip install torch==2.13.0 first, then pip install 'plinth[torch]'",
        description="Hugging Face safetensors directories through transformers (bf16 where the CPU supports it)",
    )
)
register_runtime(
    RuntimeEntry(
        name="openai",
        target="plinth.runtimes.openai_upstream:OpenAIUpstreamRuntime",
        requires=("httpx",),
        install_hint="pip install httpx",
        description="a remote OpenAI-compatible engine (vLLM, Ollama, TGI, llama.cpp server) by URL",
    )
)
