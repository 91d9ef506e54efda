"""The ``eval`` job kind: evaluate a served model id on a dataset version (see
:mod:`plinth.tuning.evaluation`); the report is stored on the registry version."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plinth.errors import ErrorCode, PlinthError


class EvalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=300, description="a served model id: catalog model, base:adapter, or registry name@version")
    dataset: str = Field(min_length=1, max_length=200)
    split: Literal["validation", "train", "all"] = "validation"
    max_samples: int | None = Field(200, ge=1, le=100_000)
    max_tokens: int = Field(128, ge=1, le=4096)
    max_len: int = Field(1024, ge=16, le=131_072)


def parse(raw: dict[str, Any]) -> EvalSpec:
    try:
        return EvalSpec.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"invalid evaluation spec: {loc}: {err['msg']}", param=f"spec.{loc}") from None


def validate(spec: dict[str, Any], services: Any) -> dict[str, Any]:
    parsed = parse(spec)
    check(services, parsed)
    out = parsed.model_dump()
    out["dataset"] = services.datasets.get(parsed.dataset).ref
    return out


def check(services: Any, spec: EvalSpec) -> None:
    served = services.models.served_id(spec.model)
    services.catalog.check_model_id(served)
    services.datasets.get(spec.dataset)


def run(ctx: Any) -> dict[str, Any]:
    from plinth.domain.tracking import RunStatus
    from plinth.tuning.evaluation import evaluate

    spec = parse(ctx.spec)
    services = ctx.services
    run_ = services.tracking.resume_or_start(
        ctx.job_id, f"eval {spec.model} on {spec.dataset}", "eval", params=spec.model_dump(), base_model=spec.model, dataset=spec.dataset
    )
    try:
        report = evaluate(
            services,
            spec.model,
            spec.dataset,
            split=spec.split,
            max_samples=spec.max_samples,
            max_tokens=spec.max_tokens,
            max_len=spec.max_len,
            run_id=run_.id,
            progress=lambda d, t, m: ctx.progress(d, t, m),
        )
    except BaseException as e:
        services.tracking.end_run(run_.id, RunStatus.FAILED, error=f"{type(e).__name__}: {e}")
        raise
    numbers = {k: v for k, v in report.metrics.items() if isinstance(v, int | float)}
    services.tracking.end_run(run_.id, RunStatus.FINISHED, summary={**numbers, "report": report.id})
    ctx.log("evaluation: " + ", ".join(f"{k} {v:.4g}" for k, v in numbers.items()))
    return {"report": report.id, "run_id": run_.id, **numbers}
