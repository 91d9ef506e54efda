"""The catalog area of the metadata store: models and their LoRA adapters."""

from __future__ import annotations

import abc

from plinth.domain import AdapterRecord, ModelRecord


class CatalogStore(abc.ABC):
    """Models of the catalog and their LoRA adapters."""

    # -- models ----------------------------------------------------------------------------
    @abc.abstractmethod
    def add_model(self, record: ModelRecord) -> ModelRecord:
        """Insert a model; PlinthError(ALREADY_EXISTS) if the name is taken. Returns the
        stored record (with ``id`` and ``created_at`` filled in)."""

    @abc.abstractmethod
    def get_model(self, name: str) -> ModelRecord:
        """PlinthError(MODEL_NOT_FOUND) if there is no model of that name."""

    @abc.abstractmethod
    def find_model(self, name: str) -> ModelRecord | None: ...

    @abc.abstractmethod
    def list_models(self) -> list[ModelRecord]:
        """All models, ordered by name."""

    @abc.abstractmethod
    def delete_model(self, name: str) -> ModelRecord:
        """Delete and return the record; PlinthError(MODEL_NOT_FOUND) if absent."""

    @abc.abstractmethod
    def set_model_runtime(self, name: str, runtime: str) -> ModelRecord:
        """Change the runtime that serves a model; PlinthError(MODEL_NOT_FOUND) if absent."""

    @abc.abstractmethod
    def count_models_with_digest(self, digest: str) -> int:
        """How many catalog entries reference these bytes (for artifact garbage collection)."""

    # -- adapters --------------------------------------------------------------------------
    # An adapter belongs to a base model: (base_model, name) is unique, and deleting the
    # model deletes its adapters (ON DELETE CASCADE) -- read them first if their artifacts
    # must be garbage-collected.
    @abc.abstractmethod
    def add_adapter(self, record: AdapterRecord) -> AdapterRecord:
        """Insert an adapter; PlinthError(ALREADY_EXISTS) if the base model already has an
        adapter of that name, PlinthError(MODEL_NOT_FOUND) if the base model does not exist.
        Returns the stored record (with ``id`` and ``created_at`` filled in)."""

    @abc.abstractmethod
    def get_adapter(self, base_model: str, name: str) -> AdapterRecord:
        """PlinthError(NOT_FOUND) if the base model has no adapter of that name (or there
        is no such base model)."""

    @abc.abstractmethod
    def find_adapter(self, base_model: str, name: str) -> AdapterRecord | None: ...

    @abc.abstractmethod
    def list_adapters(self, base_model: str | None = None) -> list[AdapterRecord]:
        """All adapters, or those of one base model (empty if it has none or does not exist),
        ordered by base model, then name."""

    @abc.abstractmethod
    def delete_adapter(self, base_model: str, name: str) -> AdapterRecord:
        """Delete and return the record; PlinthError(NOT_FOUND) if absent."""

    @abc.abstractmethod
    def count_adapters_with_digest(self, digest: str) -> int:
        """How many adapters reference these bytes, as ``digest`` or as ``gguf_digest``
        (an adapter referencing them through both counts once)."""

    @abc.abstractmethod
    def update_adapter_gguf(self, base_model: str, name: str, gguf_digest: str | None) -> AdapterRecord:
        """Set (or, with None, clear) the digest of the adapter's llama.cpp GGUF form and
        return the updated record; PlinthError(NOT_FOUND) if absent."""
