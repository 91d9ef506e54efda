"""The ``assistant-eval`` job kind: the assistant evaluation suite (see
:mod:`plinth.tuning.assistant_eval`) on a model id or a deployment; the report is stored like
the ``eval`` kind's, on the registry version."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plinth.errors import ErrorCode, PlinthError


class AssistantEvalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(
        min_length=1, max_length=300, description="a served model id (catalog model, base:adapter, registry name@version) or a deployment"
    )
    dataset: str = Field(min_length=1, max_length=200, description="the suite: a dataset version whose rows carry the answer key")
    split: Literal["validation", "train", "all"] = "all"
    max_samples: int | None = Field(None, ge=1, le=100_000)
    max_tokens: int = Field(128, ge=1, le=4096)


def parse(raw: dict[str, Any]) -> AssistantEvalSpec:
    try:
        return AssistantEvalSpec.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise PlinthError(
            ErrorCode.INVALID_REQUEST, f"invalid assistant evaluation spec: {loc}: {err['msg']}", param=f"spec.{loc}"
        ) from None


def validate(spec: dict[str, Any], services: Any) -> dict[str, Any]:
    from plinth.tuning.assistant_eval import cases_from_rows, check_model

    parsed = parse(spec)
    check_model(services, parsed.model)
    version = services.datasets.get(parsed.dataset)
    cases_from_rows(services.datasets.load_rows(version, parsed.split), version.ref)  # the answer key is checked before a job exists
    out = parsed.model_dump()
    out["dataset"] = version.ref
    return out


def run(ctx: Any) -> dict[str, Any]:
    from plinth.domain.tracking import RunStatus
    from plinth.tuning.assistant_eval import evaluate_assistant

    spec = parse(ctx.spec)
    services = ctx.services
    run_ = services.tracking.resume_or_start(
        ctx.job_id,
        f"assistant eval {spec.model} on {spec.dataset}",
        "assistant-eval",
        params=spec.model_dump(),
        base_model=spec.model,
        dataset=spec.dataset,
    )
    try:
        report = evaluate_assistant(
            services,
            spec.model,
            spec.dataset,
            split=spec.split,
            max_samples=spec.max_samples,
            max_tokens=spec.max_tokens,
            run_id=run_.id,
            progress=lambda d, t, m: ctx.progress(d, t, m),
        )
    except BaseException as e:
        services.tracking.end_run(run_.id, RunStatus.FAILED, error=f"{type(e).__name__}: {e}")
        raise
    numbers = {k: v for k, v in report.metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    services.tracking.end_run(run_.id, RunStatus.FINISHED, summary={**numbers, "report": report.id})
    ctx.log("assistant evaluation: " + ", ".join(f"{k} {v:.4g}" for k, v in numbers.items()))
    return {"report": report.id, "run_id": run_.id, **numbers}
