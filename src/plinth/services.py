"""Wiring: build every service once from the settings. The API and the CLI use this only."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from plinth.catalog.service import ModelCatalog
from plinth.config import Settings
from plinth.monitoring.metrics import Metrics
from plinth.serving.attachments import AttachmentService
from plinth.serving.engine import ModelManager
from plinth.serving.pipeline import ChatStage, build_stages
from plinth.serving.service import CompletionService
from plinth.store import ArtifactStore, MetadataStore, open_store

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
    stages: list[ChatStage] = field(default_factory=list)

    def close(self) -> None:
        self.models.close()
        self.store.close()


def build_services(settings: Settings, *, migrate: bool = True) -> Services:
    settings.home.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.database_url or "")
    if migrate:
        store.migrate()
    artifacts = ArtifactStore(settings.artifacts_dir)
    swept = artifacts.sweep_tmp()
    if swept:
        log.info("removed %d temp files left by interrupted imports", swept)
    catalog = ModelCatalog(settings, store, artifacts)
    metrics = Metrics()
    models = ModelManager(
        settings,
        metrics,
        resolve=catalog.get,
        model_path=catalog.model_path,
        adapter_ref=catalog.resolve_adapter,
    )
    stages: list[ChatStage] = []
    attachments = AttachmentService(store, model_exists=catalog.check_model_id, stages=lambda: stages)
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
        stages=stages,
    )
    # Stages are built last: they may use any service above (knowledge bases, guardrails).
    stages.extend(build_stages(services))
    return services
