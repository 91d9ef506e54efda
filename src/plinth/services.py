"""Wiring: build every service once from the settings. The API and the CLI use this only."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from plinth.auth.accounts import AccountService
from plinth.auth.audit import AuditLog
from plinth.auth.service import AuthService
from plinth.automation.pipelines import PipelineRunner, PipelineService
from plinth.automation.triggers import TriggerService, data_versions
from plinth.catalog.service import ModelCatalog
from plinth.config import Settings
from plinth.deployments.hook import ServingHook
from plinth.deployments.routing import DeploymentRouter
from plinth.deployments.service import DeploymentService
from plinth.deployments.watcher import RolloutWatcher
from plinth.domain.requests import TextMode
from plinth.domain.serving import Attachments
from plinth.embeddings.base import Embedder
from plinth.guardrails.service import GuardrailService
from plinth.jobs.service import JobService
from plinth.monitoring.metrics import Metrics
from plinth.outbound import Outbound
from plinth.oversight.actions import ActionContext
from plinth.oversight.alerts import AlertEvaluator, AlertService
from plinth.oversight.bias import BiasGate, BiasService, ProbeRouteHook
from plinth.oversight.drift import DriftScheduler, DriftService
from plinth.oversight.explain import ExplainService
from plinth.oversight.requests import RequestLogHook, RequestLogService, RequestLogWriter
from plinth.rag.service import KnowledgeService
from plinth.serving.attachments import AttachmentService
from plinth.serving.engine import ModelManager
from plinth.serving.pipeline import ChatStage, build_stages
from plinth.serving.service import CompletionService
from plinth.store import ArtifactStore, MetadataStore, open_store
from plinth.tempfiles import sweep
from plinth.tracking.registry import RegistryService
from plinth.tracking.service import TrackingService
from plinth.tuning.datasets import DatasetService
from plinth.usage.service import UsageService
from plinth.usage.writer import UsageWriter

log = logging.getLogger("plinth")


@dataclass
class Services:
    settings: Settings
    store: MetadataStore
    artifacts: ArtifactStore
    catalog: ModelCatalog
    metrics: Metrics
    models: ModelManager
    completions: CompletionService
    attachments: AttachmentService
    jobs: JobService
    datasets: DatasetService
    stages: list[ChatStage] = field(default_factory=list)
    knowledge: KnowledgeService | None = None
    guardrails: GuardrailService | None = None
    tracking: TrackingService | None = None
    registry: RegistryService | None = None
    audit: AuditLog | None = None
    auth: AuthService | None = None
    accounts: AccountService | None = None
    deployments: DeploymentService | None = None
    rollout: RolloutWatcher | None = None
    usage: UsageService | None = None
    usage_writer: UsageWriter | None = None
    serving_hook: ServingHook | None = None
    requests: RequestLogService | None = None
    request_log_writer: RequestLogWriter | None = None
    alerts: AlertService | None = None
    alert_evaluator: AlertEvaluator | None = None
    bias: BiasService | None = None
    explain: ExplainService | None = None
    drift: DriftService | None = None
    drift_scheduler: DriftScheduler | None = None
    pipelines: PipelineService | None = None
    triggers: TriggerService | None = None
    pipeline_runner: PipelineRunner | None = None

    def close(self) -> None:
        if self.pipeline_runner is not None:  # first: it submits jobs and changes runs
            self.pipeline_runner.close()
        self.jobs.close()  # first: its worker hands running jobs back to the queue
        if self.alert_evaluator is not None:
            self.alert_evaluator.close()
        if self.drift_scheduler is not None:
            self.drift_scheduler.close()
        if self.rollout is not None:
            self.rollout.close()
        if self.usage_writer is not None:
            self.usage_writer.close()  # what finished requests left is written before the store closes
        if self.request_log_writer is not None:
            self.request_log_writer.close()
        if self.serving_hook is not None:
            self.serving_hook.close()
        if self.guardrails is not None:
            self.guardrails.close()
        if self.explain is not None:
            self.explain.close()
        self.models.close()
        self.store.close()


def build_services(settings: Settings, *, migrate: bool = True, strict: bool = False) -> Services:
    """Every service, wired once. ``strict``: the server's store, where a call outside any
    project scope is a bug (see :mod:`plinth.store.sql.scoping`)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.database_url or "", strict=strict)
    if migrate:
        store.migrate()
    artifacts = ArtifactStore(settings.artifacts_dir)
    # What writers killed mid-write left (no live writer holds its lock; plinth.tempfiles):
    # blobs being copied, PEFT conversions, tree materialisations.
    swept = artifacts.sweep_tmp() + sweep(settings.home / "tmp") + sweep(settings.models_dir, prefix=".")
    if swept:
        log.info("removed %d temp files left by interrupted writes", swept)
    outbound = Outbound.from_settings(settings)  # every outbound request goes through it (ADR 0080)
    catalog = ModelCatalog(settings, store, artifacts, outbound)
    metrics = Metrics()
    models = ModelManager(
        settings,
        metrics,
        resolve=catalog.get,
        model_path=catalog.model_path,
        adapter_ref=catalog.resolve_adapter,
        outbound=outbound,
    )
    registry = RegistryService(store, catalog)
    models.id_resolvers.append(registry.resolve)

    def model_exists(model_id: str) -> None:
        if registry.resolve(model_id) is None:  # registry names (acme-faq@production) are model ids too
            catalog.check_model_id(model_id)

    stages: list[ChatStage] = []
    attachments = AttachmentService(store, model_exists=model_exists, stages=lambda: stages)
    jobs = JobService(settings, store, metrics)
    jobs.ensure_defaults()
    completions = CompletionService(settings, models, metrics, stages=stages, attachments=attachments.get)
    services = Services(
        settings=settings,
        store=store,
        artifacts=artifacts,
        catalog=catalog,
        metrics=metrics,
        models=models,
        completions=completions,
        attachments=attachments,
        jobs=jobs,
        datasets=DatasetService(settings, store, artifacts, catalog, outbound=outbound),
        stages=stages,
        knowledge=KnowledgeService(settings, store, metrics, outbound=outbound),
        guardrails=_guardrails(settings, store, metrics),
        tracking=TrackingService(store, artifacts),
        registry=registry,
    )
    jobs.services = services  # what each job kind's validate(spec, services) gets
    _deployments(settings, services)
    _request_log(settings, services)
    _drift(settings, services)
    _alerts(settings, services, outbound)
    _pipelines(settings, services)
    _bias(settings, services)
    # Stages are built last: they may use any service above (knowledge bases, guardrails).
    # Importing a stage module registers its stages, as a plugin's import would (ADR 0013).
    import plinth.guardrails.stage  # imported for its register_stage calls
    import plinth.rag.stage  # noqa: F401 - imported for its register_stage calls

    stages.extend(build_stages(services))
    return services


def _deployments(settings: Settings, services: Services) -> None:
    """Deployments, API keys, usage and the audit log, and their request hook in serving."""
    store, metrics, stages = services.store, services.metrics, services.stages

    def check_attachments(a: Attachments) -> None:
        for stage in stages:
            stage.check_attachments(a)

    audit = AuditLog(store)
    accounts = AccountService(store, audit, session_ttl_s=settings.session_ttl_s, cache_ttl_s=settings.auth_cache_ttl_s)
    router = DeploymentRouter(store)
    deployments = DeploymentService(
        store,
        metrics,
        audit,
        registry=services.registry,
        catalog=services.catalog,
        check_attachments=check_attachments,
        router=router,
        default_window_s=settings.deploy_window_s,
    )
    watcher = RolloutWatcher(deployments, interval_s=settings.deploy_check_interval_s)
    writer = UsageWriter(store, retention_days=settings.usage_retention_days, on_written=lambda names: watcher.poke(*names))
    auth = AuthService(
        store, metrics, audit, enabled=settings.auth, cache_ttl_s=settings.auth_cache_ttl_s, on_used=writer.touch, accounts=accounts
    )
    hook = ServingHook(router, auth, writer, metrics)
    services.completions.hooks.append(hook)
    services.audit, services.auth, services.deployments, services.rollout = audit, auth, deployments, watcher
    services.accounts = accounts
    services.usage = UsageService(store, writer, on_feedback=watcher.poke)
    services.usage_writer, services.serving_hook = writer, hook


def _request_log(settings: Settings, services: Services) -> None:
    """The request log: its hook in serving (after the deployment hook), its writer thread, and
    the ratings feedback stores (ADR 0090)."""

    def minilm() -> Embedder:
        from plinth.embeddings import get_embedder

        return get_embedder(settings, "minilm")

    writer = RequestLogWriter(
        services.store,
        services.metrics,
        embedder=minilm if settings.request_log_embeddings else None,
        queue_size=settings.request_log_queue,
        text_budget=settings.request_log_queue_text_bytes,
        max_text_chars=settings.request_log_max_text_chars,
        retention_days=settings.request_log_retention_days,
        max_bytes=settings.request_log_max_bytes,
        prune_interval_s=settings.request_log_prune_interval_s,
    )
    deployments = services.deployments
    services.requests = RequestLogService(
        services.store,
        writer,
        check_deployment=deployments.get if deployments is not None else None,
        flag_score=settings.request_log_flag_score,
        enabled=settings.request_log,
    )
    services.request_log_writer = writer
    if settings.request_log:
        hook = RequestLogHook(writer, text_mode=TextMode(settings.request_log_text), embeddings=settings.request_log_embeddings)
        services.completions.hooks.append(hook)
        if services.usage is not None:
            services.usage.rated.append(services.requests.feedback)


def _drift(settings: Settings, services: Services) -> None:
    """Drift runs and anomaly scores (ADR 0091, 0092), and their scheduler thread (started by
    server processes only: it refreshes the drift gauges from the store and runs the
    deployments ``drift_schedule`` names)."""

    def minilm() -> Embedder:
        from plinth.embeddings import get_embedder

        return get_embedder(settings, "minilm")

    if services.requests is None or services.deployments is None:  # pragma: no cover - always built above
        return
    services.drift = DriftService(
        services.store,
        services.requests,
        services.deployments,
        embedder=minilm,
        registry=services.registry,
        datasets=services.datasets,
        knowledge=services.knowledge,
        metrics=services.metrics,
    )
    services.drift_scheduler = DriftScheduler(services.drift, settings.drift_schedule, window=settings.drift_window)


def _bias(settings: Settings, services: Services) -> None:
    """Counterfactual bias probes (ADR 0093): the service, its route hook (first, so a probe of
    a deployment is served by the revision it pinned, outside the traffic split) and the
    ``bias`` kind of the deployments' evaluation gate; and per-answer explanations."""

    def minilm() -> Embedder:
        from plinth.embeddings import get_embedder

        return get_embedder(settings, "minilm")

    services.bias = BiasService(services, embedder_factory=minilm)
    services.explain = ExplainService(services)  # per-answer explanations (ADR 0096)
    services.completions.hooks.insert(0, ProbeRouteHook())
    if services.deployments is not None:
        gate = BiasGate(services.store)
        services.deployments.gate_kinds[gate.kind] = gate


def _alerts(settings: Settings, services: Services, outbound: Outbound) -> None:
    """Alert rules and their evaluator thread (ADR 0094): actions notify through the outbound
    fetcher and roll back through the deployment service."""
    deployments = services.deployments
    context = ActionContext(
        outbound=outbound,
        deployments=deployments,
        external_url=settings.alert_external_url,
        webhook_timeout_s=settings.alert_webhook_timeout_s,
    )
    services.alerts = AlertService(
        services.store, context, check_deployment=deployments.get if deployments is not None else None, metrics=services.metrics
    )
    services.alert_evaluator = AlertEvaluator(services.alerts, interval_s=settings.alert_interval_s)


def _pipelines(settings: Settings, services: Services) -> None:
    """Pipelines and triggers (ADR 0102, 0103): the services, the runner thread (started by
    server processes only: it advances unfinished runs and checks schedule and new-data
    triggers) and the alert action ``pipeline``'s starter."""
    services.pipelines = PipelineService(services.store, services.jobs, services=services)
    services.triggers = TriggerService(services.store, services.pipelines, version_of=data_versions(services))
    services.pipeline_runner = PipelineRunner(
        services.pipelines,
        interval_s=settings.pipelines_interval_s,
        lease_s=settings.pipelines_lease_s,
        after_round=lambda now: services.triggers.run_once(now) if services.triggers is not None else None,
    )
    if services.alerts is not None:
        services.alerts.actions.pipelines = services.triggers


def _guardrails(settings: Settings, store: MetadataStore, metrics: Metrics) -> GuardrailService:
    def embedder() -> Embedder:
        from plinth.embeddings import get_embedder

        return get_embedder(settings)

    service = GuardrailService(
        store,
        metrics,
        embedder_factory=embedder,
        default_policy=settings.guardrails_default_policy,
        record_events=settings.guardrails_record_events,
    )
    service.ensure_builtin()
    return service


# -- what is installed: for `plinth doctor`, `plinth db upgrade` and GET /api/v1/runtimes ----
# The entry points ask these of the composition root instead of opening adapters themselves.
@dataclass(frozen=True)
class RuntimeStatus:
    name: str
    description: str
    requires: tuple[str, ...]
    missing: tuple[str, ...]
    install_hint: str

    @property
    def available(self) -> bool:
        return not self.missing

    def public_dict(self) -> dict[str, object]:
        return {"name": self.name, "description": self.description, "available": self.available, "missing": list(self.missing)}


def runtime_status() -> list[RuntimeStatus]:
    """Every registered runtime and the Python modules it still needs."""
    from plinth.runtimes import missing_requirements, runtime_entry, runtime_names

    out = []
    for name in runtime_names():
        entry = runtime_entry(name)
        out.append(RuntimeStatus(name, entry.description, entry.requires, tuple(missing_requirements(name)), entry.install_hint))
    return out


def upgrade_store(settings: Settings) -> str | None:
    """Apply the migrations to the metadata store; the schema revision after them."""
    store = open_store(settings.database_url or "")
    try:
        store.migrate()
        return store.schema_revision()
    finally:
        store.close()


def store_revision(settings: Settings) -> str | None:
    """The metadata store's schema revision (None before the first migration); PlinthError
    when the store cannot be reached."""
    store = open_store(settings.database_url or "")
    try:
        store.ping()
        return store.schema_revision()
    finally:
        store.close()


def embedded_model_file() -> Path:
    """The embedded model's GGUF file (PlinthError when its package is not installed)."""
    from plinth.formats import locate_embedded_gguf

    return locate_embedded_gguf()
