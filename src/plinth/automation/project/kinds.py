"""The registry of resource kinds of project files (ADR 0100): the extension point.

A project file is a YAML document::

    apiVersion: plinth/v1
    kind: KnowledgeBase
    metadata: {name: acme-policies, project: acme}   # project: optional, defaults to the call's
    spec: {...}

Each ``kind`` has one :class:`KindHandler`, registered with :func:`register_kind`. The
handler knows:

- ``spec_model``: the pydantic model of its ``spec`` (``extra="forbid"``: an unknown field is a
  validation error with its file and line);
- :meth:`KindHandler.references`: the other resources its spec names (``Ref(kind, name,
  field)``); ``validate`` checks each is defined in the folder or exists live;
- :meth:`KindHandler.desired`: the spec as plan compares it (a JSON-like dict; files named by
  the spec are read here through ``ctx.path(...)`` and turned into digests);
- :meth:`KindHandler.live_names` / :meth:`KindHandler.read`: the live objects, in the same
  shape as :meth:`desired` returns (so ``desired == read`` means "no changes");
- :meth:`KindHandler.create` / :meth:`update` / :meth:`delete`: the changes, through the
  services (``ctx.services``, the composition root's ``Services``; typed ``Any`` because this
  layer sits below the composition root);
- :meth:`KindHandler.export`: the live object as a spec plus the extra files it needs (a
  dataset's JSONL, a policy document), so that ``plan`` on the exported folder shows no changes.

``order``: apply order (lower first: a knowledge base before the deployment that names it);
deletes run in the reverse order.

Another area registers its kinds at import time, as stages do (ADR 0013)::

    from plinth.automation.project.kinds import KindHandler, register_kind

    class PipelineHandler(KindHandler):
        kind = "Pipeline"
        spec_model = PipelineSpec
        order = 80
        ...

    register_kind(PipelineHandler())

and the module is listed in :data:`KIND_MODULES` (or imported before the first plan).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from plinth.errors import ErrorCode, PlinthError

API_VERSION = "plinth/v1"
MANAGED_ACTION = "project.apply"  # the audit action of every change an apply makes: the managed-by mark

# Modules whose import registers kinds (the built-in ones and those of other automation areas);
# a module missing from the install is skipped.
KIND_MODULES: list[str] = [
    "plinth.automation.project.builtin",
    "plinth.automation.pipeline_kinds",  # Pipeline, Trigger
    "plinth.automation.project.kinds_models",  # ModelImport, Adapter
    "plinth.automation.project.kinds_queues",  # Queue, PriorityClass (server admins only)
    "plinth.automation.project.kinds_eval",  # Evaluation
]


@dataclass(frozen=True)
class Ref:
    """A reference from one resource's spec to another resource."""

    kind: str
    name: str
    field: str  # the spec field that names it, for the error message


@dataclass
class ProjectContext:
    """What a handler gets: the services, the project folder (files named by specs are
    relative to it) and the actor for the audit log."""

    services: Any
    base_dir: Path | None = None
    actor: str = "plinth"
    project: str | None = None
    # name of each kind -> names defined in the folder being planned (references may point there)
    defined: dict[str, set[str]] = field(default_factory=dict)
    # a spec may name only files under this folder (the files sent over the API, a commit's
    # tree): never the server's own
    confined_to: Path | None = None

    def path(self, relative: str, *, param: str = "spec") -> Path:
        """A file or folder named by a spec, relative to the project folder."""
        if self.base_dir is None:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"{relative!r}: no project folder to resolve it against", param=param)
        p = Path(relative)
        p = p if p.is_absolute() else (self.base_dir / p).resolve()
        root = self.confined_to.resolve() if self.confined_to is not None else None
        if root is not None and p != root and root not in p.parents:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"{relative!r} is outside the project's files", param=param)
        return p


class KindHandler(ABC):
    kind: ClassVar[str]
    spec_model: ClassVar[type[BaseModel]]
    order: ClassVar[int] = 50
    description: ClassVar[str] = ""

    def parse(self, spec: dict[str, Any]) -> BaseModel:
        """The spec validated (pydantic ``ValidationError`` on bad input)."""
        return self.spec_model.model_validate(spec)

    def references(self, spec: BaseModel) -> list[Ref]:
        return []

    def check(self, ctx: ProjectContext, name: str, spec: BaseModel) -> list[tuple[str, str]]:
        """Further problems found without changing anything (a missing file...), as
        ``(spec field, message)``; validate reports them with the document's file and line."""
        return []

    @abstractmethod
    def desired(self, ctx: ProjectContext, name: str, spec: BaseModel) -> dict[str, Any]:
        """The spec in the shape :meth:`read` returns."""

    @abstractmethod
    def live_names(self, ctx: ProjectContext) -> list[str]: ...

    @abstractmethod
    def read(self, ctx: ProjectContext, name: str) -> dict[str, Any] | None:
        """The live object in :meth:`desired`'s shape; None when it does not exist."""

    @abstractmethod
    def create(self, ctx: ProjectContext, name: str, spec: BaseModel) -> None: ...

    def update(self, ctx: ProjectContext, name: str, spec: BaseModel, live: dict[str, Any]) -> None:
        self.create(ctx, name, spec)

    @abstractmethod
    def delete(self, ctx: ProjectContext, name: str) -> None: ...

    @abstractmethod
    def export(self, ctx: ProjectContext, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        """The live object as a spec (relative file names) and the files it names."""


_KINDS: dict[str, KindHandler] = {}
_loaded = False


def register_kind(handler: KindHandler) -> KindHandler:
    """Register (or replace) the handler of ``handler.kind``."""
    _KINDS[handler.kind] = handler
    return handler


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in KIND_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name is None or not module.startswith(e.name):
                raise


def kind_handler(kind: str) -> KindHandler | None:
    _load()
    return _KINDS.get(kind)


def kinds() -> list[KindHandler]:
    """Every registered kind, in apply order."""
    _load()
    return sorted(_KINDS.values(), key=lambda h: (h.order, h.kind))
