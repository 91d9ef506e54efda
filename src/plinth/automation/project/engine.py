"""Project files (ADR 0100): load a folder of YAML documents, validate them (every problem at
once, with file and line), plan against the live store, apply, and export the live state.

A plan's ``live_digest`` is the digest of the live state of every resource it touches, read
when it was computed; applying a saved plan recomputes it and refuses when it changed.
Resources an apply created or changed carry the managed-by mark: an audit entry with the
action :data:`~plinth.automation.project.kinds.MANAGED_ACTION` (the latest one for a
resource says whether it is still managed). ``--prune`` deletes only those.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from plinth.automation.project.kinds import API_VERSION, MANAGED_ACTION, KindHandler, ProjectContext, kind_handler, kinds
from plinth.domain.projects import current_project
from plinth.errors import ErrorCode, PlinthError

MAX_FILES = 1000
MAX_FILE_BYTES = 1 << 20


@dataclass
class Problem:
    file: str
    line: int
    message: str
    kind: str | None = None
    name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "message": self.message, "kind": self.kind, "name": self.name}

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class Resource:
    kind: str
    name: str
    spec: dict[str, Any]
    file: str
    line: int
    node: Any = None
    parsed: BaseModel | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass
class Change:
    action: str  # create | update | delete
    kind: str
    name: str
    diff: list[dict[str, Any]] = field(default_factory=list)  # [{path, before, after}]

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "kind": self.kind, "name": self.name, "diff": self.diff}


@dataclass
class Plan:
    project: str
    changes: list[Change]
    live_digest: str
    files_digest: str
    directory: str | None = None
    prune: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": "plinth-plan/v1",
            "project": self.project,
            "directory": self.directory,
            "prune": self.prune,
            "live_digest": self.live_digest,
            "files_digest": self.files_digest,
            "changes": [c.as_dict() for c in self.changes],
            "summary": self.summary(),
        }

    def summary(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "delete": 0}
        for c in self.changes:
            out[c.action] += 1
        return out


class ProjectInvalid(PlinthError):
    """Validation failed: ``problems`` lists every one."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = "; ".join(str(p) for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__(
            ErrorCode.INVALID_REQUEST,
            f"{len(problems)} problem(s) in the project files: {first}{more}",
            details={"problems": [p.as_dict() for p in problems]},
        )


# -- loading ----------------------------------------------------------------------------------
def project_files(directory: Path) -> dict[str, str]:
    """The YAML files of a folder (recursively, hidden entries skipped): relative path -> text."""
    if not directory.is_dir():
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{str(directory)!r} is not a folder", param="directory")
    out: dict[str, str] = {}
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for fn in sorted(files):
            if fn.startswith(".") or not fn.endswith((".yaml", ".yml")):
                continue
            p = Path(root) / fn
            rel = p.relative_to(directory).as_posix()
            if len(out) >= MAX_FILES:
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"more than {MAX_FILES} YAML files under {str(directory)!r}")
            data = p.read_bytes()[: MAX_FILE_BYTES + 1]
            out[rel] = data.decode("utf-8", "replace")
    return out


def _line_of(node: Any, path: tuple[Any, ...]) -> int:
    """The 1-based line of the value at ``path`` inside a composed YAML node (the deepest
    node found along it)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if getattr(k, "value", None) == str(part):
                    nxt = k if v is None else v
                    line = k.start_mark.line + 1
                    break
            if nxt is None:
                return line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


MAX_NODES = 100_000


def _too_big(node: Any) -> bool:
    """Whether the document expands to more than MAX_NODES nodes (aliases counted each time
    they are used: a "billion laughs" document is refused before it is built)."""
    budget = MAX_NODES
    stack = [node]
    while stack:
        n = stack.pop()
        budget -= 1
        if budget < 0:
            return True
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                stack.extend((k, v))
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    return False


def load(files: dict[str, str]) -> tuple[list[Resource], list[Problem]]:
    """Every document of the files, and the problems of their envelopes."""
    resources: list[Resource] = []
    problems: list[Problem] = []
    for path in sorted(files):
        text = files[path]
        if len(text.encode("utf-8", "replace")) > MAX_FILE_BYTES:
            problems.append(Problem(path, 1, f"file is larger than {MAX_FILE_BYTES} bytes"))
            continue
        loader = yaml.SafeLoader(text)
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is None:
                    continue
                if _too_big(node):
                    problems.append(Problem(path, node.start_mark.line + 1, f"the document has more than {MAX_NODES} YAML nodes"))
                    continue
                data = loader.construct_document(node)
                line = node.start_mark.line + 1
                if data is None:
                    continue
                if not isinstance(data, dict):
                    problems.append(Problem(path, line, "a document must be a mapping with apiVersion, kind, metadata and spec"))
                    continue
                problems.extend(_envelope(path, node, data, resources))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            problems.append(Problem(path, mark.line + 1 if mark else 1, f"YAML syntax error: {getattr(e, 'problem', None) or e}"))
        finally:
            loader.dispose()
    return resources, problems


def _envelope(path: str, node: Any, data: dict[str, Any], resources: list[Resource]) -> list[Problem]:
    out = []
    where = lambda *p: _line_of(node, p)  # noqa: E731
    if data.get("apiVersion") != API_VERSION:
        out.append(Problem(path, where("apiVersion"), f"apiVersion must be {API_VERSION!r} (got {data.get('apiVersion')!r})"))
    kind = data.get("kind")
    known = ", ".join(h.kind for h in kinds())
    if not isinstance(kind, str) or kind_handler(kind) is None:
        out.append(Problem(path, where("kind"), f"unknown kind {kind!r}; kinds: {known}"))
    meta = data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        out.append(Problem(path, where("metadata"), "metadata.name is required", kind=kind if isinstance(kind, str) else None))
    elif isinstance(meta, dict) and meta.get("project") not in (None, current_project()):
        out.append(
            Problem(path, where("metadata", "project"), f"belongs to project {meta['project']!r}, not {current_project()!r}", kind, name)
        )
    extra = sorted(set(data) - {"apiVersion", "kind", "metadata", "spec"})
    if extra:
        out.append(Problem(path, where(extra[0]), f"unknown top-level field(s): {', '.join(extra)}"))
    spec = data.get("spec", {})
    if not isinstance(spec, dict):
        out.append(Problem(path, where("spec"), "spec must be a mapping"))
    if not out and isinstance(kind, str) and isinstance(name, str):
        resources.append(Resource(kind, name, spec or {}, path, node.start_mark.line + 1, node))
    return out


def validate(ctx: ProjectContext, files: dict[str, str]) -> list[Resource]:
    """Load and check the files: envelopes, specs, references, what each kind checks.
    ProjectInvalid listing every problem; nothing is changed."""
    resources, problems = load(files)
    seen: dict[str, Resource] = {}
    for r in resources:
        if r.key in seen:
            first = seen[r.key]
            problems.append(Problem(r.file, r.line, f"{r.key} is defined twice (first in {first.file}:{first.line})", r.kind, r.name))
            continue
        seen[r.key] = r
        handler = kind_handler(r.kind)
        assert handler is not None
        try:
            r.parsed = handler.parse(r.spec)
        except ValidationError as e:
            for err in e.errors():
                loc = tuple(err["loc"])
                field_path = ".".join(str(p) for p in loc)
                problems.append(
                    Problem(r.file, _line_of(r.node, ("spec", *loc)), f"{r.key}: spec.{field_path}: {err['msg']}", r.kind, r.name)
                )
    ctx.defined = {}
    for r in seen.values():
        ctx.defined.setdefault(r.kind, set()).add(r.name)
    for r in seen.values():
        if r.parsed is None:
            continue
        handler = kind_handler(r.kind)
        assert handler is not None
        for ref in handler.references(r.parsed):
            if ref.name in ctx.defined.get(ref.kind, set()):
                continue
            target = kind_handler(ref.kind)
            if target is not None and target.read(ctx, ref.name) is not None:
                continue
            problems.append(
                Problem(
                    r.file,
                    _line_of(r.node, ("spec", *_split(ref.field))),
                    f"{r.key}: spec.{ref.field}: {ref.kind} {ref.name!r} is neither defined in the folder nor live",
                    r.kind,
                    r.name,
                )
            )
        try:
            checked = handler.check(ctx, r.name, r.parsed)
        except PlinthError as e:
            checked = [((e.param or "").removeprefix("spec."), e.message)]
        for field_name, message in checked:
            problems.append(Problem(r.file, _line_of(r.node, ("spec", *_split(field_name))), f"{r.key}: {message}", r.kind, r.name))
    if problems:
        raise ProjectInvalid(sorted(problems, key=lambda p: (p.file, p.line)))
    return list(seen.values())


def _split(field_path: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in field_path.split(".") if p)


# -- planning ---------------------------------------------------------------------------------
def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _diff(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for k in sorted(set(before) | set(after), key=str):
            out.extend(_diff(before.get(k), after.get(k), f"{path}.{k}" if path else str(k)))
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        out = []
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            out.extend(_diff(b, a, f"{path}[{i}]"))
        return out
    return [] if _canonical(before) == _canonical(after) else [{"path": path, "before": before, "after": after}]


def managed(ctx: ProjectContext, kind: str, name: str) -> bool:
    """Whether the latest apply that touched this resource created or changed it (the
    managed-by mark); hand-made resources have none."""
    audit = ctx.services.audit
    if audit is None:
        return False
    entries = audit.list(action=MANAGED_ACTION, target_type=kind, target=name, limit=1)
    return bool(entries) and (entries[0].details or {}).get("op") != "delete"


def plan(ctx: ProjectContext, files: dict[str, str], *, prune: bool = False) -> Plan:
    resources = validate(ctx, files)
    by_kind: dict[str, list[Resource]] = {}
    for r in resources:
        by_kind.setdefault(r.kind, []).append(r)
    changes: list[Change] = []
    live_state: dict[str, Any] = {}
    deletes: list[Change] = []
    for handler in kinds():
        wanted = {r.name: r for r in by_kind.get(handler.kind, [])}
        for name, r in sorted(wanted.items()):
            assert r.parsed is not None
            live = handler.read(ctx, name)
            live_state[r.key] = live
            want = handler.desired(ctx, name, r.parsed)
            if live is None:
                changes.append(Change("create", handler.kind, name, _diff({}, want)))
            else:
                d = _diff(live, want)
                if d:
                    changes.append(Change("update", handler.kind, name, d))
        if prune:
            for name in sorted(set(handler.live_names(ctx)) - set(wanted)):
                if managed(ctx, handler.kind, name):
                    live = handler.read(ctx, name)
                    live_state[f"{handler.kind}/{name}"] = live
                    deletes.append(Change("delete", handler.kind, name, _diff(live or {}, {})))
    changes.extend(reversed(deletes))  # dependants first: a deployment before its knowledge base
    return Plan(
        project=current_project(),
        changes=changes,
        live_digest="sha256:" + hashlib.sha256(_canonical(live_state).encode()).hexdigest(),
        files_digest="sha256:" + hashlib.sha256(_canonical(files).encode()).hexdigest(),
        directory=str(ctx.base_dir) if ctx.base_dir else None,
        prune=prune,
    )


# -- applying ---------------------------------------------------------------------------------
Progress = Callable[[Change, str], None]  # (change, "start" | "done")


def apply(
    ctx: ProjectContext,
    files: dict[str, str],
    *,
    prune: bool = False,
    saved: dict[str, Any] | None = None,
    progress: Progress | None = None,
    details: dict[str, Any] | None = None,
) -> Plan:
    """Plan and carry out the changes. ``saved``: a plan computed earlier (``plan -o``):
    refused (``conflict``) when the live state or the files changed since."""
    p = plan(ctx, files, prune=prune if saved is None else bool(saved.get("prune")))
    if saved is not None:
        if saved.get("project") not in (None, p.project):
            raise PlinthError(ErrorCode.CONFLICT, f"the saved plan is for project {saved.get('project')!r}, not {p.project!r}")
        if saved.get("live_digest") != p.live_digest:
            raise PlinthError(
                ErrorCode.CONFLICT,
                "the live state changed since the plan was made; run `plinth plan` again",
                details={"planned": saved.get("live_digest"), "now": p.live_digest},
            )
        if saved.get("files_digest") != p.files_digest or saved.get("changes") != [c.as_dict() for c in p.changes]:
            raise PlinthError(ErrorCode.CONFLICT, "the project files changed since the plan was made; run `plinth plan` again")
    resources = {r.key: r for r in validate(ctx, files)}
    for change in p.changes:
        handler = kind_handler(change.kind)
        assert handler is not None
        if progress is not None:
            progress(change, "start")
        key = f"{change.kind}/{change.name}"
        if change.action == "delete":
            before = handler.read(ctx, change.name)
            handler.delete(ctx, change.name)
            _audit(ctx, change, before, None, details)
        else:
            r = resources[key]
            assert r.parsed is not None
            before = handler.read(ctx, change.name)
            if before is None:
                handler.create(ctx, change.name, r.parsed)
            else:
                handler.update(ctx, change.name, r.parsed, before)
            _audit(ctx, change, before, handler.read(ctx, change.name), details)
        if progress is not None:
            progress(change, "done")
    return p


def _audit(ctx: ProjectContext, change: Change, before: Any, after: Any, details: dict[str, Any] | None) -> None:
    if ctx.services.audit is None:
        return
    ctx.services.audit.record(
        ctx.actor,
        MANAGED_ACTION,
        change.kind,
        change.name,
        before=_small(before),
        after=_small(after),
        details={"op": change.action, "managed_by": "plinth", **(details or {})},
    )


def _small(state: Any) -> dict[str, Any] | None:
    if state is None:
        return None
    text = _canonical(state)
    return state if len(text) < 16_000 else {"digest": "sha256:" + hashlib.sha256(text.encode()).hexdigest()}


# -- exporting --------------------------------------------------------------------------------
def export(ctx: ProjectContext) -> dict[str, bytes]:
    """The live state as project files: ``<kind>/<name>.yaml`` per resource and the files
    their specs name."""
    out: dict[str, bytes] = {}
    for handler in kinds():
        for name in sorted(handler.live_names(ctx)):
            spec, extra = handler.export(ctx, name)
            doc = {"apiVersion": API_VERSION, "kind": handler.kind, "metadata": {"name": name}, "spec": spec}
            # a file name the API's path rule accepts (an adapter is named BASE:ADAPTER); the
            # document's metadata, not its file name, names the resource
            out[f"{_folder(handler)}/{re.sub(r'[^A-Za-z0-9._-]', '_', name)}.yaml"] = yaml.safe_dump(
                doc, sort_keys=False, allow_unicode=True
            ).encode("utf-8")
            out.update(extra)
    return out


def _folder(handler: KindHandler) -> str:
    return "resources/" + handler.kind.lower()


def write_files(directory: Path, files: dict[str, bytes]) -> list[Path]:
    """Write exported files under ``directory`` (paths checked to stay inside it)."""
    root = directory.resolve()
    written = []
    for rel, data in sorted(files.items()):
        target = (root / rel).resolve()
        if root not in target.parents:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"export path {rel!r} leaves the folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append(target)
    return written


def read_saved_plan(path: Path) -> dict[str, Any]:
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"cannot read the saved plan {str(path)!r}: {e}") from None
    if not isinstance(saved, dict) or saved.get("format") != "plinth-plan/v1":
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{str(path)!r} is not a plan written by `plinth plan -o`")
    return saved
