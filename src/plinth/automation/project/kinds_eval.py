"""The job-spec kinds of project files (ADR 0100, issue 15): Evaluation and TuningSpec.

A **TuningSpec**'s ``spec`` is the ``tune`` job's (``plinth tune``: base model, dataset,
method, hyper-parameters, the registered name); it is kept the same way as an Evaluation
below, labelled ``plinth.tuning-spec=<name>``: one tune job per spec digest, its run tracked
under the job's id. There is no store of named specs: the labelled job is the record.

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
import warnings
from typing import Any

from pydantic import BaseModel

from plinth.automation.project.kinds import KindHandler, ProjectContext, register_kind
from plinth.domain.jobs import JobState
from plinth.errors import PlinthError
from plinth.tuning.eval_executor import EvalSpec
from plinth.tuning.recipes import DEFAULT_LR

with warnings.catch_warnings():  # TuneSpec's "register" field shadows a BaseModel attribute: not ours to print on every plan
    warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)
    from plinth.tuning.spec import TuneSpec

LABEL = "plinth.evaluation"
DIGEST_LABEL = "plinth.spec-digest"
DATASET_LABEL = "plinth.dataset"  # the dataset as the spec names it
TUNING_LABEL = "plinth.tuning-spec"


def spec_digest(spec: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _dataset(spec: BaseModel) -> str:
    return str(spec.model_dump()["dataset"])


class _JobSpecHandler(KindHandler):
    """A resource that is "a job of exactly this spec exists" (see the module's docstring)."""

    job_kind: str
    label: str
    model_field: str

    def _jobs(self, ctx: ProjectContext, name: str | None = None) -> list[Any]:
        labels = {self.label: name} if name is not None else {}
        jobs = ctx.services.jobs.list(kind=self.job_kind, labels=labels, limit=1000)
        return [j for j in jobs if self.label in j.labels]

    def _current(self, ctx: ProjectContext, name: str) -> Any:
        alive = [j for j in self._jobs(ctx, name) if j.state not in (JobState.FAILED, JobState.CANCELLED)]
        return max(alive, key=lambda j: (j.created_at is not None, j.created_at), default=None)

    def _normalized(self, spec: dict[str, Any], dataset: str) -> dict[str, Any]:
        """The spec as the job kind stores it, with ``dataset`` as written."""
        d = self.spec_model.model_validate(spec).model_dump()
        d["dataset"] = dataset
        return d

    def _submitted(self, spec: BaseModel) -> dict[str, Any]:
        """What is sent to the job kind (its validate fills the defaults and pins the dataset)."""
        return spec.model_dump()

    def check(self, ctx: ProjectContext, name: str, spec: BaseModel) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        dataset = _dataset(spec)
        if dataset.split("@")[0] not in ctx.defined.get("Dataset", set()):
            try:
                ctx.services.datasets.get(dataset)
            except PlinthError as e:
                out.append(("dataset", e.message))
        model = str(getattr(spec, self.model_field))
        if model not in ctx.defined.get("ModelImport", set()) | ctx.defined.get("Adapter", set()):
            try:
                ctx.services.catalog.check_model_id(ctx.services.models.served_id(model))
            except PlinthError as e:
                out.append((self.model_field, e.message))
        return out

    def desired(self, ctx: ProjectContext, name: str, spec: BaseModel) -> dict[str, Any]:
        return self._normalized(self._submitted(spec), _dataset(spec))

    def live_names(self, ctx: ProjectContext) -> list[str]:
        return sorted({j.labels[self.label] for j in self._jobs(ctx) if j.state not in (JobState.FAILED, JobState.CANCELLED)})

    def read(self, ctx: ProjectContext, name: str) -> dict[str, Any] | None:
        job = self._current(ctx, name)
        if job is None:
            return None
        return self._normalized(job.spec, job.labels.get(DATASET_LABEL, job.spec.get("dataset")))

    def create(self, ctx: ProjectContext, name: str, spec: BaseModel) -> None:
        submitted = self._submitted(spec)
        dataset = _dataset(spec)
        ctx.services.jobs.submit(
            self.job_kind,
            submitted,
            name=f"{self.kind} {name}"[:200],
            labels={self.label: name, DIGEST_LABEL: spec_digest(self._normalized(submitted, dataset)), DATASET_LABEL: dataset},
        )

    def delete(self, ctx: ProjectContext, name: str) -> None:
        for job in self._jobs(ctx, name):
            if not job.state.terminal:
                ctx.services.jobs.cancel(job.id)
            ctx.services.jobs.delete(job.id)

    def export(self, ctx: ProjectContext, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        return self.read(ctx, name) or {}, {}


class EvaluationHandler(_JobSpecHandler):
    kind = "Evaluation"
    spec_model = EvalSpec
    order = 60  # after datasets, models and deployments
    description = "an evaluation run: model + dataset@version; submitted once per spec digest"
    job_kind = "eval"
    label = LABEL
    model_field = "model"


class TuningSpecHandler(_JobSpecHandler):
    """A named tuning spec: the ``tune`` job's spec (``plinth tune``), submitted once per spec
    digest. The job's run (``plinth runs``) is tracked under the job's id and the result is
    registered as the job's spec says; neither is undone by a delete."""

    kind = "TuningSpec"
    spec_model = TuneSpec
    order = 55  # after datasets and models, before the evaluations that may name its result
    description = "a tuning spec: base model + dataset + method; a tune job submitted once per spec digest"
    job_kind = "tune"
    label = TUNING_LABEL
    model_field = "base_model"

    def _submitted(self, spec: BaseModel) -> dict[str, Any]:
        assert isinstance(spec, TuneSpec)
        raw = spec.model_dump(exclude_unset=True)
        if raw.get("learning_rate") is None and spec.method in DEFAULT_LR:
            raw["learning_rate"] = DEFAULT_LR[spec.method]  # as the tune kind does
        if not raw.get("name"):
            raw["name"] = spec.dataset.split("@")[0]
        return raw


for _handler in (EvaluationHandler(), TuningSpecHandler()):
    register_kind(_handler)
