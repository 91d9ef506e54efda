"""The knowledge area in SQL: knowledge bases, versions as row ranges, documents, chunks,
citations."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from plinth.domain.knowledge import Chunk, CitationRecord, Document, IndexedChunk, KbVersion, KnowledgeBase
from plinth.errors import ErrorCode, PlinthError, not_found
from plinth.store.base_knowledge import ChangeResult, DocumentChange
from plinth.store.schema.knowledge import KbChunkRow, KbCitationRow, KbDocumentRow, KbVersionRow, KnowledgeBaseRow
from plinth.store.sql.common import RefusedValue, SqlBase, db_reason, is_unique_violation
from plinth.store.sql.engine import rowcount


def _visible(cls: type[KbDocumentRow] | type[KbChunkRow], version: int):  # type: ignore[no-untyped-def]
    return and_(
        cls.added_version <= version,
        or_(cls.removed_version.is_(None), cls.removed_version > version),
    )


class KnowledgeSql(SqlBase):
    """:class:`plinth.store.base_knowledge.KnowledgeStore` on SQL."""

    # -- knowledge bases -------------------------------------------------------------------
    def create_kb(self, kb: KnowledgeBase) -> KnowledgeBase:
        now = datetime.now(UTC)
        row = KnowledgeBaseRow(
            name=kb.name,
            description=kb.description,
            embedder=kb.embedder,
            embedding_model=kb.embedding_model,
            dim=kb.dim,
            chunk_tokens=kb.chunk_tokens,
            overlap_tokens=kb.overlap_tokens,
            current_version=0,
            oldest_version=0,
            seq=0,
            rebuild_seq=0,
            created_at=now,
            updated_at=now,
        )
        try:
            with self._session(write=True) as s:
                s.add(row)
                s.flush()
                s.add(KbVersionRow(project=row.project, kb_id=row.id, version=0, note="created", documents=0, chunks=0, created_at=now))
                return _kb(row)
        except IntegrityError as e:
            if is_unique_violation(e):
                raise PlinthError(ErrorCode.ALREADY_EXISTS, f"knowledge base {kb.name!r} already exists", param="name") from None
            raise
        except RefusedValue as e:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"knowledge base cannot be stored: {db_reason(e)}") from None

    def find_kb(self, name: str) -> KnowledgeBase | None:
        with self._session() as s:
            row = s.scalars(select(KnowledgeBaseRow).where(KnowledgeBaseRow.name == name, self._visible(KnowledgeBaseRow))).one_or_none()
            return None if row is None else _kb(row)

    def list_kbs(self) -> list[KnowledgeBase]:
        with self._session() as s:
            query = select(KnowledgeBaseRow).where(self._visible(KnowledgeBaseRow)).order_by(KnowledgeBaseRow.name)
            return [_kb(r) for r in s.scalars(query)]

    def delete_kb(self, name: str) -> bool:
        with self._session(write=True) as s:
            row = s.scalars(select(KnowledgeBaseRow).where(KnowledgeBaseRow.name == name, self._visible(KnowledgeBaseRow))).one_or_none()
            if row is None:
                return False
            # Children first: SQLite cascades too, but one statement per table keeps it fast.
            s.execute(delete(KbChunkRow).where(KbChunkRow.kb_id == row.id))
            s.execute(delete(KbDocumentRow).where(KbDocumentRow.kb_id == row.id))
            s.execute(delete(KbVersionRow).where(KbVersionRow.kb_id == row.id))
            s.delete(row)
            return True

    # -- versions and documents ------------------------------------------------------------
    def list_kb_versions(self, kb_id: int) -> list[KbVersion]:
        with self._session() as s:
            rows = s.scalars(select(KbVersionRow).where(KbVersionRow.kb_id == kb_id).order_by(KbVersionRow.version))
            return [_version(r) for r in rows]

    def get_kb_version(self, kb_id: int, version: int) -> KbVersion | None:
        with self._session() as s:
            row = s.get(KbVersionRow, (kb_id, version))
            return None if row is None else _version(row)

    def list_documents(self, kb_id: int, version: int, *, with_text: bool = False) -> list[Document]:
        with self._session() as s:
            rows = s.scalars(
                select(KbDocumentRow).where(KbDocumentRow.kb_id == kb_id, _visible(KbDocumentRow, version)).order_by(KbDocumentRow.name)
            )
            return [_document(r, with_text=with_text) for r in rows]

    def get_document(self, kb_id: int, name: str, version: int) -> Document | None:
        with self._session() as s:
            row = s.scalars(
                select(KbDocumentRow).where(KbDocumentRow.kb_id == kb_id, KbDocumentRow.name == name, _visible(KbDocumentRow, version))
            ).one_or_none()
            return None if row is None else _document(row, with_text=True)

    def apply_changes(self, kb_name: str, changes: list[DocumentChange], note: str) -> ChangeResult:
        result = ChangeResult()
        now = datetime.now(UTC)
        pg = self.dialect_name == "postgresql"
        try:
            with self._session(write=True) as s:
                kb = s.scalars(
                    select(KnowledgeBaseRow).where(KnowledgeBaseRow.name == kb_name, self._visible(KnowledgeBaseRow)).with_for_update()
                ).one_or_none()
                if kb is None:
                    raise not_found("knowledge base", kb_name)
                cur, new = kb.current_version, kb.current_version + 1
                visible = {
                    r.name: r for r in s.scalars(select(KbDocumentRow).where(KbDocumentRow.kb_id == kb.id, _visible(KbDocumentRow, cur)))
                }

                def close(doc: KbDocumentRow) -> None:
                    doc.removed_version = new
                    s.execute(
                        update(KbChunkRow)
                        .where(KbChunkRow.document_id == doc.id, KbChunkRow.removed_version.is_(None))
                        .values(removed_version=new)
                    )

                changed = False
                for ch in changes:
                    if ch.remove is not None:
                        old = visible.pop(ch.remove, None)
                        if old is None:
                            result.outcomes[ch.remove] = "missing"
                            continue
                        close(old)
                        result.outcomes[ch.remove] = "removed"
                        changed = True
                        continue
                    doc = ch.document
                    assert doc is not None
                    old = visible.get(doc.name)
                    if old is not None and old.sha256 == doc.sha256:
                        result.outcomes[doc.name] = "unchanged"
                        continue
                    if old is not None:
                        close(old)
                    row = KbDocumentRow(
                        project=kb.project,
                        kb_id=kb.id,
                        name=doc.name,
                        sha256=doc.sha256,
                        media_type=doc.media_type,
                        size_bytes=doc.size_bytes,
                        text=doc.text,
                        doc_metadata=dict(doc.metadata),
                        chunk_count=len(ch.chunks),
                        added_version=new,
                        removed_version=None,
                        created_at=now,
                    )
                    s.add(row)
                    s.flush()
                    visible[doc.name] = row
                    if ch.chunks:
                        values = [
                            {
                                "project": kb.project,
                                "kb_id": kb.id,
                                "document_id": row.id,
                                "ordinal": c.ordinal,
                                "text": c.text,
                                "heading": c.heading,
                                "start_offset": c.start,
                                "end_offset": c.end,
                                "n_tokens": c.n_tokens,
                                "embedding": c.embedding,
                                "added_version": new,
                                "tsv_src": f"{c.heading}\n{c.text}",
                            }
                            for c in ch.chunks
                        ]
                        stmt = insert(KbChunkRow).values(
                            {k: bindparam(k) for k in values[0] if k != "tsv_src"}
                            | {"tsv": func.to_tsvector("english", bindparam("tsv_src")) if pg else None}
                        )
                        s.execute(stmt, values)
                    result.outcomes[doc.name] = "replaced" if old is not None else "added"
                    changed = True
                if not changed:
                    s.rollback()
                    return result
                n_docs = len(visible)
                n_chunks = int(
                    s.scalar(select(func.count()).select_from(KbChunkRow).where(KbChunkRow.kb_id == kb.id, _visible(KbChunkRow, new))) or 0
                )
                s.add(
                    KbVersionRow(project=kb.project, kb_id=kb.id, version=new, note=note, documents=n_docs, chunks=n_chunks, created_at=now)
                )
                kb.current_version = new
                kb.seq = kb.seq + 1
                kb.updated_at = now
                result.version = new
                return result
        except RefusedValue as e:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"documents cannot be stored: {db_reason(e)}") from None

    # -- what indexes read -----------------------------------------------------------------
    def chunks_for_index(self, kb_id: int, after_id: int, limit: int) -> list[IndexedChunk]:
        c = KbChunkRow
        with self._session() as s:
            rows = s.execute(
                select(c.id, c.document_id, c.added_version, c.removed_version, c.heading, c.text, c.embedding)
                .where(c.kb_id == kb_id, c.id > after_id)
                .order_by(c.id)
                .limit(limit)
            )
            return [IndexedChunk(*r) for r in rows]

    def removed_chunk_markers(self, kb_id: int) -> Iterator[tuple[int, int]]:
        c = KbChunkRow
        with self._session() as s:
            rows = s.execute(select(c.id, c.removed_version).where(c.kb_id == kb_id, c.removed_version.is_not(None)))
            return iter([(int(i), int(v)) for i, v in rows if v is not None])

    def visible_chunks(self, kb_id: int, version: int, ids: list[int]) -> dict[int, tuple[Chunk, Document]]:
        if not ids:
            return {}
        c, d = KbChunkRow, KbDocumentRow
        with self._session() as s:
            rows = s.execute(
                select(
                    c.id,
                    c.document_id,
                    c.ordinal,
                    c.text,
                    c.heading,
                    c.start_offset,
                    c.end_offset,
                    c.n_tokens,
                    c.embedding,
                    c.added_version,
                    c.removed_version,
                    d.name,
                    d.sha256,
                    d.media_type,
                    d.size_bytes,
                    d.doc_metadata,
                )
                .join(d, d.id == c.document_id)
                .where(c.kb_id == kb_id, c.id.in_(ids), _visible(c, version))
            )
            out: dict[int, tuple[Chunk, Document]] = {}
            for r in rows:
                chunk = Chunk(
                    ordinal=r.ordinal,
                    text=r.text,
                    heading=r.heading,
                    start=r.start_offset,
                    end=r.end_offset,
                    n_tokens=r.n_tokens,
                    id=r.id,
                    document_id=r.document_id,
                    embedding=r.embedding,
                    added_version=r.added_version,
                    removed_version=r.removed_version,
                )
                doc = Document(
                    name=r.name,
                    sha256=r.sha256,
                    media_type=r.media_type,
                    size_bytes=r.size_bytes,
                    text="",
                    metadata=dict(r.doc_metadata or {}),
                    id=r.document_id,
                )
                out[int(r.id)] = (chunk, doc)
            return out

    def prune_kb(self, kb_name: str, keep: int) -> tuple[int, int]:
        if keep < 1:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"keep must be at least 1; got {keep}", param="keep")
        with self._session(write=True) as s:
            kb = s.scalars(
                select(KnowledgeBaseRow).where(KnowledgeBaseRow.name == kb_name, self._visible(KnowledgeBaseRow)).with_for_update()
            ).one_or_none()
            if kb is None:
                raise not_found("knowledge base", kb_name)
            oldest = max(kb.oldest_version, kb.current_version - keep + 1)
            if oldest <= kb.oldest_version:
                return 0, 0
            # Rows closed at or before the oldest kept version are seen by no kept version.
            gone = rowcount(s.execute(delete(KbChunkRow).where(KbChunkRow.kb_id == kb.id, KbChunkRow.removed_version <= oldest)))
            s.execute(delete(KbDocumentRow).where(KbDocumentRow.kb_id == kb.id, KbDocumentRow.removed_version <= oldest))
            versions = rowcount(s.execute(delete(KbVersionRow).where(KbVersionRow.kb_id == kb.id, KbVersionRow.version < oldest)))
            kb.oldest_version = oldest
            kb.seq = kb.seq + 1
            kb.rebuild_seq = kb.rebuild_seq + 1
            kb.updated_at = datetime.now(UTC)
            return int(versions or 0), int(gone or 0)

    # -- citations -------------------------------------------------------------------------
    def save_citations(self, record: CitationRecord) -> None:
        with self._session(write=True) as s:
            s.merge(
                KbCitationRow(
                    response_id=record.response_id,
                    knowledge_base=record.knowledge_base,
                    version=record.version,
                    model=record.model[:300],
                    query=record.query,
                    citations=record.citations,
                    created_at=record.created_at or datetime.now(UTC),
                )
            )

    def get_citations(self, response_id: str) -> CitationRecord | None:
        with self._session() as s:
            row = s.get(KbCitationRow, response_id)
            if row is None:
                return None
            return CitationRecord(
                response_id=row.response_id,
                knowledge_base=row.knowledge_base,
                version=row.version,
                model=row.model,
                query=row.query,
                citations=list(row.citations or []),
                created_at=row.created_at,
            )


def _kb(r: KnowledgeBaseRow) -> KnowledgeBase:
    return KnowledgeBase(
        id=r.id,
        name=r.name,
        description=r.description,
        embedder=r.embedder,
        embedding_model=r.embedding_model,
        dim=r.dim,
        chunk_tokens=r.chunk_tokens,
        overlap_tokens=r.overlap_tokens,
        current_version=r.current_version,
        oldest_version=r.oldest_version,
        seq=r.seq,
        rebuild_seq=r.rebuild_seq,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _version(r: KbVersionRow) -> KbVersion:
    return KbVersion(version=r.version, note=r.note, documents=r.documents, chunks=r.chunks, created_at=r.created_at)


def _document(r: KbDocumentRow, *, with_text: bool) -> Document:
    return Document(
        id=r.id,
        name=r.name,
        sha256=r.sha256,
        media_type=r.media_type,
        size_bytes=r.size_bytes,
        text=r.text if with_text else "",
        metadata=dict(r.doc_metadata or {}),
        added_version=r.added_version,
        removed_version=r.removed_version,
        chunk_count=r.chunk_count,
        created_at=r.created_at,
    )
