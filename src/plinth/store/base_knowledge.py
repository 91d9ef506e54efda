"""The knowledge area of the metadata store: knowledge bases, versions, documents, chunks,
citations. Every change is one transaction that creates one version (ADR 0021)."""

from __future__ import annotations

import abc
from collections.abc import Iterator

from plinth.domain.knowledge import (
    Chunk,
    CitationRecord,
    Document,
    IndexedChunk,
    KbVersion,
    KnowledgeBase,
)


class DocumentChange:
    """One document to add (with its chunks, embedded) or one name to remove."""

    def __init__(self, document: Document | None = None, chunks: list[Chunk] | None = None, remove: str | None = None):
        self.document = document
        self.chunks = chunks or []
        self.remove = remove


class ChangeResult:
    """What a change did, per document name: ``added``, ``replaced``, ``unchanged``,
    ``removed``, ``missing``. ``version`` is None when nothing changed."""

    def __init__(self) -> None:
        self.version: int | None = None
        self.outcomes: dict[str, str] = {}


class KnowledgeStore(abc.ABC):
    @abc.abstractmethod
    def create_kb(self, kb: KnowledgeBase) -> KnowledgeBase:
        """Store a new knowledge base at version 0 (ALREADY_EXISTS if the name is taken)."""

    @abc.abstractmethod
    def find_kb(self, name: str) -> KnowledgeBase | None: ...

    @abc.abstractmethod
    def list_kbs(self) -> list[KnowledgeBase]: ...

    @abc.abstractmethod
    def delete_kb(self, name: str) -> bool:
        """Delete a knowledge base with every version, document and chunk."""

    @abc.abstractmethod
    def list_kb_versions(self, kb_id: int) -> list[KbVersion]: ...

    @abc.abstractmethod
    def get_kb_version(self, kb_id: int, version: int) -> KbVersion | None: ...

    @abc.abstractmethod
    def list_documents(self, kb_id: int, version: int, *, with_text: bool = False) -> list[Document]:
        """Documents visible in ``version``, by name."""

    @abc.abstractmethod
    def get_document(self, kb_id: int, name: str, version: int) -> Document | None: ...

    @abc.abstractmethod
    def apply_changes(self, kb_name: str, changes: list[DocumentChange], note: str) -> ChangeResult:
        """Apply adds and removes in one transaction that creates one new version; an add
        whose name is visible with the same sha256 is a no-op, with another sha256 it
        replaces the old document. Nothing changed: no version."""

    @abc.abstractmethod
    def chunks_for_index(self, kb_id: int, after_id: int, limit: int) -> list[IndexedChunk]:
        """Chunks of the knowledge base with id > ``after_id`` in id order (index building)."""

    @abc.abstractmethod
    def removed_chunk_markers(self, kb_id: int) -> Iterator[tuple[int, int]]:
        """(chunk id, removed_version) of every closed chunk of the knowledge base."""

    @abc.abstractmethod
    def visible_chunks(self, kb_id: int, version: int, ids: list[int]) -> dict[int, tuple[Chunk, Document]]:
        """The chunks among ``ids`` visible in ``version``, with their documents (no text)."""

    @abc.abstractmethod
    def prune_kb(self, kb_name: str, keep: int) -> tuple[int, int]:
        """Keep the newest ``keep`` versions; delete older versions and the rows only they
        could see. Returns (versions deleted, chunks deleted)."""

    @abc.abstractmethod
    def save_citations(self, record: CitationRecord) -> None: ...

    @abc.abstractmethod
    def get_citations(self, response_id: str) -> CitationRecord | None: ...
