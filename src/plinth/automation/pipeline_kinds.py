"""The ``Pipeline`` and ``Trigger`` kinds of project files (ADR 0100, 0102, 0103)::

    apiVersion: plinth/v1
    kind: Pipeline
    metadata: {name: retrain}
    spec:
      params: {dataset: acme-faq@1}
      steps:
        - {name: tune, job: tune, spec: {dataset: "${params.dataset}", ...}}
        - {name: gate, action: check, spec: {that: "${steps.tune.outputs.passed}"}}
    ---
    apiVersion: plinth/v1
    kind: Trigger
    metadata: {name: retrain-on-drift}
    spec: {pipeline: retrain, kind: alert, spec: {rule: acme-drift}, cooldown_s: 3600}

A pipeline's changed spec becomes its next version; a trigger is replaced in place (what it last
saw is kept). Validation is the services' own (every problem of a pipeline at once).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from plinth.automation.project.kinds import KindHandler, ProjectContext, Ref, register_kind
from plinth.errors import ErrorCode, PlinthError


def _problems(e: PlinthError) -> list[tuple[str, str]]:
    listed = (e.details or {}).get("problems")
    if isinstance(listed, list) and listed:
        return [(str(p.get("param", "")), str(p.get("message", ""))) for p in listed]
    return [((e.param or "").removeprefix("spec."), e.message)]


class PipelineFileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    steps: list[dict[str, Any]] = Field(min_length=1)


class PipelineHandler(KindHandler):
    kind = "Pipeline"
    spec_model = PipelineFileSpec
    order = 80
    description = "a DAG of job and action steps with parameters, caching, retries, conditions and timeouts"

    def _parsed(self, ctx: ProjectContext, name: str, spec: BaseModel) -> dict[str, Any]:
        raw = dict(ctx.services.pipelines.parse({"name": name, **spec.model_dump()}).raw)
        raw.pop("name", None)
        return raw

    def check(self, ctx: ProjectContext, name: str, spec: BaseModel) -> list[tuple[str, str]]:
        try:
            self._parsed(ctx, name, spec)
        except PlinthError as e:
            return _problems(e)
        return []

    def desired(self, ctx: ProjectContext, name: str, spec: BaseModel) -> dict[str, Any]:
        return self._parsed(ctx, name, spec)

    def live_names(self, ctx: ProjectContext) -> list[str]:
        return [p.name for p in ctx.services.pipelines.list()]

    def read(self, ctx: ProjectContext, name: str) -> dict[str, Any] | None:
        try:
            spec = dict(ctx.services.pipelines.get(name).spec)
        except PlinthError as e:
            if e.code is ErrorCode.NOT_FOUND:
                return None
            raise
        spec.pop("name", None)
        return spec

    def create(self, ctx: ProjectContext, name: str, spec: BaseModel) -> None:
        ctx.services.pipelines.apply({"name": name, **spec.model_dump()})

    def delete(self, ctx: ProjectContext, name: str) -> None:
        ctx.services.pipelines.delete(name)

    def export(self, ctx: ProjectContext, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        return self.read(ctx, name) or {}, {}


class TriggerFileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pipeline: str
    kind: str = "manual"
    spec: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    cooldown_s: float = 0
    enabled: bool = True
    when: str | None = None


def _trigger_shape(t: Any) -> dict[str, Any]:
    return {
        "pipeline": t.pipeline,
        "kind": t.kind.value,
        "spec": dict(t.spec),
        "params": dict(t.params),
        "cooldown_s": float(t.cooldown_s),
        "enabled": bool(t.enabled),
    }


class TriggerHandler(KindHandler):
    kind = "Trigger"
    spec_model = TriggerFileSpec
    order = 85
    description = "starts a pipeline on a schedule, on new data, on an alert or by hand"

    def _doc(self, name: str, spec: BaseModel) -> dict[str, Any]:
        return {"name": name, **spec.model_dump(exclude_none=True)}

    def references(self, spec: BaseModel) -> list[Ref]:
        assert isinstance(spec, TriggerFileSpec)
        return [Ref("Pipeline", spec.pipeline, "pipeline")]

    def check(self, ctx: ProjectContext, name: str, spec: BaseModel) -> list[tuple[str, str]]:
        try:
            ctx.services.triggers.parse(self._doc(name, spec), check_pipeline=False)
        except PlinthError as e:
            return _problems(e)
        return []

    def desired(self, ctx: ProjectContext, name: str, spec: BaseModel) -> dict[str, Any]:
        return _trigger_shape(ctx.services.triggers.parse(self._doc(name, spec), check_pipeline=False))

    def live_names(self, ctx: ProjectContext) -> list[str]:
        return [t.name for t in ctx.services.triggers.list()]

    def read(self, ctx: ProjectContext, name: str) -> dict[str, Any] | None:
        try:
            return _trigger_shape(ctx.services.triggers.get(name))
        except PlinthError as e:
            if e.code is ErrorCode.NOT_FOUND:
                return None
            raise

    def create(self, ctx: ProjectContext, name: str, spec: BaseModel) -> None:
        ctx.services.triggers.apply(self._doc(name, spec))

    def delete(self, ctx: ProjectContext, name: str) -> None:
        ctx.services.triggers.delete(name)

    def export(self, ctx: ProjectContext, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        return self.read(ctx, name) or {}, {}


register_kind(PipelineHandler())
register_kind(TriggerHandler())
