"""Management API for knowledge bases under ``/api/v1/knowledge-bases`` and the citations of
responses under ``/api/v1/citations`` (canonical error shape)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from plinth.api.deps import services_of
from plinth.api.openapi import errors, stream
from plinth.api.params import JSON_NUMBER
from plinth.api.server_paths import hide_paths, import_path, server_paths
from plinth.domain.numbers import VERSION_MAX
from plinth.domain.projects import in_context
from plinth.errors import ErrorCode, PlinthError
from plinth.userfiles import check_user_dir, open_user_file, user_stat

if TYPE_CHECKING:
    from plinth.rag.service import KnowledgeService

T = TypeVar("T")

router = APIRouter(prefix="/api/v1", tags=["knowledge"])
log = logging.getLogger("plinth.api")


def _svc(request: Request) -> KnowledgeService:
    k = services_of(request).knowledge
    if k is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "knowledge bases are not enabled on this server")
    return k


async def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, in_context(lambda: fn(*args, **kwargs)))


def _kb_view(kb: Any) -> dict[str, Any]:
    return {
        "name": kb.name,
        "description": kb.description,
        "version": kb.current_version,
        "oldest_version": kb.oldest_version,
        "embedder": kb.embedder,
        "embedding_model": kb.embedding_model,
        "dim": kb.dim,
        "chunk_tokens": kb.chunk_tokens,
        "overlap_tokens": kb.overlap_tokens,
        "created_at": kb.created_at.isoformat() if kb.created_at else None,
        "updated_at": kb.updated_at.isoformat() if kb.updated_at else None,
    }


def _doc_view(d: Any) -> dict[str, Any]:
    return {
        "name": d.name,
        "sha256": d.sha256,
        "media_type": d.media_type,
        "size_bytes": d.size_bytes,
        "chunks": d.chunk_count,
        "metadata": d.metadata,
        "added_version": d.added_version,
        "removed_version": d.removed_version,
    }


def _version_view(v: Any) -> dict[str, Any]:
    return {
        "version": v.version,
        "note": v.note,
        "documents": v.documents,
        "chunks": v.chunks,
        "created_at": v.created_at.isoformat() if v.created_at else None,
    }


class CreateKb(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=100)
    description: str = Field("", max_length=2000)
    chunk_tokens: int | None = Field(None, ge=16, le=4096)
    overlap_tokens: int | None = Field(None, ge=0, le=2048)


class UploadDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=500, description="relative name, e.g. policies/gold-plan.md")
    text: str | None = Field(None, description="the document as text (Markdown, plain text or HTML)")
    content_base64: str | None = Field(None, description="the document's bytes, base64 (PDF, zip, ...)")
    media_type: str | None = Field(None, description="default: from the name's extension")
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)


class AddDocuments(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[UploadDocument] = Field(default_factory=list, max_length=1000)
    paths: list[str] = Field(default_factory=list, max_length=1000, description="files or folders inside PLINTH_IMPORT_DIRS")
    urls: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="http(s) URLs of HTML, Markdown, text or PDF documents, fetched by the server through its outbound rules "
        "(PLINTH_OUTBOUND_ALLOW); each is named host/path and records source_url",
    )
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict, description="added to every document")


class RemoveDocuments(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[str] = Field(..., min_length=1, max_length=1000)


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(..., min_length=1, max_length=10_000)
    k: Annotated[int, Field(ge=1, le=100), JSON_NUMBER] | None = None
    version: Annotated[int, Field(ge=0, le=VERSION_MAX), JSON_NUMBER] | None = None
    filters: dict[str, str | int | float | bool | list[str]] | None = None


class PruneBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keep: int = Field(..., ge=1, le=VERSION_MAX)


class EvalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    questions: list[dict[str, Any]] = Field(..., min_length=1, max_length=5000)
    version: int | None = Field(None, ge=0, le=VERSION_MAX)
    ks: list[Annotated[int, Field(ge=1, le=100)]] = Field(default_factory=lambda: [1, 3, 5, 10], min_length=1, max_length=10)


def _ref(name: str, version: int | None) -> str:
    return name if version is None else f"{name}@{version}"


@router.get("/knowledge-bases")
def list_kbs(request: Request) -> dict[str, Any]:
    return {"knowledge_bases": [_kb_view(kb) for kb in _svc(request).list()]}


@router.post("/knowledge-bases", status_code=201)
async def create_kb(body: CreateKb, request: Request) -> dict[str, Any]:
    kb = await _run(
        _svc(request).create, body.name, description=body.description, chunk_tokens=body.chunk_tokens, overlap_tokens=body.overlap_tokens
    )
    return _kb_view(kb)


@router.get("/knowledge-bases/{name}")
def show_kb(name: str, request: Request, version: int | None = Query(None, ge=0, le=VERSION_MAX)) -> dict[str, Any]:
    svc = _svc(request)
    kb, v, docs = svc.documents(_ref(name, version))
    return _kb_view(kb) | {
        "shown_version": v,
        "documents": [_doc_view(d) for d in docs],
        "chunks": sum(d.chunk_count for d in docs),
        "index": svc.index.describe(),
    }


@router.delete("/knowledge-bases/{name}", status_code=204)
async def delete_kb(name: str, request: Request) -> Response:
    await _run(_svc(request).delete, name)
    return Response(status_code=204)


@router.get("/knowledge-bases/{name}/versions")
def versions(name: str, request: Request) -> dict[str, Any]:
    return {"knowledge_base": name, "versions": [_version_view(v) for v in _svc(request).versions(name)]}


@router.get("/knowledge-bases/{name}/documents")
def list_documents(name: str, request: Request, version: int | None = Query(None, ge=0, le=VERSION_MAX)) -> dict[str, Any]:
    kb, v, docs = _svc(request).documents(_ref(name, version))
    return {"knowledge_base": kb.name, "version": v, "documents": [_doc_view(d) for d in docs]}


@router.get("/knowledge-bases/{name}/documents/{document:path}")
def show_document(name: str, document: str, request: Request, version: int | None = Query(None, ge=0, le=VERSION_MAX)) -> dict[str, Any]:
    d = _svc(request).document(_ref(name, version), document)
    return _doc_view(d) | {"text": d.text}


def _allowed(request: Request, raw: str, param: str) -> Path:
    """A regular file or a folder inside an allowed import folder that the server can read.

    Else 400 (a NUL byte; a FIFO, device or socket), 403 (outside the import folders) or 404
    (missing or unreadable: the same answer). Files inside a folder are checked one by one
    when it is walked, and fail alone.
    """
    path = import_path(request, raw, param)
    shown = server_paths(request).shown(path)
    st = user_stat(path, display=shown, what="path", param=param)
    if stat.S_ISDIR(st.st_mode):
        check_user_dir(path, display=shown, what="path", param=param)
    else:
        with open_user_file(path, display=shown, what="path", param=param):  # readable, regular, never blocking
            pass
    return path


def _sources(request: Request, body: AddDocuments) -> list[Any]:
    knowledge = _svc(request)
    if not body.documents and not body.paths and not body.urls:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST, "give 'documents' (uploaded), 'paths' (on the server) or 'urls' (fetched)", param="documents"
        )
    sources = []
    for i, d in enumerate(body.documents):
        if (d.text is None) == (d.content_base64 is None):
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, f"documents[{i}]: give exactly one of 'text' or 'content_base64'", param=f"documents.{i}"
            )
        if d.text is not None:
            data = d.text.encode("utf-8")
        else:
            try:
                data = base64.b64decode(d.content_base64 or "", validate=True)
            except (binascii.Error, ValueError):
                raise PlinthError(
                    ErrorCode.INVALID_REQUEST, f"documents[{i}].content_base64 is not valid base64", param=f"documents.{i}.content_base64"
                ) from None
        sources.append(knowledge.source_from_bytes(d.name, data, d.media_type, body.metadata | d.metadata))
    paths = [_allowed(request, p, f"paths.{i}") for i, p in enumerate(body.paths)]
    sources.extend(knowledge.sources_from_paths(paths, body.metadata))
    return sources


@router.post(
    "/knowledge-bases/{name}/documents",
    responses={
        **errors(409, 413, 415),
        **stream("application/x-ndjson", "with progress=true: progress lines, then the result", also_json=True),
    },
)
async def add_documents(name: str, body: AddDocuments, request: Request, progress: bool = Query(False)) -> Response:
    """Add or replace documents (one new version). With ``?progress=true`` the answer is
    NDJSON: one ``{"event": "progress", ...}`` line per document, then ``{"event": "result", ...}``."""
    svc = _svc(request)
    svc.get(name)
    sources = _sources(request, body)
    if body.urls:  # each URL's host is resolved and judged now: off the event loop
        sources.extend(await _run(svc.sources_from_urls, body.urls, body.metadata))
    if not progress:
        report = await _run(svc.add_sources, name, sources)
        return Response(json.dumps(server_paths(request).hide_value(report.as_dict())), media_type="application/json")
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    total = len(sources)
    done = [0]

    def on_progress(doc: str, _bytes: int) -> None:
        done[0] += 1
        loop.call_soon_threadsafe(queue.put_nowait, {"event": "progress", "document": doc, "done": done[0], "total": total})

    async def work() -> None:
        try:
            report = await _run(svc.add_sources, name, sources, progress=on_progress)
            await queue.put({"event": "result", **server_paths(request).hide_value(report.as_dict())})
        except PlinthError as e:
            await queue.put({"event": "error", **hide_paths(request, e).to_canonical()})
        except Exception:
            log.exception("adding documents to knowledge base %s failed", name)
            err = PlinthError(ErrorCode.INTERNAL, "internal error; the server log has the details")
            await queue.put({"event": "error", **err.to_canonical()})
        finally:
            await queue.put(None)

    task = asyncio.create_task(work())

    async def lines() -> AsyncIterator[bytes]:
        while (item := await queue.get()) is not None:
            yield (json.dumps(item) + "\n").encode()
        await task

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.post("/knowledge-bases/{name}/documents:remove")
async def remove_documents(name: str, body: RemoveDocuments, request: Request) -> dict[str, Any]:
    report = await _run(_svc(request).remove_documents, name, body.documents)
    return report.as_dict()


@router.delete("/knowledge-bases/{name}/documents/{document:path}")
async def remove_document(name: str, document: str, request: Request) -> dict[str, Any]:
    report = await _run(_svc(request).remove_documents, name, [document])
    return report.as_dict()


@router.post("/knowledge-bases/{name}/search")
async def search(name: str, body: SearchBody, request: Request) -> dict[str, Any]:
    result = await _run(_svc(request).search, _ref(name, body.version), body.query, k=body.k, filters=body.filters)
    return result.as_dict()


@router.post("/knowledge-bases/{name}/prune")
async def prune(name: str, body: PruneBody, request: Request) -> dict[str, Any]:
    return await _run(_svc(request).prune, name, body.keep)


@router.post("/knowledge-bases/{name}/eval")
async def evaluate(name: str, body: EvalBody, request: Request) -> dict[str, Any]:
    knowledge = _svc(request)
    questions = knowledge.questions_from_lines([json.dumps(q) for q in body.questions], "questions")
    return await _run(knowledge.evaluate, _ref(name, body.version), questions, tuple(sorted(set(body.ks))))


@router.get("/citations/{response_id}")
def citations(response_id: str, request: Request) -> dict[str, Any]:
    rec = _svc(request).citations(response_id)
    return {
        "response_id": rec.response_id,
        "knowledge_base": rec.knowledge_base,
        "version": rec.version,
        "model": rec.model,
        "query": rec.query,
        "citations": rec.citations,
        "created_at": rec.created_at.isoformat() if rec.created_at else None,
    }
