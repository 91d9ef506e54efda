"""Knowledge bases (RAG): bases, versions, documents, chunks, passages (no I/O)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from plinth.domain.numbers import VERSION_MAX, whole_number

#: a knowledge-base name: lower case, digits, '.', '_' and '-'; no '@' (it separates a version)
KB_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class KbRef:
    """``name`` or ``name@version`` as users write it."""

    name: str
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> KbRef:
        name, sep, ver = text.strip().partition("@")
        if not KB_NAME_RE.match(name):
            raise ValueError(
                f"invalid knowledge base {text!r}: a name is 1-100 of a-z 0-9 . _ - (starting with a letter or digit), "
                "optionally followed by @VERSION"
            )
        if sep:
            number = whole_number(ver, maximum=VERSION_MAX)
            if number is None:
                raise ValueError(f"invalid knowledge base {text!r}: the version after '@' must be a whole number from 0 to {VERSION_MAX}")
            return cls(name, number)
        return cls(name)

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


@dataclass
class KnowledgeBase:
    name: str
    embedder: str  # embedder backend name (plinth.embeddings)
    embedding_model: str  # the exact model id the vectors come from
    dim: int
    chunk_tokens: int
    overlap_tokens: int
    description: str = ""
    id: int | None = None
    current_version: int = 0
    oldest_version: int = 0  # versions before it were pruned
    seq: int = 0  # bumped by every change, so indexes know when to catch up
    rebuild_seq: int = 0  # bumped when chunks are physically deleted (prune): indexes rebuild
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class KbVersion:
    version: int
    note: str
    documents: int
    chunks: int
    created_at: datetime | None = None


@dataclass
class Document:
    """A document as stored: its extracted text is what chunk offsets refer to."""

    name: str  # relative path shown in citations, e.g. "policies/gold-plan.md"
    sha256: str
    media_type: str
    size_bytes: int
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    added_version: int | None = None
    removed_version: int | None = None
    chunk_count: int = 0
    created_at: datetime | None = None


@dataclass
class Chunk:
    """A piece of a document: ``text == document.text[start:end]``; ``heading`` is the path
    of headings above it ("Gold plan > Deductibles")."""

    ordinal: int
    text: str
    heading: str
    start: int
    end: int
    n_tokens: int
    id: int | None = None
    document_id: int | None = None
    embedding: bytes | None = None  # float32 little-endian, dim values
    added_version: int | None = None
    removed_version: int | None = None


@dataclass(frozen=True)
class IndexedChunk:
    """What an index needs of a chunk."""

    id: int
    document_id: int
    added_version: int
    removed_version: int | None
    heading: str
    text: str
    embedding: bytes


@dataclass
class Passage:
    """A retrieved chunk with its provenance and scores; ``as_citation`` is what responses carry."""

    chunk_id: int
    knowledge_base: str
    version: int
    document: str
    heading: str
    start: int
    end: int
    text: str
    score: float  # fused (reciprocal rank fusion)
    similarity: float  # cosine similarity to the query
    vector_rank: int | None = None
    keyword_rank: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "knowledge_base": self.knowledge_base,
            "version": self.version,
            "document": self.document,
            "heading": self.heading,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "score": round(self.score, 6),
            "similarity": round(self.similarity, 6),
            "vector_rank": self.vector_rank,
            "keyword_rank": self.keyword_rank,
        }


@dataclass(frozen=True)
class CitationRecord:
    """The citations of one response (``chatcmpl-...``), kept for the management API."""

    response_id: str
    knowledge_base: str
    version: int
    model: str
    query: str
    citations: list[dict[str, Any]]
    created_at: datetime | None = None
