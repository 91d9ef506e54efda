"""Management API of versioned datasets under ``/api/v1/datasets`` (canonical error shape).

Three ways to add a version: upload the file as the request body (bounded by
``max_body_bytes``) to ``POST /api/v1/datasets/{name}/versions``, or, with
``POST /api/v1/datasets``, import a file that lies on the server inside the allowed import
directories (``path``) or one the server fetches through its outbound rules (``url``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from plinth.api.deps import services_of
from plinth.api.server_paths import import_path
from plinth.domain.datasets import DatasetRef, SourceFormat
from plinth.domain.numbers import API_INT_MAX
from plinth.errors import ErrorCode, PlinthError
from plinth.tuning.datasets import FORMAT_BY_CONTENT_TYPE, MAX_SEED

router = APIRouter(prefix="/api/v1", tags=["datasets"])


class ImportDataset(BaseModel):
    """Add a version from a file on the server (inside an allowed import directory) or at a URL."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="dataset name; a new version is added if it exists")
    path: str | None = Field(None, description="JSONL, CSV or Parquet file inside PLINTH_IMPORT_DIRS")
    url: str | None = Field(
        None,
        max_length=2048,
        description="http(s) URL of a JSONL, CSV or Parquet file, fetched through the outbound rules (PLINTH_OUTBOUND_ALLOW); "
        "recorded as the version's source",
    )
    format: SourceFormat | None = Field(None, description="jsonl, csv or parquet (default: from the file)")
    validation_fraction: float = Field(0.1, ge=0, le=0.5, description="share of rows held out for validation (0-0.5)")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seed of the split")
    note: str | None = None
    description: str | None = None
    model: str | None = Field(None, description="model whose tokenizer counts tokens (default: the default model)")


def _version_response(version: Any, created: bool) -> JSONResponse:
    headers = {"Location": f"/api/v1/datasets/{version.dataset}/versions/{version.version}"}
    return JSONResponse({**version.public_dict(), "created": created}, status_code=201 if created else 200, headers=headers)


@router.get("/datasets")
def list_datasets(request: Request) -> dict[str, Any]:
    return {"datasets": [{**ds.public_dict(), "latest": v.public_dict()} for ds, v in services_of(request).datasets.list()]}


@router.post("/datasets", status_code=201)
async def import_dataset(body: ImportDataset, request: Request) -> JSONResponse:
    s = services_of(request)
    if (body.path is None) == (body.url is None):
        raise PlinthError(ErrorCode.INVALID_REQUEST, "give exactly one of 'path' (a file on the server) and 'url' (fetched)", param="path")
    options: dict[str, Any] = {
        "source_format": body.format,
        "validation_fraction": body.validation_fraction,
        "seed": body.seed,
        "note": body.note,
        "description": body.description,
        "model": body.model,
    }
    if body.url is not None:
        version, created = await run_in_threadpool(s.datasets.add_url, body.url, body.name, **options)
    else:
        path = import_path(request, body.path or "", "path")
        version, created = await run_in_threadpool(s.datasets.add, path, body.name, **options)
    return _version_response(version, created)


@router.post("/datasets/{name}/versions", status_code=201)
async def upload_version(
    name: str,
    request: Request,
    filename: str = Query("upload", description="the file's name, kept as the version's source name"),
    format: SourceFormat | None = Query(None, description="jsonl, csv or parquet (default: from the content type or name)"),
    validation_fraction: float = Query(0.1, ge=0, le=0.5, description="share of rows held out for validation"),
    seed: int = Query(0, ge=0, le=MAX_SEED, description="seed of the split"),
    note: str | None = None,
    model: str | None = None,
) -> JSONResponse:
    """Upload a file as the next version: the body is the file's bytes."""
    s = services_of(request)
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    fmt = format or FORMAT_BY_CONTENT_TYPE.get(content_type)
    data = await request.body()
    if not data:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "the request body is empty: send the dataset file's bytes")
    version, created = await run_in_threadpool(
        s.datasets.add_bytes,
        data,
        name,
        filename=filename,
        source_format=fmt,
        validation_fraction=validation_fraction,
        seed=seed,
        note=note,
        model=model,
    )
    return _version_response(version, created)


@router.get("/datasets/{name}")
def get_dataset(name: str, request: Request) -> dict[str, Any]:
    ds = services_of(request).datasets
    dataset = ds.dataset(name)
    return {**dataset.public_dict(), "versions": [v.public_dict() for v in ds.versions(name)]}


def _ref(name: str, version: str) -> DatasetRef:
    from plinth.tuning.datasets import parse_ref

    return parse_ref(f"{name}@{version}", param="version")


@router.get("/datasets/{name}/versions/{version}")
def get_version(name: str, version: str, request: Request) -> dict[str, Any]:
    """One version (``latest`` for the newest)."""
    return services_of(request).datasets.get(_ref(name, version)).public_dict()


@router.get("/datasets/{name}/versions/{version}/rows")
def get_rows(
    name: str,
    version: str,
    request: Request,
    split: str = Query("all", description="train, validation or all"),
    offset: int = Query(0, ge=0, le=API_INT_MAX),
    limit: int = Query(20, ge=1, le=1000),
) -> dict[str, Any]:
    ds = services_of(request).datasets
    v = ds.get(_ref(name, version))
    rows, total = ds.rows(v.ref, split=split, offset=offset, limit=limit)  # type: ignore[arg-type]
    return {"ref": v.ref, "split": split, "offset": offset, "total": total, "rows": rows}


@router.get("/datasets/{name}/diff")
def diff(
    name: str,
    request: Request,
    from_version: str = Query(..., alias="from", description="a version number (of this dataset) or NAME@V"),
    to_version: str = Query("latest", alias="to"),
    samples: int = Query(5, ge=0, le=100),
) -> dict[str, Any]:
    def ref(v: str) -> str:
        return v if "@" in v else f"{name}@{v}"

    return services_of(request).datasets.diff(ref(from_version), ref(to_version), samples=samples).public_dict()


@router.delete("/datasets/{name}", status_code=204)
def delete_dataset(name: str, request: Request) -> Response:
    services_of(request).datasets.delete(name)
    return Response(status_code=204)
