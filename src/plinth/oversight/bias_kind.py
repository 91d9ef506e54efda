"""The ``bias`` job kind: replay a counterfactual bias suite against a model version or a
deployment and store the report (:mod:`plinth.oversight.bias`).

It reaches the job queue through the ``plinth.executors`` entry-point group (pyproject.toml),
like fine-tuning's kinds; nothing is imported here until a job is validated or run. The spec::

    {"suite": <the suite document: YAML/JSON text or a mapping>,
     "target": "acme-faq@3" | "acme-assistant",  # a model id or a deployment name
     "revision": 2}                              # a deployment's revision (default: stable)

Validation parses the whole suite (every problem at once) and resolves the target in the
submitting process, so a job is never created for a suite or target that cannot run; the
stored spec keeps the suite as a mapping, and the worker parses it again. Scheduling is the
job system's: submit the same spec again (``plinth bias run ... --job``, the API, or cron).
"""

from __future__ import annotations

from typing import Any

from plinth.domain.jobs import Resources
from plinth.errors import ErrorCode, PlinthError
from plinth.jobs.executors import ExecutorEntry

EXECUTORS: tuple[ExecutorEntry, ...] = (
    ExecutorEntry(
        "bias",
        run="plinth.oversight.bias_kind:run",
        validate="plinth.oversight.bias_kind:validate",
        description="Replay a counterfactual bias suite against a model version or a deployment; "
        "per-attribute gaps against thresholds, stored as a bias report (the bias gate reads it).",
        default_resources=Resources(cpu=2, memory=3 << 30, gpus=0),
    ),
)

_KEYS = {"suite", "target", "revision"}


def parse_spec(spec: dict[str, Any]) -> tuple[Any, str, int | None]:
    """The suite, the target and the revision of a spec; PlinthError naming the field."""
    from plinth.domain.numbers import VERSION_MAX
    from plinth.oversight.bias_suite import load_suite_text, parse_suite

    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"unknown field(s) of a bias run: {', '.join(unknown)} (known: suite, target, revision)",
            param=unknown[0],
        )
    raw = spec.get("suite")
    if isinstance(raw, str):
        suite = load_suite_text(raw)
    elif isinstance(raw, dict):
        suite = parse_suite(raw)
    else:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "suite is required: the suite document as YAML/JSON text or an object", param="suite")
    target = spec.get("target")
    if not isinstance(target, str) or not target.strip():
        raise PlinthError(ErrorCode.INVALID_REQUEST, "target is required: a model id or a deployment name", param="target")
    revision = spec.get("revision")
    if revision is not None and (isinstance(revision, bool) or not isinstance(revision, int) or not 1 <= revision <= VERSION_MAX):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"revision must be a whole number from 1 to {VERSION_MAX}", param="revision")
    return suite, target.strip(), revision


def validate(spec: dict[str, Any], services: Any) -> dict[str, Any]:
    suite, target, revision = parse_spec(spec)
    if services.bias is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "bias probes are not enabled on this server")
    services.bias.resolve_target(target, revision=revision)
    out: dict[str, Any] = {"suite": suite.document, "target": target}
    if revision is not None:
        out["revision"] = revision
    return out


def run(ctx: Any) -> dict[str, Any]:
    suite, target, revision = parse_spec(ctx.spec)
    services = ctx.services
    ctx.log(f"bias suite {suite.name} ({suite.digest[:19]}) on {target}: {suite.summary()['prompts']} prompts")

    def progress(done: int, total: int) -> None:
        ctx.progress(done, total, "prompts answered")

    report = services.bias.run_blocking(suite, target, revision=revision, progress=progress)
    for failure in report.failures:
        ctx.log(f"fails: {failure}")
    ctx.log(f"bias report {report.id}: {'passed' if report.passed else 'FAILED'}")
    return {"report": report.id, "suite": suite.name, "target": report.target, "passed": report.passed, "failures": report.failures}
