"""Project-file kinds for the job queue's server-wide settings (ADR 0100, issue 15): Queue and
PriorityClass.

Both are the server's, shared by every project, so only a server admin changes them: the
caller is read from the request's principal (:func:`plinth.auth.context.current_principal`);
outside a request (the CLI, ``plinth sync``: the local operator) the caller is the local
admin. Plan shows their changes to anyone; apply of a change by a caller that is not a server
admin is refused with 403 naming the kind and the resource, before anything of the apply runs
(``check`` reports nothing: validation is about the files, not the caller). Export and
``--prune`` see them only for a server admin, and only the queues this project's jobs may use
(those of every project and those dedicated to it); another project's queue reads as absent
to a caller who is not a server admin, as ``GET /queues/{name}`` answers.

A queue's ``project`` (the one project whose jobs it takes) is fixed when it is created: a
changed ``project`` is refused (409; delete it first). A priority class has no update in the
job service: a changed value is deleted and created again under its name (built-in classes
cannot change).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from plinth.auth.context import current_principal
from plinth.automation.project.kinds import KindHandler, ProjectContext, register_kind
from plinth.domain.jobs import BUILTIN_PRIORITY_CLASSES, DEFAULT_QUEUE, PreemptionPolicy, Resources
from plinth.domain.projects import current_project
from plinth.errors import ErrorCode, PlinthError
from plinth.jobs.resources import parse_bytes
from plinth.jobs.service import MAX_PRIORITY

_BUILTIN_CLASSES = {n for n, _, _ in BUILTIN_PRIORITY_CLASSES}


def server_admin() -> bool:
    """Whether the caller may change server-wide settings (outside a request: the local admin)."""
    p = current_principal()
    return p is None or p.server_admin


def _require_admin(kind: str, name: str) -> None:
    if not server_admin():
        raise PlinthError(
            ErrorCode.PERMISSION_DENIED,
            f"{kind} {name!r}: queues and priority classes are server-wide; only a server admin may apply a {kind}",
            param="kind",
            details={"kind": kind, "name": name},
        )


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- Queue ------------------------------------------------------------------------------------
class QuotaSpec(_Spec):
    cpu: int = Field(ge=0, description="CPU threads")
    memory: int | str = Field(description="bytes, or a size such as '4GiB'")
    gpus: int = Field(default=0, ge=0)


class QueueSpec(_Spec):
    quota: QuotaSpec
    preemption: PreemptionPolicy = PreemptionPolicy.LOWER_PRIORITY
    description: str = ""
    project: str = Field(default="", description="the one project whose jobs it takes (empty: every project's)")


def _quota(spec: QueueSpec) -> Resources:
    return Resources(cpu=spec.quota.cpu, memory=parse_bytes(spec.quota.memory, param="spec.quota.memory"), gpus=spec.quota.gpus)


class QueueHandler(KindHandler):
    kind = "Queue"
    spec_model = QueueSpec
    order = 2  # before anything whose jobs run in it
    description = "a job queue and its quota (server-wide: server admins only)"

    def check(self, ctx: ProjectContext, name: str, spec: BaseModel) -> list[tuple[str, str]]:
        assert isinstance(spec, QueueSpec)
        try:
            quota = _quota(spec)
        except PlinthError as e:
            return [("quota.memory", e.message)]
        try:
            ctx.services.jobs._check_quota(quota)
        except PlinthError as e:
            return [("quota", e.message)]
        if spec.project and ctx.services.store.find_project(spec.project) is None:
            return [("project", f"project {spec.project!r} does not exist")]
        return []

    def desired(self, ctx: ProjectContext, name: str, spec: BaseModel) -> dict[str, Any]:
        assert isinstance(spec, QueueSpec)
        return {
            "quota": _quota(spec).as_dict(),
            "preemption": spec.preemption.value,
            "description": spec.description,
            "project": spec.project,
        }

    def live_names(self, ctx: ProjectContext) -> list[str]:
        if not server_admin():
            return []
        # the queues this project's jobs may use (as GET /queues shows them), not another project's
        return [q.name for q in ctx.services.jobs.list_queues() if q.name != DEFAULT_QUEUE and q.project in ("", current_project())]

    def read(self, ctx: ProjectContext, name: str) -> dict[str, Any] | None:
        try:
            q = ctx.services.jobs.get_queue(name)
        except PlinthError:
            return None
        if q.project not in ("", current_project()) and not server_admin():
            return None  # another project's queue: as unknown to this caller as GET /queues/{name} says
        return {"quota": q.quota.as_dict(), "preemption": q.preemption.value, "description": q.description, "project": q.project}

    def create(self, ctx: ProjectContext, name: str, spec: BaseModel) -> None:
        assert isinstance(spec, QueueSpec)
        _require_admin(self.kind, name)
        ctx.services.jobs.create_queue(name, _quota(spec), preemption=spec.preemption, description=spec.description, project=spec.project)

    def update(self, ctx: ProjectContext, name: str, spec: BaseModel, live: dict[str, Any]) -> None:
        assert isinstance(spec, QueueSpec)
        _require_admin(self.kind, name)
        if spec.project != live.get("project"):
            raise PlinthError(
                ErrorCode.CONFLICT,
                f"queue {name!r} takes the jobs of {live.get('project') or 'every project'}: "
                "a queue's project is fixed; delete the queue first",
                param="spec.project",
            )
        ctx.services.jobs.update_queue(name, quota=_quota(spec), preemption=spec.preemption, description=spec.description)

    def delete(self, ctx: ProjectContext, name: str) -> None:
        _require_admin(self.kind, name)
        ctx.services.jobs.delete_queue(name)

    def export(self, ctx: ProjectContext, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        live = self.read(ctx, name) or {}
        spec: dict[str, Any] = {"quota": live["quota"], "preemption": live["preemption"]}
        if live.get("description"):
            spec["description"] = live["description"]
        if live.get("project"):
            spec["project"] = live["project"]
        return spec, {}


# -- PriorityClass ----------------------------------------------------------------------------
class PriorityClassSpec(_Spec):
    value: int = Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY, description="higher runs first (and may preempt lower)")
    description: str = ""


class PriorityClassHandler(KindHandler):
    kind = "PriorityClass"
    spec_model = PriorityClassSpec
    order = 2
    description = "a job priority class (server-wide: server admins only)"

    def check(self, ctx: ProjectContext, name: str, spec: BaseModel) -> list[tuple[str, str]]:
        if name in _BUILTIN_CLASSES:
            return [("", f"{name!r} is a built-in priority class: it cannot be defined in project files")]
        return []

    def desired(self, ctx: ProjectContext, name: str, spec: BaseModel) -> dict[str, Any]:
        assert isinstance(spec, PriorityClassSpec)
        return {"value": spec.value, "description": spec.description}

    def _find(self, ctx: ProjectContext, name: str) -> Any:
        return next((p for p in ctx.services.jobs.list_priority_classes() if p.name == name), None)

    def live_names(self, ctx: ProjectContext) -> list[str]:
        if not server_admin():
            return []
        return [p.name for p in ctx.services.jobs.list_priority_classes() if p.name not in _BUILTIN_CLASSES]

    def read(self, ctx: ProjectContext, name: str) -> dict[str, Any] | None:
        p = self._find(ctx, name)
        return None if p is None else {"value": p.value, "description": p.description}

    def create(self, ctx: ProjectContext, name: str, spec: BaseModel) -> None:
        assert isinstance(spec, PriorityClassSpec)
        _require_admin(self.kind, name)
        ctx.services.jobs.create_priority_class(name, spec.value, spec.description)

    def update(self, ctx: ProjectContext, name: str, spec: BaseModel, live: dict[str, Any]) -> None:
        _require_admin(self.kind, name)
        ctx.services.jobs.delete_priority_class(name)
        self.create(ctx, name, spec)

    def delete(self, ctx: ProjectContext, name: str) -> None:
        _require_admin(self.kind, name)
        ctx.services.jobs.delete_priority_class(name)

    def export(self, ctx: ProjectContext, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        live = self.read(ctx, name) or {}
        return ({"value": live["value"], "description": live["description"]} if live.get("description") else {"value": live["value"]}), {}


for _handler in (QueueHandler(), PriorityClassHandler()):
    register_kind(_handler)
