"""The embedded index: exact vector search (numpy) and BM25 (SQLite FTS5) in process.

Built from the metadata store's chunks the first time a knowledge base is searched, then
kept in step incrementally: new chunks are appended (ids only grow), closed ranges are
refreshed, and a prune (``rebuild_seq``) rebuilds it. Exact search over 100k 384-d vectors
is one matrix-vector product (ADR 0022 has the numbers); its recall is 1 by definition.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plinth.domain.knowledge import KnowledgeBase
from plinth.rag.index.base import PRUNE_MIN_CHUNKS, Hit, KnowledgeIndex, prune_common_terms, query_terms

NEVER = np.iinfo(np.int32).max  # removed_version of an open chunk
_BATCH = 5000
_BLAS: Any = None


def _one_blas_thread() -> Any:
    """A context in which BLAS uses one thread. A matrix-vector product is memory-bound: a
    second thread gains little alone and costs milliseconds of hand-off when the other core
    is busy (generation, another request), as it usually is on a small server (ADR 0022)."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


@dataclass
class _KbIndex:
    dim: int
    seq: int = -1
    rebuild_seq: int = -1
    last_id: int = 0
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    docs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    added: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    removed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), dtype=np.float32))
    fts: sqlite3.Connection | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    doc_freq: dict[str, int] = field(default_factory=dict)  # chunks matching a term, all versions


class EmbeddedIndex(KnowledgeIndex):
    name = "embedded"

    def __init__(self, store: Any) -> None:
        self.store = store
        self._kbs: dict[int, _KbIndex] = {}
        self._lock = threading.Lock()

    def _state(self, kb: KnowledgeBase) -> _KbIndex:
        assert kb.id is not None
        with self._lock:
            st = self._kbs.get(kb.id)
            if st is None or st.dim != kb.dim:
                st = self._kbs[kb.id] = _KbIndex(dim=kb.dim)
            return st

    def forget(self, kb_id: int) -> None:
        with self._lock:
            st = self._kbs.pop(kb_id, None)
        if st is not None and st.fts is not None:
            st.fts.close()

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "vectors": "exact (numpy)", "keywords": "SQLite FTS5 BM25", "loaded": len(self._kbs)}

    # -- building ----------------------------------------------------------------------------
    def sync(self, kb: KnowledgeBase) -> None:
        st = self._state(kb)
        if st.seq == kb.seq and st.rebuild_seq == kb.rebuild_seq:
            return
        with st.lock:
            if st.seq == kb.seq and st.rebuild_seq == kb.rebuild_seq:
                return
            if st.rebuild_seq != kb.rebuild_seq:
                self._reset(st)
            self._append(kb, st)
            self._refresh_removed(kb, st)
            st.doc_freq.clear()
            st.seq, st.rebuild_seq = kb.seq, kb.rebuild_seq

    def _reset(self, st: _KbIndex) -> None:
        if st.fts is not None:
            st.fts.close()
        st.fts = sqlite3.connect(":memory:", check_same_thread=False)
        st.fts.execute("CREATE VIRTUAL TABLE fts USING fts5(heading, body, tokenize='porter unicode61')")
        st.last_id = 0
        st.ids = np.zeros(0, dtype=np.int64)
        st.docs = np.zeros(0, dtype=np.int64)
        st.added = np.zeros(0, dtype=np.int32)
        st.removed = np.zeros(0, dtype=np.int32)
        st.matrix = np.zeros((0, st.dim), dtype=np.float32)

    def _append(self, kb: KnowledgeBase, st: _KbIndex) -> None:
        if st.fts is None:
            self._reset(st)
        assert kb.id is not None and st.fts is not None
        ids, docs, added, removed, vecs = [st.ids], [st.docs], [st.added], [st.removed], [st.matrix]
        while True:
            rows = self.store.chunks_for_index(kb.id, st.last_id, _BATCH)
            if not rows:
                break
            ids.append(np.fromiter((r.id for r in rows), dtype=np.int64, count=len(rows)))
            docs.append(np.fromiter((r.document_id for r in rows), dtype=np.int64, count=len(rows)))
            added.append(np.fromiter((r.added_version for r in rows), dtype=np.int32, count=len(rows)))
            removed.append(
                np.fromiter((NEVER if r.removed_version is None else r.removed_version for r in rows), dtype=np.int32, count=len(rows))
            )
            vecs.append(np.frombuffer(b"".join(r.embedding for r in rows), dtype="<f4").reshape(len(rows), st.dim))
            st.fts.executemany("INSERT INTO fts(rowid, heading, body) VALUES (?, ?, ?)", [(r.id, r.heading, r.text) for r in rows])
            st.last_id = rows[-1].id
        st.fts.commit()
        if len(ids) > 1:
            st.ids, st.docs = np.concatenate(ids), np.concatenate(docs)
            st.added, st.removed = np.concatenate(added), np.concatenate(removed)
            st.matrix = np.ascontiguousarray(np.concatenate(vecs).astype(np.float32, copy=False))

    def _refresh_removed(self, kb: KnowledgeBase, st: _KbIndex) -> None:
        assert kb.id is not None and st.fts is not None
        markers = list(self.store.removed_chunk_markers(kb.id))
        if not markers:
            return
        m_ids = np.fromiter((i for i, _ in markers), dtype=np.int64, count=len(markers))
        m_ver = np.fromiter((v for _, v in markers), dtype=np.int32, count=len(markers))
        pos = np.searchsorted(st.ids, m_ids)
        ok = (pos < len(st.ids)) & (st.ids[np.minimum(pos, len(st.ids) - 1)] == m_ids) if len(st.ids) else np.zeros(0, bool)
        pos, m_ids, m_ver = pos[ok], m_ids[ok], m_ver[ok]
        changed = st.removed[pos] != m_ver
        if changed.any():
            st.removed[pos[changed]] = m_ver[changed]

    # -- searching ---------------------------------------------------------------------------
    def _mask(self, st: _KbIndex, version: int, documents: set[int] | None) -> np.ndarray:
        mask = (st.added <= version) & (st.removed > version)
        if documents is not None:
            mask &= np.isin(st.docs, np.fromiter(documents, dtype=np.int64, count=len(documents)))
        return mask

    def vector_search(self, kb: KnowledgeBase, version: int, query: np.ndarray, k: int, documents: set[int] | None = None) -> list[Hit]:
        self.sync(kb)
        st = self._state(kb)
        with st.lock:
            matrix, ids, mask = st.matrix, st.ids, self._mask(st, version, documents)
        if not len(ids):
            return []
        with _one_blas_thread():
            scores = matrix @ np.asarray(query, dtype=np.float32).reshape(-1)
        scores = np.where(mask, scores, -np.inf)
        k = min(k, int(mask.sum()))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [Hit(int(ids[i]), float(scores[i])) for i in top]

    def keyword_search(self, kb: KnowledgeBase, version: int, query: str, k: int, documents: set[int] | None = None) -> list[Hit]:
        terms = [t.replace("$", "").replace("%", "") for t in query_terms(query)]
        terms = [t for t in terms if t]
        if not terms:
            return []
        if documents is not None and not documents:
            return []
        self.sync(kb)
        st = self._state(kb)
        with st.lock:
            assert st.fts is not None
            fts = st.fts
            n = len(st.ids)
            if n >= PRUNE_MIN_CHUNKS:
                for t in terms:
                    if t not in st.doc_freq:
                        st.doc_freq[t] = fts.execute("SELECT count(*) FROM fts WHERE fts MATCH ?", (_quote(t),)).fetchone()[0]
            terms = prune_common_terms(terms, st.doc_freq, n)
            match = " OR ".join(_quote(t) for t in terms)
            # Rank without reading the rows (the unindexed columns cost a row read per
            # match), then keep the visible ones by the in-memory arrays; widen if too few.
            limit = max(2 * k, 64)
            while True:
                rows = fts.execute(
                    "SELECT rowid, -bm25(fts, 2.0, 1.0) FROM fts WHERE fts MATCH ? ORDER BY bm25(fts, 2.0, 1.0) LIMIT ?",
                    (match, limit),
                ).fetchall()
                hits = self._visible_hits(st, rows, version, documents, k)
                if len(hits) >= k or len(rows) < limit or limit >= n:
                    return hits
                limit *= 4

    def _visible_hits(self, st: _KbIndex, rows: list[tuple[int, float]], version: int, documents: set[int] | None, k: int) -> list[Hit]:
        if not rows:
            return []
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        pos = np.minimum(np.searchsorted(st.ids, ids), len(st.ids) - 1)
        ok = (st.ids[pos] == ids) & (st.added[pos] <= version) & (st.removed[pos] > version)
        if documents is not None:
            ok &= np.isin(st.docs[pos], np.fromiter(documents, dtype=np.int64, count=len(documents)))
        return [Hit(int(r[0]), float(r[1])) for r, good in zip(rows, ok, strict=True) if good][:k]


def _quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'
