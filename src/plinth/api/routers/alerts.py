"""Alert rules under ``/api/v1/alerts`` (canonical error shape, ADR 0094): rules (create, list,
show, replace, delete, evaluate now, test their actions), their history of state changes, the
signals they may watch and the action kinds, and the rules as a Prometheus rules file."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from plinth.api.auth import check_deployment_access, principal_of
from plinth.api.deps import services_of
from plinth.api.openapi import errors
from plinth.domain.alerts import MAX_ACTIONS, AlertRule
from plinth.domain.numbers import API_INT_MAX
from plinth.errors import ErrorCode, PlinthError
from plinth.oversight.alerts import AlertService
from plinth.usage.service import parse_time

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


_Revision = Annotated[int, Field(ge=0, le=API_INT_MAX)]


class RuleBody(BaseModel):
    """An alert rule: ``signal`` of ``deployment`` (``revision``) over ``window`` compared with
    ``threshold``, held for ``for``; ``actions`` run when it fires (and resolves)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str | None = Field(None, min_length=1, max_length=128, description="the rule's name (required on create)")
    signal: str = Field(min_length=1, max_length=64, description="a signal of GET /api/v1/alerts/signals")
    deployment: str = Field(min_length=1, max_length=128)
    revision: _Revision | Literal["stable", "canary"] | None = Field(None, description="a revision number, stable or canary; none: all")
    comparison: Literal[">", "<", ">=", "<="] = ">"
    threshold: float
    window_s: int | None = Field(None, ge=0, le=API_INT_MAX, description="the signal's window in seconds (default 300)")
    window: str | None = Field(None, max_length=16, description="the window as a duration (5m, 1h) instead of window_s")
    min_samples: int = Field(1, ge=1, le=1_000_000, description="the value counts only with this many samples in the window")
    params: dict[str, float] = Field(default_factory=dict, description="the signal's options (e.g. score_above)")
    for_s: int | None = Field(None, ge=0, le=API_INT_MAX, description="seconds the condition must hold before the rule fires (default 0)")
    for_: str | None = Field(None, alias="for", max_length=16, description="for as a duration (5m) instead of for_s")
    severity: Literal["critical", "warning", "info"] = "warning"
    runbook: str = Field("", max_length=4000, description="what to do; an http(s) URL is sent as runbook_url")
    actions: list[dict[str, Any]] = Field(
        default_factory=list, max_length=MAX_ACTIONS, description="webhook, rollback, pipeline (GET /api/v1/alerts/signals lists kinds)"
    )
    enabled: bool = True

    def definition(self, name: str | None = None) -> dict[str, Any]:
        d = self.model_dump(exclude_unset=True, by_alias=True)
        if name is not None:
            d.setdefault("name", name)
        return {k: v for k, v in d.items() if v is not None or k == "revision"}


class RuleOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    signal: str
    deployment: str
    state: str
    description: str


class RuleList(BaseModel):
    rules: list[RuleOut]


class EventOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int | None
    rule: str
    from_state: str
    to_state: str
    value: float | None
    at: str | None


class EventList(BaseModel):
    events: list[EventOut]


class EvaluationOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    rule: RuleOut
    value: float | None
    samples: int
    holds: bool
    event: EventOut | None


class SignalList(BaseModel):
    signals: list[dict[str, Any]]
    actions: list[dict[str, Any]]


class TestOut(BaseModel):
    rule: str
    delivered: list[dict[str, Any]]


def _svc(request: Request) -> AlertService:
    a = services_of(request).alerts
    if a is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "alerts are not enabled on this server")
    return a


def _visible(request: Request, rule: AlertRule) -> AlertRule:
    """A key with model patterns sees the rules of the deployments they name (others: 404)."""
    if not principal_of(request).allows_model(rule.expr.deployment):
        raise PlinthError(ErrorCode.NOT_FOUND, f"alert rule {rule.name!r} not found", param="name")
    return rule


@router.get("/signals", response_model=SignalList)
def list_signals(request: Request) -> dict[str, Any]:
    svc = _svc(request)
    return {"signals": svc.signals(), "actions": svc.action_kinds()}


@router.get("/rules", response_model=RuleList)
def list_rules(request: Request, deployment: str | None = Query(None, max_length=128)) -> dict[str, Any]:
    p = principal_of(request)
    rules = _svc(request).list(deployment=deployment)
    return {"rules": [r.public_dict() for r in rules if p.allows_model(r.expr.deployment)]}


@router.post("/rules", status_code=201, response_model=RuleOut, responses=errors(404, 409))
def create_rule(body: RuleBody, request: Request) -> dict[str, Any]:
    check_deployment_access(request, body.deployment)
    if body.name is None:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "a rule needs a 'name'", param="name")
    return _svc(request).create(body.definition()).public_dict()


@router.get(
    "/rules/export",
    response_model=None,
    responses={
        200: {
            "description": "a Prometheus rules file (format=prometheus), or it and the rules left out (format=json)",
            "content": {
                "application/yaml": {"schema": {"type": "object", "description": "a Prometheus rules file: groups of alerting rules"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
def export_rules(request: Request, format: Literal["prometheus", "json"] = Query("prometheus")) -> Any:
    svc = _svc(request)
    text, skipped = svc.export_prometheus()
    if format == "json":
        return {"format": "prometheus", "rules_file": text, "skipped": skipped}
    return Response(text, media_type="application/yaml", headers={"content-disposition": 'attachment; filename="plinth-rules.yml"'})


@router.get("/rules/{name}", response_model=RuleOut)
def get_rule(name: str, request: Request) -> dict[str, Any]:
    return _visible(request, _svc(request).get(name)).public_dict()


@router.put("/rules/{name}", response_model=RuleOut)
def replace_rule(name: str, body: RuleBody, request: Request) -> dict[str, Any]:
    svc = _svc(request)
    _visible(request, svc.get(name))
    check_deployment_access(request, body.deployment)
    return svc.update(name, body.definition(name)).public_dict()


@router.delete("/rules/{name}", response_model=RuleOut)
def delete_rule(name: str, request: Request) -> dict[str, Any]:
    svc = _svc(request)
    _visible(request, svc.get(name))
    return svc.delete(name).public_dict()


@router.post("/rules/{name}/evaluate", response_model=EvaluationOut)
def evaluate_rule(name: str, request: Request) -> dict[str, Any]:
    svc = _svc(request)
    _visible(request, svc.get(name))
    return svc.evaluate(name).public_dict()


@router.post("/rules/{name}/test", response_model=TestOut)
def test_rule(name: str, request: Request) -> dict[str, Any]:
    """Run the rule's actions once with a test alert (label ``test``; rollback and pipeline say
    what they would do and change nothing)."""
    svc = _svc(request)
    _visible(request, svc.get(name))
    return {"rule": name, "delivered": svc.test(name)}


@router.get("/events", response_model=EventList, responses=errors(404))
def list_events(
    request: Request,
    rule: str | None = Query(None, max_length=128, pattern=_NAME),
    since: str | None = Query(None, description="ISO time or a duration back from now (15m, 24h, 7d)"),
    until: str | None = Query(None, description="ISO time or a duration back from now"),
    before_id: int | None = Query(None, ge=1, le=API_INT_MAX, description="page backwards: events older than this id"),
    limit: int = Query(100, ge=1, le=10_000),
) -> dict[str, Any]:
    svc = _svc(request)
    if rule is not None:
        _visible(request, svc.get(rule))
    p = principal_of(request)
    visible = {r.name for r in svc.list() if p.allows_model(r.expr.deployment)}
    events = svc.events(
        rule=rule,
        since=parse_time(since, "since"),
        until=parse_time(until, "until"),
        before_id=before_id,
        limit=limit,
    )
    return {"events": [e.public_dict() for e in events if e.rule in visible]}
