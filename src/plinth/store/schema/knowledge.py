"""Tables of the knowledge area: knowledge bases, their versions, documents, chunks, and the
citations of responses.

Versions are ranges: a document or chunk is visible in version ``v`` when
``added_version <= v`` and (``removed_version`` is null or ``removed_version > v``). A
change never rewrites rows, it only closes ranges and adds rows, so every kept version stays
queryable until it is pruned. ``kb_chunks.embedding`` (float32 bytes) is the source of truth
the indexes are built from; ``kb_chunks.tsv`` is the Postgres full-text vector (unused on
SQLite, where the embedded index keeps FTS5 beside the store).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from plinth.store.schema.base import Base, Scoped, project_column

#: BIGINT on Postgres, INTEGER (the rowid alias, autoincrementing) on SQLite
BigId = BigInteger().with_variant(Integer(), "sqlite")
TsVector = Text().with_variant(TSVECTOR(), "postgresql")


class KnowledgeBaseRow(Scoped, Base):
    __tablename__ = "knowledge_bases"
    __table_args__ = (UniqueConstraint("project", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = project_column()
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    embedder: Mapped[str] = mapped_column(String(64))
    embedding_model: Mapped[str] = mapped_column(String(300))
    dim: Mapped[int] = mapped_column(Integer)
    chunk_tokens: Mapped[int] = mapped_column(Integer)
    overlap_tokens: Mapped[int] = mapped_column(Integer)
    current_version: Mapped[int] = mapped_column(Integer, default=0)
    oldest_version: Mapped[int] = mapped_column(Integer, default=0)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    rebuild_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class KbVersionRow(Scoped, Base):
    __tablename__ = "kb_versions"

    kb_id: Mapped[int] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = project_column()
    note: Mapped[str] = mapped_column(Text, default="")
    documents: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]


class KbDocumentRow(Scoped, Base):
    __tablename__ = "kb_documents"
    __table_args__ = (Index(None, "kb_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project: Mapped[str] = project_column()
    kb_id: Mapped[int] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    doc_metadata: Mapped[dict[str, Any]] = mapped_column("metadata")
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    added_version: Mapped[int] = mapped_column(Integer)
    removed_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]


class KbChunkRow(Scoped, Base):
    __tablename__ = "kb_chunks"
    __table_args__ = (
        Index(None, "kb_id", "id"),
        Index("ix_kb_chunks_tsv", "tsv", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project: Mapped[str] = project_column()
    kb_id: Mapped[int] = mapped_column(ForeignKey("knowledge_bases.id", ondelete="CASCADE"))
    document_id: Mapped[int] = mapped_column(BigId, ForeignKey("kb_documents.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    heading: Mapped[str] = mapped_column(Text, default="")
    start_offset: Mapped[int] = mapped_column(Integer)
    end_offset: Mapped[int] = mapped_column(Integer)
    n_tokens: Mapped[int] = mapped_column(Integer)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    tsv: Mapped[str | None] = mapped_column(TsVector)
    added_version: Mapped[int] = mapped_column(Integer)
    removed_version: Mapped[int | None] = mapped_column(Integer)


class KbCitationRow(Scoped, Base):
    """Citations of one chat response; no foreign key: they outlive a removed knowledge base."""

    __tablename__ = "kb_citations"

    response_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    project: Mapped[str] = project_column()
    knowledge_base: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(300))
    query: Mapped[str] = mapped_column(Text)
    citations: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(index=True)
