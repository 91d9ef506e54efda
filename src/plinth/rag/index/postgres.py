"""The team index on Postgres: pgvector HNSW for vectors, full-text search for keywords.

Keywords use ``kb_chunks.tsv`` (``to_tsvector('english', heading || text)``, written with the
chunk, GIN-indexed by migration 0004), ranked by ``ts_rank_cd``. Vectors live in one table
per dimension, ``kb_vectors_<dim>`` (``vector(<dim>)`` with an HNSW cosine index), which this
backend creates when first needed: the table depends on an optional extension and on the
embedder's dimension, so it is index storage derived from ``kb_chunks`` (rebuildable, deleted
with its chunks through a cascading foreign key), not part of the Alembic schema (ADR 0022).
Filtered queries use pgvector's iterative index scans, so a filter does not starve the top k.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from plinth.domain.knowledge import KnowledgeBase
from plinth.errors import ErrorCode, PlinthError
from plinth.rag.index.base import PRUNE_MIN_CHUNKS, Hit, KnowledgeIndex, prune_common_terms, query_terms

NEVER = 2**31 - 1
EF_SEARCH = 100
_BATCH = 1000


def pgvector_available(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).first() is not None
    except Exception:  # not Postgres, or unreachable: the caller falls back
        return False


def _vec(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(v, dtype=np.float32).reshape(-1)) + "]"


class PostgresIndex(KnowledgeIndex):
    name = "postgres"

    def __init__(self, store: Any) -> None:
        if getattr(store, "dialect_name", "") != "postgresql":
            raise PlinthError(ErrorCode.INVALID_REQUEST, "PLINTH_KB_INDEX=postgres needs a Postgres metadata store (PLINTH_DATABASE_URL)")
        self.store = store
        self.engine: Engine = store.engine
        if not pgvector_available(self.engine):
            raise PlinthError(
                ErrorCode.RUNTIME_UNAVAILABLE,
                f"the Postgres at {store.display_url} has no pgvector extension: install pgvector (>= 0.8) on the server, "
                "or set PLINTH_KB_INDEX=embedded",
            )
        self._tables: set[int] = set()
        self._synced: dict[int, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._doc_freq: dict[int, tuple[int, int, dict[str, int]]] = {}  # kb id -> (seq, chunks, term -> chunks)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "vectors": "pgvector HNSW (cosine)", "keywords": "Postgres full-text (ts_rank_cd)"}

    def _table(self, dim: int) -> str:
        name = f"kb_vectors_{int(dim)}"
        if dim in self._tables:
            return name
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('plinth-kb-vectors'))"))
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            conn.execute(
                text(
                    f"CREATE TABLE IF NOT EXISTS {name} ("
                    " chunk_id BIGINT PRIMARY KEY REFERENCES kb_chunks(id) ON DELETE CASCADE,"
                    " kb_id INTEGER NOT NULL, document_id BIGINT NOT NULL,"
                    f" added_version INTEGER NOT NULL, removed_version INTEGER NOT NULL DEFAULT {NEVER},"
                    f" embedding vector({int(dim)}) NOT NULL)"
                )
            )
            conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name}_hnsw ON {name} USING hnsw (embedding vector_cosine_ops)"))
            conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name}_kb ON {name} (kb_id, chunk_id)"))
        self._tables.add(dim)
        return name

    def sync(self, kb: KnowledgeBase) -> None:
        assert kb.id is not None
        if self._synced.get(kb.id) == (kb.seq, kb.rebuild_seq):
            return
        table = self._table(kb.dim)
        with self._lock:
            with self.engine.connect() as conn:
                last = int(
                    conn.execute(text(f"SELECT coalesce(max(chunk_id), 0) FROM {table} WHERE kb_id = :kb"), {"kb": kb.id}).scalar() or 0
                )
            while True:
                rows = self.store.chunks_for_index(kb.id, last, _BATCH)
                if not rows:
                    break
                dim = kb.dim
                params = [
                    {
                        "c": r.id,
                        "kb": kb.id,
                        "d": r.document_id,
                        "a": r.added_version,
                        "r": NEVER if r.removed_version is None else r.removed_version,
                        "e": _vec(np.frombuffer(r.embedding, dtype="<f4", count=dim)),
                    }
                    for r in rows
                ]
                with self.engine.begin() as conn:
                    conn.execute(
                        text(
                            f"INSERT INTO {table} (chunk_id, kb_id, document_id, added_version, removed_version, embedding) "
                            "VALUES (:c, :kb, :d, :a, :r, CAST(:e AS vector)) ON CONFLICT (chunk_id) DO NOTHING"
                        ),
                        params,
                    )
                last = rows[-1].id
            with self.engine.begin() as conn:
                conn.execute(
                    text(
                        f"UPDATE {table} v SET removed_version = c.removed_version FROM kb_chunks c "
                        "WHERE v.chunk_id = c.id AND v.kb_id = :kb AND c.removed_version IS NOT NULL "
                        "AND v.removed_version <> c.removed_version"
                    ),
                    {"kb": kb.id},
                )
            self._synced[kb.id] = (kb.seq, kb.rebuild_seq)

    def forget(self, kb_id: int) -> None:
        self._synced.pop(kb_id, None)  # rows went with their chunks (ON DELETE CASCADE)

    def vector_search(self, kb: KnowledgeBase, version: int, query: np.ndarray, k: int, documents: set[int] | None = None) -> list[Hit]:
        self.sync(kb)
        table = self._table(kb.dim)
        where = "kb_id = :kb AND added_version <= :v AND removed_version > :v"
        params: dict[str, Any] = {"kb": kb.id, "v": version, "q": _vec(query), "k": k}
        if documents is not None:
            if not documents:
                return []
            where += " AND document_id = ANY(:docs)"
            params["docs"] = sorted(documents)
        with self.engine.begin() as conn:
            conn.execute(text(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH, k)}"))
            conn.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            rows = conn.execute(
                text(
                    f"SELECT chunk_id, 1 - (embedding <=> CAST(:q AS vector)) AS sim FROM {table} WHERE {where} "
                    "ORDER BY embedding <=> CAST(:q AS vector) LIMIT :k"
                ),
                params,
            ).all()
        hits = [Hit(int(r[0]), float(r[1])) for r in rows]
        return sorted(hits, key=lambda h: -h.score)  # relaxed order: re-sort exactly

    def keyword_search(self, kb: KnowledgeBase, version: int, query: str, k: int, documents: set[int] | None = None) -> list[Hit]:
        terms = [re.sub(r"[^\w]", "", t) for t in query_terms(query)]
        terms = [t for t in terms if t]
        if not terms:
            return []
        terms = prune_common_terms(terms, *self._frequencies(kb, terms))
        where = "c.kb_id = :kb AND c.tsv @@ q AND c.added_version <= :v AND (c.removed_version IS NULL OR c.removed_version > :v)"
        params: dict[str, Any] = {"kb": kb.id, "v": version, "q": " | ".join(terms), "k": k}
        if documents is not None:
            if not documents:
                return []
            where += " AND c.document_id = ANY(:docs)"
            params["docs"] = sorted(documents)
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT c.id, ts_rank_cd(c.tsv, q) AS r FROM kb_chunks c, to_tsquery('english', :q) q "
                    f"WHERE {where} ORDER BY r DESC, c.id LIMIT :k"
                ),
                params,
            ).all()
        return [Hit(int(r[0]), float(r[1])) for r in rows]

    def _frequencies(self, kb: KnowledgeBase, terms: list[str]) -> tuple[dict[str, int], int]:
        """Chunks matching each term (GIN counts, cached until the knowledge base changes)."""
        assert kb.id is not None
        seq, n, freq = self._doc_freq.get(kb.id, (-1, 0, {}))
        with self.engine.connect() as conn:
            if seq != kb.seq:
                n = int(conn.execute(text("SELECT count(*) FROM kb_chunks WHERE kb_id = :kb"), {"kb": kb.id}).scalar() or 0)
                freq = {}
            if n >= PRUNE_MIN_CHUNKS:
                for t in terms:
                    if t not in freq:
                        freq[t] = int(
                            conn.execute(
                                text("SELECT count(*) FROM kb_chunks WHERE kb_id = :kb AND tsv @@ to_tsquery('english', :t)"),
                                {"kb": kb.id, "t": t},
                            ).scalar()
                            or 0
                        )
        self._doc_freq[kb.id] = (kb.seq, n, freq)
        return freq, n
