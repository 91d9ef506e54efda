"""The Evaluation kind of project files (ADR 0100, issue 15): an evaluation run spec.

``spec`` is the ``eval`` job's spec (:class:`plinth.tuning.eval_executor.EvalSpec`: a served
model id, a dataset — ``name`` for its latest version or ``name@version`` —, the split and the
sample/token limits); the metrics are the evaluation's own (teacher-forced loss, ROUGE-L...).

Desired state is "an evaluation of exactly this spec exists": the live object is the latest
``eval`` job labelled ``plinth.evaluation=<name>`` that did not fail or get cancelled (queued,
running, or succeeded with its report on the registry version). Plan compares the spec as
written with that job's (its ``dataset`` as written is kept in a label: the job itself pins
the version); apply submits one job per changed spec, labelled with the spec's digest — a
second apply submits nothing, and a failed or cancelled job is planned again. An unpinned
``dataset`` means its latest version at the apply that submits the job; to evaluate a new
version, pin it (``faq@2``): a changed pin is a changed spec. Delete (prune) cancels and
deletes the labelled jobs; the reports already written stay on the registry. Export writes
each labelled job's spec as it was written.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

from plinth.automation.project.kinds import KindHandler, ProjectContext, register_kind
from plinth.domain.jobs import JobState
from plinth.errors import PlinthError
from plinth.tuning.eval_executor import EvalSpec

LABEL = "plinth.evaluation"
DIGEST_LABEL = "plinth.spec-digest"
DATASET_LABEL = "plinth.dataset"  # the dataset as the spec names it


def spec_digest(spec: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class EvaluationHandler(KindHandler):
    kind = "Evaluation"
    spec_model = EvalSpec
    order = 60  # after datasets, models and deployments
    description = "an evaluation run: model + dataset@version; submitted once per spec digest"

    def _jobs(self, ctx: ProjectContext, name: str | None = None) -> list[Any]:
        labels = {LABEL: name} if name is not None else {}
        jobs = ctx.services.jobs.list(kind="eval", labels=labels, limit=1000)
        return [j for j in jobs if LABEL in j.labels]

    def _current(self, ctx: ProjectContext, name: str) -> Any:
        alive = [j for j in self._jobs(ctx, name) if j.state not in (JobState.FAILED, JobState.CANCELLED)]
        return max(alive, key=lambda j: (j.created_at is not None, j.created_at), default=None)

    def check(self, ctx: ProjectContext, name: str, spec: BaseModel) -> list[tuple[str, str]]:
        assert isinstance(spec, EvalSpec)
        out: list[tuple[str, str]] = []
        ds_name = spec.dataset.split("@")[0]
        if ds_name not in ctx.defined.get("Dataset", set()):
            try:
                ctx.services.datasets.get(spec.dataset)
            except PlinthError as e:
                out.append(("dataset", e.message))
        defined_models = ctx.defined.get("ModelImport", set()) | ctx.defined.get("Adapter", set())
        if spec.model not in defined_models:
            try:
                ctx.services.catalog.check_model_id(ctx.services.models.served_id(spec.model))
            except PlinthError as e:
                out.append(("model", e.message))
        return out

    def desired(self, ctx: ProjectContext, name: str, spec: BaseModel) -> dict[str, Any]:
        assert isinstance(spec, EvalSpec)
        return spec.model_dump()

    def live_names(self, ctx: ProjectContext) -> list[str]:
        return sorted({j.labels[LABEL] for j in self._jobs(ctx) if j.state not in (JobState.FAILED, JobState.CANCELLED)})

    def read(self, ctx: ProjectContext, name: str) -> dict[str, Any] | None:
        job = self._current(ctx, name)
        if job is None:
            return None
        d = {k: job.spec.get(k) for k in EvalSpec.model_fields}
        d["dataset"] = job.labels.get(DATASET_LABEL, d["dataset"])
        return d

    def create(self, ctx: ProjectContext, name: str, spec: BaseModel) -> None:
        want = self.desired(ctx, name, spec)
        ctx.services.jobs.submit(
            "eval",
            want,
            name=f"evaluation {name}"[:200],
            labels={LABEL: name, DIGEST_LABEL: spec_digest(want), DATASET_LABEL: want["dataset"]},
        )

    def delete(self, ctx: ProjectContext, name: str) -> None:
        for job in self._jobs(ctx, name):
            if not job.state.terminal:
                ctx.services.jobs.cancel(job.id)
            ctx.services.jobs.delete(job.id)

    def export(self, ctx: ProjectContext, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        return self.read(ctx, name) or {}, {}


register_kind(EvaluationHandler())
