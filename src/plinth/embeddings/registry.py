"""Embedders register by name, as runtimes do; ``get_embedder`` keeps one per process.

A third party adds a backend with :func:`register_embedder` (a factory taking the settings).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plinth.embeddings.base import Embedder
from plinth.errors import ErrorCode, PlinthError


@dataclass(frozen=True)
class EmbedderEntry:
    name: str
    factory: Callable[[Any], Embedder]  # settings -> an unloaded embedder with a load() method
    description: str


_REGISTRY: dict[str, EmbedderEntry] = {}
_INSTANCES: dict[tuple[Any, ...], Embedder] = {}
_LOCK = threading.Lock()


def register_embedder(entry: EmbedderEntry) -> None:
    _REGISTRY[entry.name] = entry


def embedder_names() -> list[str]:
    return sorted(_REGISTRY)


def _key(settings: Any, name: str) -> tuple[Any, ...]:
    if name == "openai":
        return (name, settings.embedding_url, settings.embedding_remote_model)
    return (name, settings.embedding_threads)


def get_embedder(settings: Any, name: str | None = None) -> Embedder:
    """The embedder ``name`` (default ``settings.embedding_model``), loaded once per process."""
    name = name or settings.embedding_model
    entry = _REGISTRY.get(name)
    if entry is None:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"unknown embedding model {name!r}; known: {', '.join(embedder_names())}",
            param="embedding_model",
        )
    key = _key(settings, name)
    emb = _INSTANCES.get(key)
    if emb is not None:
        return emb
    with _LOCK:
        emb = _INSTANCES.get(key)
        if emb is None:
            emb = entry.factory(settings)
            load = getattr(emb, "load", None)
            if load is not None:
                load()
            _INSTANCES[key] = emb
    return emb


def reset_embedders() -> None:
    """Forget the loaded embedders (tests)."""
    with _LOCK:
        for emb in _INSTANCES.values():
            emb.close()
        _INSTANCES.clear()


def _minilm(settings: Any) -> Embedder:
    mod = importlib.import_module("plinth.embeddings.minilm")
    return mod.MiniLMEmbedder(threads=settings.embedding_threads)


def _remote(settings: Any) -> Embedder:
    if not settings.embedding_url:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            "PLINTH_EMBEDDING_MODEL=openai needs PLINTH_EMBEDDING_URL (an OpenAI-compatible /v1 base URL)",
        )
    from plinth.outbound import Outbound

    mod = importlib.import_module("plinth.embeddings.remote")
    return mod.RemoteEmbedder(
        settings.embedding_url,
        settings.embedding_remote_model or "text-embedding-3-small",
        outbound=Outbound.from_settings(settings),
        api_key_secret=settings.embedding_api_key_secret,
        timeout_s=settings.upstream_timeout_s,
    )


register_embedder(EmbedderEntry("minilm", _minilm, "all-MiniLM-L6-v2 (384-d), embedded, onnxruntime on CPU"))
register_embedder(EmbedderEntry("openai", _remote, "a remote OpenAI-compatible /v1/embeddings by URL"))
