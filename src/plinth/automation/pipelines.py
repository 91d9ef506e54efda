"""Pipelines on the durable job queue (ADR 0102): apply versioned DAGs of steps, run them, and
the runner thread that advances every unfinished run.

Each step runs one job kind of the queue (:mod:`plinth.jobs`) or a built-in in-process action
(:data:`ACTIONS`). The runner keeps all of its state in the metadata store: a run's steps,
their attempts, job ids, inputs digests and outputs. A step's job is submitted with an
idempotency key made of the run, the step and the attempt, so a runner killed between the
submit and recording the job id submits nothing twice; a new server process picks the
unfinished runs up (their leases expire) and goes on polling the same jobs.

Caching: a step's inputs digest covers what it runs (job kind or action) and its resolved
spec; a step with ``cache: true`` whose digest matches a succeeded step of an earlier run of
the same pipeline takes that step's outputs and ends ``cached``, without a job.
"""

from __future__ import annotations

import builtins
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from plinth.automation.pipeline_spec import (
    PipelineSpec,
    Problem,
    StepSpec,
    Unresolved,
    digest_of,
    evaluate_condition,
    invalid,
    parse_pipeline,
    resolve,
)
from plinth.domain.pipelines import (
    PIPELINE_NAME_RE,
    Pipeline,
    PipelineRun,
    PipelineStep,
    RunState,
    StepState,
)
from plinth.domain.projects import project_scope, system_scope
from plinth.errors import ErrorCode, PlinthError, transient
from plinth.jobs.service import JobService
from plinth.store import MetadataStore

log = logging.getLogger("plinth.pipelines")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


# -- built-in actions ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ActionCall:
    """What an action knows of its call: the run, the step, when the step started and now."""

    run_id: str
    step: str
    started_at: datetime
    now: datetime


class NotYet(Exception):
    """Raised by an action that is waiting (``watch``): the step stays running and the runner
    calls it again on its next round."""


@dataclass(frozen=True)
class Action:
    """A built-in step run in the runner's process: ``run(spec, services, call) -> outputs``;
    PlinthError fails the step with its message, :class:`NotYet` keeps it running.
    ``cacheable``: whether the same inputs may reuse an earlier output (actions that change
    the platform are not)."""

    name: str
    run: Callable[[dict[str, Any], Any, ActionCall], dict[str, Any]]
    description: str
    cacheable: bool = True


def _check(spec: dict[str, Any], services: Any, call: ActionCall) -> dict[str, Any]:
    that = spec.get("that")
    if not that:
        raise PlinthError(ErrorCode.INVALID_REQUEST, str(spec.get("message") or f"check failed: {that!r} is false"))
    return {"passed": True, "value": that}


def _set(spec: dict[str, Any], services: Any, call: ActionCall) -> dict[str, Any]:
    return dict(spec)


def _alias(spec: dict[str, Any], services: Any, call: ActionCall) -> dict[str, Any]:
    registry = getattr(services, "registry", None)
    if registry is None:
        raise PlinthError(ErrorCode.UNSUPPORTED, "the model registry is not available")
    model, alias, version = spec.get("model"), spec.get("alias"), spec.get("version")
    if not isinstance(model, str) or not isinstance(alias, str) or isinstance(version, bool) or not isinstance(version, int):
        raise PlinthError(ErrorCode.INVALID_REQUEST, "alias needs model (a registered model), alias and version (an integer)", param="spec")
    registry.set_alias(model, alias, version)
    return {"model": model, "alias": alias, "version": version, "ref": f"{model}@{alias}"}


def _deployments(services: Any) -> Any:
    d = getattr(services, "deployments", None)
    if d is None:
        raise PlinthError(ErrorCode.UNSUPPORTED, "deployments are not available")
    return d


def _deployment_name(spec: dict[str, Any]) -> str:
    name = spec.get("deployment")
    if not isinstance(name, str) or not name:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "spec.deployment: the deployment's name", param="spec.deployment")
    return name


def _canary(spec: dict[str, Any], services: Any, call: ActionCall) -> dict[str, Any]:
    name = _deployment_name(spec)
    targets = spec.get("targets") or ([{"model": spec["model"]}] if isinstance(spec.get("model"), str) else None)
    if not targets:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "canary needs spec.model (or spec.targets)", param="spec.model")
    percent = spec.get("percent", 10)
    dep = _deployments(services).canary(name, targets, percent=percent, actor=f"pipeline:{call.run_id}", note=f"pipeline run {call.run_id}")
    return {"deployment": name, "revision": dep.canary_revision, "percent": dep.canary_percent}


def _promote(spec: dict[str, Any], services: Any, call: ActionCall) -> dict[str, Any]:
    name = _deployment_name(spec)
    dep = _deployments(services).promote(name, actor=f"pipeline:{call.run_id}", note=f"pipeline run {call.run_id}")
    return {"deployment": name, "stable_revision": dep.stable_revision}


def _rollback(spec: dict[str, Any], services: Any, call: ActionCall) -> dict[str, Any]:
    name = _deployment_name(spec)
    dep = _deployments(services).rollback(
        name, actor=f"pipeline:{call.run_id}", reason=str(spec.get("reason") or f"pipeline run {call.run_id}")
    )
    return {"deployment": name, "stable_revision": dep.stable_revision}


def _watch(spec: dict[str, Any], services: Any, call: ActionCall) -> dict[str, Any]:
    """Wait while the canary ``spec.revision`` of ``spec.deployment`` is on canary, at most
    ``spec.for_s`` seconds: ``promoted`` or ``rolled_back`` when the rollout watcher (or a
    person) decided, ``healthy`` when the time passed with the canary still on."""
    name = _deployment_name(spec)
    revision, for_s = spec.get("revision"), spec.get("for_s", 600)
    if isinstance(for_s, bool) or not isinstance(for_s, (int, float)) or for_s < 0:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "spec.for_s: seconds to watch (a number of at least 0)", param="spec.for_s")
    dep = _deployments(services).get(name)
    if revision is not None and dep.canary_revision != revision:
        outcome = "promoted" if dep.stable_revision == revision else "rolled_back"
        return {"deployment": name, "revision": revision, "outcome": outcome, "stable_revision": dep.stable_revision}
    if (call.now - call.started_at).total_seconds() >= float(for_s):
        return {"deployment": name, "revision": revision, "outcome": "healthy", "stable_revision": dep.stable_revision}
    raise NotYet()


ACTIONS: dict[str, Action] = {
    "check": Action("check", _check, "gate: fail the step unless spec.that is true (e.g. ${steps.eval.outputs.passed})"),
    "set": Action("set", _set, "outputs are the resolved spec (name values for later steps)"),
    "alias": Action("alias", _alias, "promote a registered model version: point spec.alias of spec.model at spec.version", cacheable=False),
    "canary": Action("canary", _canary, "put spec.model on canary of spec.deployment with spec.percent of traffic", cacheable=False),
    "watch": Action(
        "watch", _watch, "wait up to spec.for_s while spec.revision is on canary: promoted, rolled_back or healthy", cacheable=False
    ),
    "promote": Action("promote", _promote, "promote the canary of spec.deployment (its gate applies)", cacheable=False),
    "rollback": Action("rollback", _rollback, "roll spec.deployment back (drop its canary)", cacheable=False),
}


def register_action(action: Action) -> None:
    """Add a built-in action (another area's: deployments' canary and promote, knowledge ingest)."""
    ACTIONS[action.name] = action


# -- the service -----------------------------------------------------------------------------------
class PipelineService:
    """Pipelines and runs as the API and CLI see them; the store holds everything."""

    def __init__(self, store: MetadataStore, jobs: JobService, *, services: Any = None, clock: Clock = utcnow) -> None:
        self.store = store
        self.jobs = jobs
        self.services = services
        self.clock = clock
        #: called after a run is created or changed, so the runner looks now
        self.on_change: Callable[[], None] | None = None

    # -- pipelines ---------------------------------------------------------------------------
    def parse(self, doc: Any) -> PipelineSpec:
        return parse_pipeline(doc, job_kinds={e.kind for e in self.jobs.kinds()}, actions=set(ACTIONS))

    def apply(self, doc: Any) -> tuple[Pipeline, bool]:
        """Store the document as the pipeline's next version, unless the newest is the same;
        the pipeline and whether a version was added."""
        spec = self.parse(doc)
        try:
            current = self.store.get_pipeline(spec.name)
        except PlinthError as e:
            if e.code is not ErrorCode.NOT_FOUND:
                raise
            current = None
        if current is not None and current.digest == spec.digest:
            return current, False
        added = self.store.add_pipeline_version(
            Pipeline(name=spec.name, version=0, spec=spec.raw, digest=spec.digest, description=spec.description, created_at=self.clock())
        )
        return added, True

    def get(self, name: str, version: int | None = None) -> Pipeline:
        _check_name(name)
        return self.store.get_pipeline(name, version)

    def list(self) -> builtins.list[Pipeline]:
        return self.store.list_pipelines()

    def delete(self, name: str) -> Pipeline:
        """Remove every version (past runs stay as history); refused while a run is unfinished."""
        self.get(name)
        active = self.store.list_pipeline_runs(pipeline=name, states=(RunState.PENDING, RunState.RUNNING), limit=1)
        if active:
            raise PlinthError(
                ErrorCode.CONFLICT,
                f"pipeline {name!r} has an unfinished run ({active[0].id}): cancel it first",
                details={"run": active[0].id},
            )
        return self.store.delete_pipeline(name)

    # -- runs --------------------------------------------------------------------------------
    def start(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        reason: str = "manual",
        trigger: Mapping[str, Any] | None = None,
        version: int | None = None,
    ) -> PipelineRun:
        """Start a run of the pipeline's newest (or given) version; its id comes back at once."""
        pipeline = self.get(name, version)
        spec = self.parse(pipeline.spec)
        given = dict(params or {})
        problems = [
            Problem(f"params.{k}", f"unknown parameter {k!r} (declared: {', '.join(sorted(spec.params)) or 'none'})")
            for k in given
            if k not in spec.params
        ]
        values = {k: given.get(k, default) for k, default in spec.params.items()}
        problems += [Problem(f"params.{k}", f"parameter {k!r} has no default: give it a value") for k, v in values.items() if v is None]
        if problems:
            raise invalid(problems, "parameters")
        now = self.clock()
        run = PipelineRun(
            id=f"run-{uuid.uuid4().hex[:20]}",
            pipeline=pipeline.name,
            version=pipeline.version,
            params=values,
            state=RunState.PENDING,
            reason=reason[:2000],
            trigger=dict(trigger or {}),
            created_at=now,
        )
        steps = [PipelineStep(run_id=run.id, name=s.name, position=i) for i, s in enumerate(spec.steps)]
        created = self.store.add_pipeline_run(run, steps)
        if self.on_change is not None:
            self.on_change()
        return created

    def run(self, run_id: str) -> PipelineRun:
        return self.store.get_pipeline_run(run_id)

    def steps(self, run_id: str) -> builtins.list[PipelineStep]:
        self.store.get_pipeline_run(run_id)
        return self.store.pipeline_steps(run_id)

    def runs(self, pipeline: str | None = None, *, states: tuple[RunState, ...] = (), limit: int = 100) -> builtins.list[PipelineRun]:
        if not 1 <= limit <= 1000:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "limit must be from 1 to 1000", param="limit")
        if pipeline is not None:
            self.get(pipeline)
        return self.store.list_pipeline_runs(pipeline=pipeline, states=states, limit=limit)

    def lineage(self, run_id: str) -> dict[str, Any]:
        """Where each output came from: the run's trigger and parameters, per step its job,
        inputs digest, the run it was cached from and its outputs (artifacts)."""
        run = self.run(run_id)
        return {
            "run": run.id,
            "pipeline": f"{run.pipeline}@{run.version}",
            "reason": run.reason,
            "trigger": run.trigger,
            "params": run.params,
            "steps": [
                {
                    "step": s.name,
                    "state": s.state.value,
                    "job_id": s.job_id,
                    "inputs_digest": s.inputs_digest,
                    "cached_from": s.cached_from,
                    "artifacts": s.outputs,
                }
                for s in self.store.pipeline_steps(run.id)
            ],
        }

    def step_logs(self, run_id: str, step: str, *, tail: int = 200) -> builtins.list[str]:
        """The log of the step's job (empty for actions and steps without a job)."""
        for s in self.steps(run_id):
            if s.name == step:
                if s.job_id is None:
                    return [s.message] if s.message else []
                return [ln.line for ln in self.jobs.logs(s.job_id, tail=tail)]
        raise PlinthError(ErrorCode.NOT_FOUND, f"run {run_id} has no step {step!r}", details={"kind": "pipeline step", "name": step})

    def cancel(self, run_id: str) -> PipelineRun:
        """Cancel an unfinished run: its running jobs are cancelled, its unfinished steps end cancelled."""
        run = self.run(run_id)
        if run.state.terminal:
            raise PlinthError(ErrorCode.CONFLICT, f"run {run_id} already {run.state.value}", details={"state": run.state.value})
        now = self.clock()
        run = self.store.update_pipeline_run(run_id, state=RunState.CANCELLED, finished_at=now, message="cancelled")
        for s in self.store.pipeline_steps(run_id):
            if s.state.terminal:
                continue
            if s.job_id is not None and s.state is StepState.RUNNING:
                try:
                    self.jobs.cancel(s.job_id)
                except PlinthError as e:
                    log.warning("could not cancel job %s of run %s: %s", s.job_id, run_id, e.message)
            self.store.update_pipeline_step(run_id, s.name, state=StepState.CANCELLED, finished_at=now, message="run cancelled")
        return run

    def resume(self, run_id: str) -> PipelineRun:
        """Run a failed or cancelled run again from where it stopped: succeeded and cached steps
        keep their outputs; failed, cancelled and skipped ones run again."""
        run = self.run(run_id)
        if not run.state.terminal:
            raise PlinthError(
                ErrorCode.CONFLICT, f"run {run_id} is {run.state.value}: nothing to resume", details={"state": run.state.value}
            )
        if run.state is RunState.SUCCEEDED:
            raise PlinthError(ErrorCode.CONFLICT, f"run {run_id} succeeded: start a new run instead", details={"state": run.state.value})
        for s in self.store.pipeline_steps(run_id):
            if not s.state.done_ok:
                self.store.update_pipeline_step(
                    run_id,
                    s.name,
                    state=StepState.PENDING,
                    attempt=0,
                    job_id=None,
                    message="",
                    finished_at=None,
                    next_try_at=None,
                    started_at=None,
                )
        run = self.store.update_pipeline_run(
            run_id, state=RunState.RUNNING, started_at=self.clock(), finished_at=None, message="resumed", owner=None, lease_until=None
        )
        if self.on_change is not None:
            self.on_change()
        return run

    # -- advancing a run (the runner) -------------------------------------------------------
    def advance(self, run_id: str, *, now: datetime | None = None) -> PipelineRun:
        """Move one run forward as far as it can go now (in the run's project scope)."""
        now = now or self.clock()
        run = self.store.get_pipeline_run(run_id)
        if run.state.terminal:
            return run
        pipeline = self.store.get_pipeline(run.pipeline, run.version)
        spec = self.parse(pipeline.spec)
        if run.state is RunState.PENDING:
            run = self.store.update_pipeline_run(run.id, state=RunState.RUNNING, started_at=now)
        steps = {s.name: s for s in self.store.pipeline_steps(run.id)}
        progressed = True
        while progressed:  # a finished step may let the next one start in the same pass
            progressed = False
            for st in spec.steps:
                if self.store.get_pipeline_run(run.id).state.terminal:  # cancelled meanwhile
                    return self.store.get_pipeline_run(run.id)
                before = steps[st.name]
                after = self._advance_step(run, spec, st, steps, now)
                steps[st.name] = after
                if (after.state, after.attempt, after.job_id) != (before.state, before.attempt, before.job_id):
                    progressed = progressed or after.state.terminal
        if all(s.state.terminal for s in steps.values()):
            failed = [s.name for s in steps.values() if s.state in (StepState.FAILED, StepState.CANCELLED)]
            state = RunState.FAILED if failed else RunState.SUCCEEDED
            message = f"failed steps: {', '.join(failed)}" if failed else "all steps done"
            run = self.store.update_pipeline_run(run.id, state=state, finished_at=now, message=message, owner=None, lease_until=None)
        return run

    def _context(self, run: PipelineRun, steps: Mapping[str, PipelineStep]) -> dict[str, Any]:
        return {
            "params": run.params,
            "run": {"id": run.id, "pipeline": run.pipeline, "version": run.version},
            "trigger": run.trigger,
            "steps": {n: {"state": s.state.value, "outputs": s.outputs} for n, s in steps.items()},
        }

    def _advance_step(
        self, run: PipelineRun, spec: PipelineSpec, st: StepSpec, steps: Mapping[str, PipelineStep], now: datetime
    ) -> PipelineStep:
        step = steps[st.name]
        update = self.store.update_pipeline_step
        if step.state is StepState.RUNNING:
            if st.action is not None:  # a waiting action (NotYet): call it again
                return self._run_action(run, st, step, now, step.inputs, step.inputs_digest or "", step.attempt)
            return self._poll(run, st, step, now)
        if step.state is not StepState.PENDING:
            return step
        deps = [steps[d] for d in st.depends]
        if any(not d.state.terminal for d in deps):
            return step
        bad = [d.name for d in deps if not d.state.done_ok]
        if bad:
            return update(run.id, st.name, state=StepState.SKIPPED, finished_at=now, message=f"skipped: {', '.join(bad)} did not succeed")
        if step.next_try_at is not None and step.next_try_at > now:
            return step
        context = self._context(run, steps)
        if st.when is not None:
            try:
                go = evaluate_condition(st.when, context)
            except Unresolved as e:
                return update(run.id, st.name, state=StepState.FAILED, finished_at=now, message=f"condition: {e}")
            if not go:
                return update(run.id, st.name, state=StepState.SKIPPED, finished_at=now, message=f"condition false: {st.when}")
        try:
            inputs = resolve(st.spec, context)
        except Unresolved as e:
            return update(run.id, st.name, state=StepState.FAILED, finished_at=now, message=f"inputs: {e}")
        digest = digest_of({"job": st.job, "action": st.action, "spec": inputs})
        cacheable = st.cache and (st.action is None or ACTIONS[st.action].cacheable)
        if cacheable:
            hit = self.store.find_cached_step(run.pipeline, st.name, digest)
            if hit is not None:
                return update(
                    run.id,
                    st.name,
                    state=StepState.CACHED,
                    inputs=inputs,
                    inputs_digest=digest,
                    outputs=hit.outputs,
                    cached_from=hit.run_id,
                    job_id=hit.job_id,
                    started_at=now,
                    finished_at=now,
                    message=f"cached from run {hit.run_id}",
                )
        attempt = step.attempt + 1
        if st.action is not None:
            return self._run_action(run, st, step, now, inputs, digest, attempt)
        assert st.job is not None
        try:
            job = self.jobs.submit(
                st.job,
                inputs,
                queue=st.queue,
                # stable across a killed runner, new for each attempt and each resume (started_at)
                idempotency_key=f"pipeline:{run.id}:{_stamp(run.started_at)}:{st.name}:{attempt}",
                name=f"{run.pipeline}/{st.name}",
                labels={"plinth.pipeline": run.pipeline, "plinth.run": run.id, "plinth.step": st.name},
            )
        except PlinthError as e:  # refused at submit: the same inputs would be refused again
            return update(
                run.id,
                st.name,
                state=StepState.FAILED,
                attempt=attempt,
                inputs=inputs,
                inputs_digest=digest,
                finished_at=now,
                message=e.message,
            )
        return update(
            run.id,
            st.name,
            state=StepState.RUNNING,
            attempt=attempt,
            job_id=job.id,
            inputs=inputs,
            inputs_digest=digest,
            started_at=now,
            next_try_at=None,
            message=f"attempt {attempt}: job {job.id}",
        )

    def _run_action(
        self, run: PipelineRun, st: StepSpec, step: PipelineStep, now: datetime, inputs: dict[str, Any], digest: str, attempt: int
    ) -> PipelineStep:
        assert st.action is not None
        started = step.started_at if step.state is StepState.RUNNING and step.started_at is not None else now
        try:
            outputs = ACTIONS[st.action].run(inputs, self.services, ActionCall(run.id, st.name, started, now))
        except NotYet:
            if step.state is StepState.RUNNING:
                return step
            return self.store.update_pipeline_step(
                run.id,
                st.name,
                state=StepState.RUNNING,
                attempt=attempt,
                inputs=inputs,
                inputs_digest=digest,
                started_at=now,
                message="waiting",
            )
        except PlinthError as e:
            return self._failed(run, st, step, now, attempt=attempt, inputs=inputs, digest=digest, message=e.message)
        except Exception as e:
            log.exception("action %s of run %s failed", st.action, run.id)
            return self._failed(run, st, step, now, attempt=attempt, inputs=inputs, digest=digest, message=f"{type(e).__name__}: {e}")
        return self.store.update_pipeline_step(
            run.id,
            st.name,
            state=StepState.SUCCEEDED,
            attempt=attempt,
            inputs=inputs,
            inputs_digest=digest,
            outputs=dict(outputs),
            started_at=started,
            finished_at=now,
            message="done",
        )

    def _poll(self, run: PipelineRun, st: StepSpec, step: PipelineStep, now: datetime) -> PipelineStep:
        assert step.job_id is not None
        job = self.jobs.get(step.job_id)
        if not job.state.terminal:
            if st.timeout_s is not None and step.started_at is not None and now - step.started_at > timedelta(seconds=st.timeout_s):
                try:
                    self.jobs.cancel(job.id)
                except PlinthError as e:
                    log.warning("could not cancel timed-out job %s: %s", job.id, e.message)
                return self._failed(
                    run, st, step, now, attempt=step.attempt, message=f"timed out after {st.timeout_s:g} s (job {job.id} cancelled)"
                )
            return step
        if job.state.value == "succeeded":
            return self.store.update_pipeline_step(
                run.id,
                st.name,
                state=StepState.SUCCEEDED,
                outputs=dict(job.result or {}),
                finished_at=now,
                message=f"job {job.id} succeeded",
            )
        return self._failed(
            run, st, step, now, attempt=step.attempt, message=f"job {job.id} {job.state.value}: {job.message or ''}".strip()
        )

    def _failed(
        self,
        run: PipelineRun,
        st: StepSpec,
        step: PipelineStep,
        now: datetime,
        *,
        attempt: int,
        message: str,
        inputs: dict[str, Any] | None = None,
        digest: str | None = None,
    ) -> PipelineStep:
        """A failed attempt: back to pending with a backoff while retries are left, else failed."""
        extra: dict[str, Any] = {}
        if inputs is not None:
            extra = {"inputs": inputs, "inputs_digest": digest}
        if attempt <= st.retries:
            wait = st.backoff_s * (2 ** (attempt - 1))
            return self.store.update_pipeline_step(
                run.id,
                st.name,
                state=StepState.PENDING,
                attempt=attempt,
                next_try_at=now + timedelta(seconds=wait),
                message=f"attempt {attempt} failed ({message}); retry in {wait:g} s",
                **extra,
            )
        return self.store.update_pipeline_step(
            run.id, st.name, state=StepState.FAILED, attempt=attempt, finished_at=now, message=message, **extra
        )


def _stamp(at: datetime | None) -> str:
    return "" if at is None else f"{at.timestamp():.6f}"


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not PIPELINE_NAME_RE.match(name):
        raise PlinthError(ErrorCode.NOT_FOUND, f"pipeline {name!r} does not exist", details={"kind": "pipeline", "name": str(name)})


# -- the runner thread -----------------------------------------------------------------------------
class PipelineRunner:
    """Advances every project's unfinished runs every ``interval_s`` on its own thread (server
    processes only; ``interval_s`` 0: never, :meth:`run_once` still works). A run is leased
    to one runner at a time (``lease_s``), so several servers on one store share the work and
    a killed server's runs are taken over when its leases expire."""

    def __init__(
        self,
        service: PipelineService,
        *,
        interval_s: float,
        lease_s: float = 30.0,
        clock: Clock | None = None,
        after_round: Callable[[datetime], object] | None = None,
    ) -> None:
        self.service = service
        self.interval_s = interval_s
        self.lease_s = lease_s
        self.clock = clock or service.clock
        self.owner = f"runner-{uuid.uuid4().hex[:12]}"
        #: extra work of each round (the trigger service's schedule and new-data checks)
        self.after_round = after_round
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        service.on_change = self.wake

    def start(self) -> None:
        if self.interval_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="plinth-pipeline-runner", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.run_once()
            except Exception as e:
                if transient(e):
                    log.warning("a pipeline runner round was deferred: %s", e)
                else:
                    log.exception("a pipeline runner round failed")

    def drive(self, run_id: str, *, now: datetime | None = None) -> PipelineRun | None:
        """Advance one run of the current project when no other runner holds it (the CLI's
        ``--wait``); None when another holds it."""
        at = now or self.clock()
        if not self.service.store.claim_pipeline_run(run_id, self.owner, now=at, until=at + timedelta(seconds=self.lease_s)):
            return None
        return self.service.advance(run_id, now=at)

    def run_once(self, *, now: datetime | None = None) -> builtins.list[PipelineRun]:
        """Advance every unfinished run this runner can lease (all at time ``now``)."""
        self.rounds += 1
        at = now or self.clock()
        store = self.service.store
        with system_scope():
            runs = store.list_pipeline_runs(states=(RunState.PENDING, RunState.RUNNING), limit=1000, every_project=True)
        out: list[PipelineRun] = []
        for run in reversed(runs):  # oldest first
            if self._stop.is_set():
                break
            with project_scope(run.project):
                if not store.claim_pipeline_run(run.id, self.owner, now=at, until=at + timedelta(seconds=self.lease_s)):
                    continue
                try:
                    out.append(self.service.advance(run.id, now=at))
                except PlinthError as e:
                    log.warning("run %s could not advance: %s", run.id, e.message)
                    if e.code is ErrorCode.NOT_FOUND:  # its pipeline version is gone: the run cannot go on
                        store.update_pipeline_run(run.id, state=RunState.FAILED, finished_at=at, message=e.message)
        if self.after_round is not None:
            try:
                self.after_round(at)
            except Exception:
                log.exception("the pipeline runner's round hook failed")
        return out


# The closed retraining loop's actions (dataset_from_requests, gate_vs_production,
# ingest_knowledge_base) register themselves into ACTIONS (ADR 0106).
from plinth.automation import loop_actions as _loop_actions  # noqa: E402,F401  (registers on import)
