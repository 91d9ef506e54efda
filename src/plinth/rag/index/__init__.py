"""Knowledge-base indexes: one interface, backends registered by name (ADR 0022).

- ``embedded``: exact cosine search with numpy over the chunk embeddings plus SQLite FTS5
  (BM25) in memory, built from the metadata store and kept in step with it; works on any
  store (SQLite or Postgres).
- ``postgres``: pgvector HNSW for vectors and Postgres full-text search (``tsvector`` with a
  GIN index) in the team store itself; needs the ``vector`` extension.

The store is the authority on what a version contains: indexes return candidates, and the
service keeps only chunks the store says are visible in the version asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from plinth.errors import ErrorCode, PlinthError
from plinth.rag.index.base import Hit, KnowledgeIndex

_REGISTRY: dict[str, Callable[[Any], KnowledgeIndex]] = {}


def register_index(name: str, factory: Callable[[Any], KnowledgeIndex]) -> None:
    """``factory(store)`` builds the index over a metadata store."""
    _REGISTRY[name] = factory


def index_names() -> list[str]:
    return sorted(_REGISTRY)


def open_index(name: str, store: Any) -> KnowledgeIndex:
    if name == "auto":
        from plinth.rag.index.postgres import pgvector_available

        name = "postgres" if getattr(store, "dialect_name", "") == "postgresql" and pgvector_available(store.engine) else "embedded"
    factory = _REGISTRY.get(name)
    if factory is None:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"unknown knowledge-base index {name!r}; known: auto, {', '.join(index_names())}")
    return factory(store)


def _embedded(store: Any) -> KnowledgeIndex:
    return importlib.import_module("plinth.rag.index.embedded").EmbeddedIndex(store)


def _postgres(store: Any) -> KnowledgeIndex:
    return importlib.import_module("plinth.rag.index.postgres").PostgresIndex(store)


register_index("embedded", _embedded)
register_index("postgres", _postgres)

__all__ = ["Hit", "KnowledgeIndex", "index_names", "open_index", "register_index"]
