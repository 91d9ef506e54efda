"""Knowledge bases as a service: create, ingest, version, search (hybrid), evaluate, cite.

Used by the CLI (``plinth kb``), the management API (``/api/v1/knowledge-bases``), the
serving stage (:mod:`plinth.rag.stage`) and ``/v1/embeddings`` (through the embedder).
"""

from __future__ import annotations

import builtins
import fnmatch
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plinth.domain.knowledge import KB_NAME_RE, CitationRecord, Document, KbRef, KbVersion, KnowledgeBase, Passage
from plinth.embeddings import Embedder, get_embedder
from plinth.errors import ErrorCode, PlinthError, not_found
from plinth.outbound import Fetched, Outbound
from plinth.rag.chunking import chunk_document, embedding_text
from plinth.rag.evaluation import DEFAULT_KS, Question, load_questions, parse_questions
from plinth.rag.evaluation import evaluate as evaluate_retrieval
from plinth.rag.index import KnowledgeIndex, open_index
from plinth.rag.ingest import Source, bytes_source, collect_paths, expand_archives, url_source
from plinth.rag.parsing import parse
from plinth.rag.plans import PlanQuery, plan_query
from plinth.rag.plans import apply as apply_plans
from plinth.store.base_knowledge import DocumentChange

log = logging.getLogger("plinth.rag")

RRF_K = 60  # reciprocal rank fusion constant (Cormack et al. use 60)


@dataclass
class FileOutcome:
    name: str
    outcome: str  # added | replaced | unchanged | removed | failed | skipped
    chunks: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "outcome": self.outcome, "chunks": self.chunks}
        if self.error:
            d["error"] = self.error
        return d


@dataclass
class IngestReport:
    knowledge_base: str
    version: int  # the version after the change (unchanged when nothing changed)
    changed: bool
    files: list[FileOutcome] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for f in self.files:
            counts[f.outcome] = counts.get(f.outcome, 0) + 1
        return {
            "knowledge_base": self.knowledge_base,
            "version": self.version,
            "changed": self.changed,
            "counts": counts,
            "files": [f.as_dict() for f in self.files],
        }


@dataclass
class SearchResult:
    knowledge_base: str
    version: int
    query: str
    passages: list[Passage]
    min_score: float
    seconds: float = 0.0

    @property
    def relevant(self) -> list[Passage]:
        return [p for p in self.passages if p.similarity >= self.min_score]

    def as_dict(self) -> dict[str, Any]:
        return {
            "knowledge_base": self.knowledge_base,
            "version": self.version,
            "query": self.query,
            "min_score": self.min_score,
            "passages": [p.as_dict() | {"relevant": p.similarity >= self.min_score} for p in self.passages],
        }


ProgressFn = Callable[[str, int], None]  # (document name, bytes done for it)


class KnowledgeService:
    def __init__(
        self, settings: Any, store: Any, metrics: Any = None, index: KnowledgeIndex | None = None, outbound: Outbound | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self._index = index
        self.outbound = outbound or Outbound.from_settings(settings)
        self._plans: dict[tuple[int, int, int], builtins.list[str]] = {}
        self._phones: dict[tuple[int, int, int], str | None] = {}

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def index(self) -> KnowledgeIndex:
        if self._index is None:
            self._index = open_index(self.settings.kb_index, self.store)
        return self._index

    def default_embedder(self) -> Embedder:
        """The embedder the settings name: what new knowledge bases use and ``/v1/embeddings``
        serves."""
        return get_embedder(self.settings)

    def embedder_for(self, kb: KnowledgeBase) -> Embedder:
        emb = get_embedder(self.settings, kb.embedder)
        if emb.model_id != kb.embedding_model or emb.dim != kb.dim:
            raise PlinthError(
                ErrorCode.CONFLICT,
                f"knowledge base {kb.name!r} was embedded with {kb.embedding_model} ({kb.dim}-d); the {kb.embedder!r} "
                f"embedder here is {emb.model_id} ({emb.dim}-d): re-create the knowledge base to use it",
            )
        return emb

    # -- knowledge bases ---------------------------------------------------------------------
    def create(
        self, name: str, *, description: str = "", chunk_tokens: int | None = None, overlap_tokens: int | None = None
    ) -> KnowledgeBase:
        if not KB_NAME_RE.match(name or ""):
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"invalid knowledge base name {name!r}: 1-100 of a-z 0-9 . _ - starting with a letter or digit",
                param="name",
            )
        emb = get_embedder(self.settings)
        chunk = chunk_tokens or self.settings.kb_chunk_tokens
        overlap = self.settings.kb_chunk_overlap_tokens if overlap_tokens is None else overlap_tokens
        if not 16 <= chunk <= emb.max_tokens:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"chunk_tokens={chunk} must be between 16 and {emb.max_tokens} (the {emb.name} embedder's input limit)",
                param="chunk_tokens",
            )
        if not 0 <= overlap <= chunk // 2:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, f"overlap_tokens={overlap} must be between 0 and chunk_tokens/2", param="overlap_tokens"
            )
        kb = KnowledgeBase(
            name=name,
            description=description,
            embedder=emb.name,
            embedding_model=emb.model_id,
            dim=emb.dim,
            chunk_tokens=chunk,
            overlap_tokens=overlap,
        )
        return self.store.create_kb(kb)

    def get(self, name: str) -> KnowledgeBase:
        kb = self.store.find_kb(name)
        if kb is None:
            raise not_found("knowledge base", name)
        return kb

    def list(self) -> builtins.list[KnowledgeBase]:
        return self.store.list_kbs()

    def delete(self, name: str) -> None:
        kb = self.get(name)
        self.store.delete_kb(name)
        assert kb.id is not None
        self.index.forget(kb.id)

    def resolve(self, ref: str | KbRef) -> tuple[KnowledgeBase, int]:
        """The knowledge base and version a reference names (NOT_FOUND for unknown ones)."""
        if isinstance(ref, str):
            try:
                ref = KbRef.parse(ref)
            except ValueError as e:
                raise PlinthError(ErrorCode.INVALID_REQUEST, str(e), param="knowledge_base") from None
        kb = self.get(ref.name)
        if ref.version is None:
            return kb, kb.current_version
        if ref.version > kb.current_version or ref.version < kb.oldest_version:
            what = "was pruned" if ref.version < kb.oldest_version else "does not exist yet"
            raise PlinthError(
                ErrorCode.NOT_FOUND,
                f"version {ref.version} of knowledge base {kb.name!r} {what}; versions {kb.oldest_version}..{kb.current_version} exist",
                details={"kind": "knowledge base version", "name": str(ref)},
            )
        return kb, ref.version

    def versions(self, name: str) -> builtins.list[KbVersion]:
        kb = self.get(name)
        assert kb.id is not None
        return self.store.list_kb_versions(kb.id)

    def documents(self, ref: str | KbRef) -> tuple[KnowledgeBase, int, builtins.list[Document]]:
        kb, version = self.resolve(ref)
        assert kb.id is not None
        return kb, version, self.store.list_documents(kb.id, version)

    def document(self, ref: str | KbRef, name: str) -> Document:
        kb, version = self.resolve(ref)
        assert kb.id is not None
        doc = self.store.get_document(kb.id, name, version)
        if doc is None:
            raise not_found("document", name)
        return doc

    # -- inputs: what the CLI and the API turn into sources and questions --------------------
    def sources_from_paths(self, paths: builtins.list[Path], metadata: dict[str, Any] | None = None) -> builtins.list[Source]:
        """Files and folders as sources (hidden entries skipped, archives expanded, each file
        checked against ``kb_max_file_bytes``), each with ``metadata``."""
        sources = list(collect_paths(paths, self.settings.kb_max_file_bytes))
        for src in sources:
            src.metadata.update(metadata or {})
        return sources

    def source_from_bytes(self, name: str, data: bytes, media_type: str | None = None, metadata: dict[str, Any] | None = None) -> Source:
        """An uploaded document as a source."""
        return bytes_source(name, data, self.settings.kb_max_file_bytes, media_type, metadata)

    def sources_from_urls(self, urls: builtins.list[str], metadata: dict[str, Any] | None = None) -> builtins.list[Source]:
        """Documents at URLs as sources. Each URL must pass the outbound rules now (400 naming
        it, before anything is fetched or stored); it is fetched when ingested, through the
        outbound fetcher (resolved and pinned again, redirects re-checked), within
        ``kb_max_file_bytes`` and ``outbound_timeout_s``."""
        for i, url in enumerate(urls):
            self.outbound.check_url(url, what="document URL", param=f"urls.{i}")
        return [url_source(url, self._fetch, self.settings.kb_max_file_bytes, metadata) for url in urls]

    def _fetch(self, url: str, max_bytes: int) -> Fetched:
        return self.outbound.fetch(url, max_bytes=max_bytes, what="document URL", limit_setting="PLINTH_KB_MAX_FILE_BYTES")

    @staticmethod
    def questions_from_file(path: Path) -> builtins.list[Question]:
        """A JSON Lines question set (``{question, expected: [{document, contains?}]}``)."""
        return load_questions(path)

    @staticmethod
    def questions_from_lines(lines: builtins.list[str], source: str = "questions") -> builtins.list[Question]:
        return parse_questions(lines, source)

    def evaluate(self, ref: str, questions: builtins.list[Question], ks: tuple[int, ...] = DEFAULT_KS) -> dict[str, Any]:
        """Retrieval quality of ``ref`` on ``questions``: recall@k and MRR."""
        return evaluate_retrieval(self, ref, questions, ks)

    # -- changes -----------------------------------------------------------------------------
    def add_paths(
        self, name: str, paths: builtins.list[Path], progress: ProgressFn | None = None, metadata: dict[str, Any] | None = None
    ) -> IngestReport:
        return self.add_sources(name, self.sources_from_paths(paths, metadata), progress=progress)

    def add_sources(self, name: str, sources: Iterable[Source], progress: ProgressFn | None = None) -> IngestReport:
        """Parse, chunk and embed each source (a failing file is reported, the rest go on),
        then store them all as one new version."""
        kb = self.get(name)
        assert kb.id is not None
        emb = self.embedder_for(kb)
        max_bytes = self.settings.kb_max_file_bytes
        outcomes: builtins.list[FileOutcome] = []
        changes: builtins.list[DocumentChange] = []
        seen: set[str] = set()
        for src in expand_archives(list(sources), max_bytes):
            if src.error is not None or src.read is None:
                outcomes.append(FileOutcome(src.name, "skipped" if src.skipped else "failed", error=src.error))
                if progress:
                    progress(src.name, src.size)
                continue
            if src.name in seen:
                outcomes.append(FileOutcome(src.name, "failed", error="the same document name was given twice"))
                continue
            seen.add(src.name)
            try:
                change = self._prepare(kb, emb, src)
            except PlinthError as e:
                outcomes.append(FileOutcome(src.name, "failed", error=e.message))
            except Exception as e:  # one broken file must not stop the others
                log.exception("ingesting %s failed", src.name)
                # Not the exception's text: an OSError names server paths.
                outcomes.append(
                    FileOutcome(src.name, "failed", error=f"internal error ({type(e).__name__}); the server log has the details")
                )
            else:
                if change is None:
                    outcomes.append(FileOutcome(src.name, "unchanged"))
                else:
                    changes.append(change)
                    outcomes.append(FileOutcome(src.name, "pending", chunks=len(change.chunks)))
            if progress:
                progress(src.name, src.size)
        n = len(changes)
        if changes:
            self.store.check_storage_quota(sum(c.document.size_bytes for c in changes if c.document is not None))
        result = self.store.apply_changes(name, changes, note=f"add {n} document{'s' if n != 1 else ''}") if changes else None
        for o in outcomes:
            if o.outcome == "pending":
                o.outcome = result.outcomes.get(o.name, "unchanged") if result else "unchanged"
                if o.outcome == "unchanged":
                    o.chunks = 0
        if self.metrics is not None and result is not None and result.version is not None:
            self.metrics.kb_ingested_chunks.labels(name).inc(sum(o.chunks for o in outcomes if o.outcome in ("added", "replaced")))
        return self._report(name, result.version if result else None, outcomes)

    def _report(self, name: str, version: int | None, outcomes: builtins.list[FileOutcome]) -> IngestReport:
        kb = self.get(name)
        if version is not None:
            self.index.sync(kb)  # the first query after a change should not pay for it
        return IngestReport(name, kb.current_version, version is not None, outcomes)

    def _prepare(self, kb: KnowledgeBase, emb: Embedder, src: Source) -> DocumentChange | None:
        assert src.read is not None and src.media_type is not None and kb.id is not None
        data = src.read()
        digest = hashlib.sha256(data).hexdigest()
        current = self.store.get_document(kb.id, src.name, kb.current_version)
        if current is not None and current.sha256 == digest:
            return None  # unchanged: not even parsed
        parsed = parse(data, src.name, src.media_type)
        chunks = chunk_document(parsed, emb.count_tokens, max_tokens=kb.chunk_tokens, overlap_tokens=kb.overlap_tokens)
        if not chunks:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "the document has no text to index")
        vectors = emb.embed([embedding_text(c) for c in chunks])
        for c, v in zip(chunks, vectors, strict=True):
            c.embedding = np.asarray(v, dtype="<f4").tobytes()
        metadata = dict(parsed.metadata) | dict(src.metadata)
        if parsed.title:
            metadata.setdefault("title", parsed.title)
        doc = Document(name=src.name, sha256=digest, media_type=src.media_type, size_bytes=len(data), text=parsed.text, metadata=metadata)
        return DocumentChange(document=doc, chunks=chunks)

    def remove_documents(self, name: str, documents: builtins.list[str]) -> IngestReport:
        kb = self.get(name)
        if not documents:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "name at least one document to remove", param="documents")
        n = len(documents)
        result = self.store.apply_changes(
            name, [DocumentChange(remove=d) for d in documents], note=f"remove {n} document{'s' if n != 1 else ''}"
        )
        outcomes = [FileOutcome(d, result.outcomes.get(d, "missing")) for d in documents]
        if all(o.outcome == "missing" for o in outcomes):
            raise PlinthError(
                ErrorCode.NOT_FOUND,
                f"knowledge base {kb.name!r} has no document {documents[0]!r} in its current version",
                details={"kind": "document", "name": documents[0]},
            )
        return self._report(name, result.version, outcomes)

    def prune(self, name: str, keep: int) -> dict[str, int]:
        versions, chunks = self.store.prune_kb(name, keep)
        kb = self.get(name)
        self.index.sync(kb)
        return {"versions_deleted": versions, "chunks_deleted": chunks, "oldest_version": kb.oldest_version}

    # -- retrieval ---------------------------------------------------------------------------
    def _documents_matching(self, kb: KnowledgeBase, version: int, filters: dict[str, Any] | None) -> set[int] | None:
        if not filters:
            return None
        assert kb.id is not None
        docs = self.store.list_documents(kb.id, version)
        out: set[int] = set()
        for d in docs:
            ok = True
            for key, want in filters.items():
                wants = [str(w) for w in (want if isinstance(want, list) else [want])]
                if key == "document":
                    ok = any(fnmatch.fnmatchcase(d.name, w) for w in wants)
                else:
                    have = d.metadata.get(key)
                    ok = have is not None and str(have).lower() in {w.lower() for w in wants}
                if not ok:
                    break
            if ok and d.id is not None:
                out.add(d.id)
        return out

    def search(self, ref: str | KbRef, query: str, *, k: int | None = None, filters: dict[str, Any] | None = None) -> SearchResult:
        started = time.perf_counter()
        if not query or not query.strip():
            raise PlinthError(ErrorCode.INVALID_REQUEST, "query must not be empty", param="query")
        k = k or self.settings.kb_top_k
        if not 1 <= k <= 100:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"k={k} must be between 1 and 100", param="k")
        if filters is not None and not isinstance(filters, dict):
            raise PlinthError(ErrorCode.INVALID_REQUEST, "filters must be an object of field -> value(s)", param="filters")
        kb, version = self.resolve(ref)
        assert kb.id is not None
        emb = self.embedder_for(kb)
        q = emb.embed([query])[0]
        documents = self._documents_matching(kb, version, filters)
        n_cand = max(4 * k, 40)
        vec = self.index.vector_search(kb, version, q, n_cand, documents)
        kw = self.index.keyword_search(kb, version, query, n_cand, documents)
        fused: dict[int, float] = {}
        vrank: dict[int, int] = {}
        krank: dict[int, int] = {}
        for rank, h in enumerate(vec, start=1):
            fused[h.chunk_id] = fused.get(h.chunk_id, 0.0) + 1.0 / (RRF_K + rank)
            vrank[h.chunk_id] = rank
        for rank, h in enumerate(kw, start=1):
            fused[h.chunk_id] = fused.get(h.chunk_id, 0.0) + 1.0 / (RRF_K + rank)
            krank[h.chunk_id] = rank
        order = sorted(fused, key=lambda i: (-fused[i], i))
        passages: builtins.list[Passage] = []
        # The store decides visibility: a candidate the index still had is dropped here.
        for start in range(0, len(order), 2 * k):
            ids = order[start : start + 2 * k]
            rows = self.store.visible_chunks(kb.id, version, ids)
            for cid in ids:
                if cid not in rows:
                    continue
                chunk, doc = rows[cid]
                v = np.frombuffer(chunk.embedding or b"", dtype="<f4")
                sim = float(v @ q) if v.shape == q.shape else 0.0
                passages.append(
                    Passage(
                        chunk_id=cid,
                        knowledge_base=kb.name,
                        version=version,
                        document=doc.name,
                        heading=chunk.heading,
                        start=chunk.start,
                        end=chunk.end,
                        text=chunk.text,
                        score=fused[cid],
                        similarity=sim,
                        vector_rank=vrank.get(cid),
                        keyword_rank=krank.get(cid),
                        metadata=doc.metadata,
                    )
                )
                if len(passages) >= k:
                    break
            if len(passages) >= k:
                break
        result = SearchResult(kb.name, version, query, passages, self.settings.kb_min_score, time.perf_counter() - started)
        if self.metrics is not None:
            self.metrics.kb_searches.labels(kb.name, "hit" if result.relevant else "miss").inc()
            self.metrics.kb_search_seconds.labels(kb.name).observe(result.seconds)
        return result

    # -- citations ---------------------------------------------------------------------------
    def record_citations(self, record: CitationRecord) -> None:
        self.store.save_citations(record)

    def citations(self, response_id: str) -> CitationRecord:
        rec = self.store.get_citations(response_id)
        if rec is None:
            raise not_found("citations of response", response_id)
        return rec

    # -- plan-aware retrieval and grounded answers (ADR 0115) ---------------------------------
    def plans(self, kb: KnowledgeBase, version: int) -> builtins.list[str]:
        """The ``plan`` values of the version's documents' front matter (sorted, lower case)."""
        assert kb.id is not None
        key = (kb.id, version, kb.seq)
        if key not in self._plans:
            found = {str(d.metadata["plan"]).lower() for d in self.store.list_documents(kb.id, version) if d.metadata.get("plan")}
            self._plans = {k: v for k, v in self._plans.items() if k[0] != kb.id} | {key: sorted(found)}
        return self._plans[key]

    def retrieve(
        self, ref: str | KbRef, question: str, *, context: builtins.list[str] | None = None, k: int | None = None, plan_aware: bool = True
    ) -> tuple[SearchResult, PlanQuery]:
        """:meth:`search`, aware of the plans the question (or ``context``, earlier user turns)
        names: other plans' passages are dropped, the named plan's moved up; a comparison gets
        a table naming every plan compared (the overview table)."""
        from plinth.rag.grounding import expand

        question = expand(question)
        kb, version = self.resolve(ref)
        k = k or self.settings.kb_top_k
        plans = self.plans(kb, version) if plan_aware else []
        pq = plan_query(question, plans, context or []) if plans else PlanQuery()
        if not pq.plans and not pq.comparison:
            return self.search(ref, question, k=k), pq
        wide = self.search(ref, question, k=min(100, max(3 * k, 12)))
        pinned = f"{kb.name}@{version}"
        extra = lambda: self.search(pinned, f"compare the plans: {question}", k=min(100, max(3 * k, 12))).passages  # noqa: E731
        wide.passages = apply_plans(wide.passages, pq, plans, k, extra)
        return wide, pq

    def contact_phone(self, ref: str | KbRef, near: str = "member services") -> str | None:
        """The phone number the knowledge base gives for ``near`` (for refusals), or None."""
        from plinth.rag.grounding import find_phone

        kb, version = self.resolve(ref)
        assert kb.id is not None
        key = (kb.id, version, kb.seq)
        if key not in self._phones:
            texts = [d.text for d in self.store.list_documents(kb.id, version, with_text=True)]
            self._phones = {k: v for k, v in self._phones.items() if k[0] != kb.id} | {key: find_phone(texts, near)}
        return self._phones[key]
