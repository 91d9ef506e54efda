"""Management API of deployments under ``/api/v1/deployments`` (canonical error shape):
create, list, show, delete; canary, traffic, promote, rollback, replace; rules and gate;
status (traffic split and rule windows) and history."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from plinth.api.auth import actor_of, check_deployment_access, principal_of
from plinth.api.deps import services_of
from plinth.deployments.service import MAX_WINDOW_S, MIN_WINDOW_S, DeploymentService
from plinth.domain.numbers import VERSION_MAX
from plinth.errors import ErrorCode, PlinthError

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])


class TargetBody(BaseModel):
    """One model behind a revision."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=256, description="a catalog model, BASE:ADAPTER or a registry version (NAME@N, NAME@ALIAS)")
    weight: int = Field(100, ge=1, le=1_000_000, description="relative share of the revision's traffic")
    knowledge_base: str | None = Field(None, max_length=160)
    guardrail_policy: str | None = Field(None, max_length=160)
    system_prompt: str | None = Field(None, max_length=32_000)
    defaults: dict[str, float] = Field(
        default_factory=dict, description="temperature, top_p, max_tokens, presence_penalty, frequency_penalty"
    )
    grounding: Literal["strict", "off"] | None = Field(None, description="grounded answering with the knowledge base (ADR 0115)")


class _Targets(BaseModel):
    """Either ``targets`` or one ``model`` (with the optional target fields beside it)."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, min_length=1, max_length=256)
    targets: list[TargetBody] | None = Field(None, max_length=8)
    knowledge_base: str | None = Field(None, max_length=160)
    guardrail_policy: str | None = Field(None, max_length=160)
    system_prompt: str | None = Field(None, max_length=32_000)
    defaults: dict[str, float] = Field(default_factory=dict)
    grounding: Literal["strict", "off"] | None = None
    note: str = Field("", max_length=2000)

    def target_specs(self, required: bool = True) -> list[dict[str, Any]] | None:
        if self.model and self.targets:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "give either 'model' or 'targets', not both", param="targets")
        if self.targets:
            return [_spec(t.model_dump()) for t in self.targets]
        if self.model:
            return [
                _spec(
                    {
                        "model": self.model,
                        "knowledge_base": self.knowledge_base,
                        "guardrail_policy": self.guardrail_policy,
                        "system_prompt": self.system_prompt,
                        "defaults": self.defaults,
                        "grounding": self.grounding,
                    }
                )
            ]
        if required:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "give a 'model' or 'targets'", param="model")
        return None


def _spec(d: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in d.items() if v not in (None, {}, "")}
    if "defaults" in out and "max_tokens" in out["defaults"]:
        v = out["defaults"]["max_tokens"]
        out["defaults"]["max_tokens"] = int(v) if float(v).is_integer() else v
    return out


class CreateDeployment(_Targets):
    name: str = Field(min_length=1, max_length=128)
    description: str = Field("", max_length=2000)
    rules: list[dict[str, Any]] | None = Field(None, description="rollout rules (default: plinth's)", max_length=32)
    gate: list[dict[str, Any]] | None = Field(None, description="evaluation gate rules", max_length=32)
    window_s: int | None = Field(None, ge=MIN_WINDOW_S, le=MAX_WINDOW_S, description="rule window in seconds")
    auto_rollback: bool = True


class CanaryBody(_Targets):
    percent: float = Field(10.0, ge=0, le=100, description="share of requests the canary gets")


class TrafficBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    percent: float = Field(ge=0, le=100)
    note: str = Field("", max_length=2000)


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=2000)


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_revision: int | None = Field(
        None, ge=1, le=VERSION_MAX, description="make this revision stable (default: drop the canary, or the previous stable)"
    )
    reason: str = Field("", max_length=2000)


class ConfigureBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[dict[str, Any]] | None = Field(None, max_length=32)
    gate: list[dict[str, Any]] | None = Field(None, max_length=32)
    window_s: int | None = Field(None, ge=MIN_WINDOW_S, le=MAX_WINDOW_S, description="rule window in seconds")
    auto_rollback: bool | None = None
    description: str | None = Field(None, max_length=2000)


def _svc(request: Request, name: str | None = None) -> DeploymentService:
    d = services_of(request).deployments
    if d is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "deployments are not enabled on this server")
    if name is not None:
        check_deployment_access(request, name)
    return d


@router.get("")
def list_deployments(request: Request) -> dict[str, Any]:
    svc = _svc(request)
    p = principal_of(request)  # a key with model patterns sees the deployments they name
    return {"deployments": [svc.view(d) for d in svc.list() if p.allows_model(d.name)]}


@router.post("", status_code=201)
def create_deployment(body: CreateDeployment, request: Request) -> dict[str, Any]:
    svc = _svc(request, body.name)
    dep = svc.create(
        body.name,
        body.target_specs() or [],
        actor=actor_of(request),
        description=body.description,
        rules=body.rules,
        gate=body.gate,
        window_s=body.window_s,
        auto_rollback=body.auto_rollback,
        note=body.note,
    )
    return svc.view(dep)


@router.get("/{name}")
def get_deployment(name: str, request: Request) -> dict[str, Any]:
    svc = _svc(request, name)
    return svc.view(svc.get(name))


@router.patch("/{name}")
def configure_deployment(name: str, body: ConfigureBody, request: Request) -> dict[str, Any]:
    svc = _svc(request, name)
    dep = svc.configure(
        name,
        actor=actor_of(request),
        rules=body.rules,
        gate=body.gate,
        window_s=body.window_s,
        auto_rollback=body.auto_rollback,
        description=body.description,
    )
    return svc.view(dep)


@router.delete("/{name}", status_code=204)
def delete_deployment(name: str, request: Request) -> Response:
    _svc(request, name).delete(name, actor=actor_of(request))
    return Response(status_code=204)


@router.get("/{name}/status")
def deployment_status(name: str, request: Request) -> dict[str, Any]:
    return _svc(request, name).status(name)


@router.get("/{name}/history")
def deployment_history(name: str, request: Request, limit: int = Query(100, ge=1, le=10_000)) -> dict[str, Any]:
    return {"events": [e.public_dict() for e in _svc(request, name).history(name, limit)]}


@router.get("/{name}/revisions")
def list_revisions(name: str, request: Request) -> dict[str, Any]:
    return {"revisions": [r.public_dict() for r in _svc(request, name).revisions(name)]}


@router.get("/{name}/revisions/{number}")
def get_revision(
    name: str, number: Annotated[int, Path(ge=1, le=VERSION_MAX, description="a revision number")], request: Request
) -> dict[str, Any]:
    return _svc(request, name).revision(name, number).public_dict()


@router.post("/{name}/revisions", status_code=201)
def replace_revision(name: str, body: _Targets, request: Request) -> dict[str, Any]:
    """A new revision that takes all traffic at once (no canary; the gate applies)."""
    svc = _svc(request, name)
    return svc.view(svc.replace(name, body.target_specs() or [], actor=actor_of(request), note=body.note))


@router.post("/{name}/canary", status_code=201)
def start_canary(name: str, body: CanaryBody, request: Request) -> dict[str, Any]:
    svc = _svc(request, name)
    specs = body.target_specs(required=False)
    return svc.view(svc.canary(name, specs, percent=body.percent, actor=actor_of(request), note=body.note))


@router.put("/{name}/traffic")
def set_traffic(name: str, body: TrafficBody, request: Request) -> dict[str, Any]:
    svc = _svc(request, name)
    return svc.view(svc.canary(name, None, percent=body.percent, actor=actor_of(request), note=body.note))


@router.post("/{name}/promote")
def promote(name: str, request: Request, body: PromoteBody | None = None) -> dict[str, Any]:
    svc = _svc(request, name)
    return svc.view(svc.promote(name, actor=actor_of(request), note=body.note if body else ""))


@router.post("/{name}/rollback")
def rollback(name: str, request: Request, body: RollbackBody | None = None) -> dict[str, Any]:
    svc = _svc(request, name)
    b = body or RollbackBody()
    return svc.view(svc.rollback(name, actor=actor_of(request), reason=b.reason, to_revision=b.to_revision))
