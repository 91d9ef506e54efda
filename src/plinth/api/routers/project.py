"""``/api/v1/project``: project files over the API (ADR 0100) — validate, plan and apply a set
of files sent as ``{path: text}``, and export the live state as such files — canonical error
shape. The files are written to a private temp folder and run exactly as ``plinth validate|
plan|apply DIR`` runs them; paths a spec names must be among the files sent."""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from plinth.api.auth import actor_of
from plinth.api.deps import services_of
from plinth.api.openapi import errors
from plinth.automation.project import engine
from plinth.automation.project.kinds import ProjectContext
from plinth.errors import ErrorCode, PlinthError

router = APIRouter(prefix="/api/v1/project", tags=["automation"])

MAX_FILES = 200
MAX_TEXT = 1 << 20


#: a relative path of folders and files, none hidden (no segment starts with a dot: no "..")
PATH_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,199})*$"
FilePath = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=PATH_PATTERN)]


class FilesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: dict[FilePath, str] = Field(
        max_length=MAX_FILES,
        description="relative path -> file text: the project's YAML documents and the files their specs name (datasets, policies)",
    )
    prune: bool = Field(
        False, strict=True, description="plan/apply: also delete resources an earlier apply made that the files no longer have"
    )


class Change(BaseModel):
    action: Literal["create", "update", "delete"]
    kind: str
    name: str
    diff: list[dict[str, Any]] = Field(description="field-level changes: {path, before, after}")


class PlanOut(BaseModel):
    format: str = Field(description="plinth-plan/v1")
    project: str
    directory: str | None
    prune: bool
    live_digest: str = Field(description="digest of the live state the plan was computed against")
    files_digest: str
    changes: list[Change]
    summary: dict[str, int] = Field(description="create, update and delete counts")


class ApplyBody(FilesBody):
    plan: dict[str, Any] | None = Field(
        None, description="a plan returned by POST /plan: refused (409) when the live state or the files changed since"
    )


class Problem(BaseModel):
    file: str
    line: int
    message: str
    kind: str | None = None
    name: str | None = None


class ValidateOut(BaseModel):
    valid: bool
    resources: list[dict[str, Any]] = Field(description="kind, name, file and line of each resource (when valid)")
    problems: list[Problem] = Field(description="every problem found, with its file and line")


class ExportOut(BaseModel):
    files: dict[str, str] = Field(description="relative path -> text: the project files of the live state")
    binary: dict[str, str] = Field(description="relative path -> base64: files that are not UTF-8 text (a Parquet dataset)")


def _check_path(path: str) -> str:
    p = PurePosixPath(path)
    if (
        not path
        or len(path) > 500
        or any(not 0 < len(part.encode("utf-8", "replace")) <= 200 for part in path.split("/"))
        or any(ord(ch) < 32 for ch in path)
        or "\\" in path
        or p.is_absolute()
        or ".." in p.parts
        or path.startswith(".")
    ):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"invalid file path {path[:80]!r}: a relative path inside the project", param="files")
    return p.as_posix()


@contextmanager
def _project(request: Request, body: FilesBody) -> Iterator[tuple[ProjectContext, dict[str, str]]]:
    total = 0
    for path, text in body.files.items():
        _check_path(path)
        total += len(text)
        if total > 8 * MAX_TEXT:
            raise PlinthError(ErrorCode.PAYLOAD_TOO_LARGE, f"the files are larger than {8 * MAX_TEXT} characters in all", param="files")
    with tempfile.TemporaryDirectory(prefix="plinth-project-") as tmp:
        root = Path(tmp)
        for path, text in body.files.items():
            target = root / _check_path(path)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(text.encode("utf-8", "surrogatepass"))  # read back with replacement characters
            except OSError as e:  # a path that is both a file and a folder
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"cannot write file {path[:80]!r}: {e}", param="files") from None
        ctx = ProjectContext(services_of(request), base_dir=root, actor=actor_of(request), confined_to=root)
        yield ctx, engine.project_files(root)


@router.post("/validate", response_model=ValidateOut, responses=errors(413))
def validate(body: FilesBody, request: Request) -> dict[str, Any]:
    """Schema and references of the files (every problem at once, with file and line); nothing is changed."""
    with _project(request, body) as (ctx, files):
        try:
            resources = engine.validate(ctx, files)
        except engine.ProjectInvalid as e:
            return {"valid": False, "resources": [], "problems": [p.as_dict() for p in e.problems]}
    return {
        "valid": True,
        "resources": [{"kind": r.kind, "name": r.name, "file": r.file, "line": r.line} for r in resources],
        "problems": [],
    }


def _plan_dict(p: engine.Plan) -> dict[str, Any]:
    out = p.as_dict()
    out["directory"] = None  # a temp folder: meaningless to the caller
    return out


@router.post("/plan", response_model=PlanOut, responses=errors(413))
def plan(body: FilesBody, request: Request) -> dict[str, Any]:
    """The field-level diff of the files against the live state (400 listing every problem when invalid)."""
    with _project(request, body) as (ctx, files):
        return _plan_dict(engine.plan(ctx, files, prune=body.prune))


@router.post("/apply", response_model=PlanOut, responses=errors(409, 413))
def apply(body: ApplyBody, request: Request) -> dict[str, Any]:
    """Make the live state match the files; answers the plan that was applied."""
    with _project(request, body) as (ctx, files):
        return _plan_dict(engine.apply(ctx, files, prune=body.prune, saved=body.plan, details={"via": "api"}))


@router.get("/export", response_model=ExportOut)
def export(request: Request) -> dict[str, Any]:
    """The live state as project files (a plan of them shows no changes)."""
    ctx = ProjectContext(services_of(request), actor=actor_of(request))
    files, binary = {}, {}
    for path, data in engine.export(ctx).items():
        try:
            files[path] = data.decode("utf-8")
        except UnicodeDecodeError:
            binary[path] = base64.b64encode(data).decode("ascii")
    return {"files": files, "binary": binary}
