"""The SQL schema, as SQLAlchemy 2 declarative tables, one module per area.

These classes describe the tables; they never leave :mod:`plinth.store` (the store returns
domain objects). The tables themselves are created by the Alembic migrations under
``migrations/versions``, never by ``create_all``; ``tests/unit/store/test_migrations.py``
checks that the migrations and these classes agree. Importing this package imports every
area module, so ``Base.metadata`` holds every table.
"""

from __future__ import annotations

from plinth.store.schema.auth import ApiKeyRow, ApiKeyWindowRow, AuditRow
from plinth.store.schema.automation import PipelineRow, PipelineRunRow, PipelineStepRow, TriggerEventRow, TriggerRow
from plinth.store.schema.base import NAMING_CONVENTION, Base, Scoped, UtcDateTime
from plinth.store.schema.catalog import AdapterRow, ModelRow
from plinth.store.schema.datasets import DatasetRow, DatasetVersionRow
from plinth.store.schema.deployments import DeploymentEventRow, DeploymentRevisionRow, DeploymentRow, FeedbackRow, UsageRow
from plinth.store.schema.guardrails import GuardrailEventRow, GuardrailPolicyRow, GuardrailPolicyVersionRow
from plinth.store.schema.jobs import JobLogRow, JobRow, PriorityClassRow, QueueRow, WorkerRow
from plinth.store.schema.knowledge import KbChunkRow, KbCitationRow, KbDocumentRow, KbVersionRow, KnowledgeBaseRow
from plinth.store.schema.monitoring import AlertEventRow, AlertRuleRow, BiasReportRow, DriftRunRow, RequestLogRow
from plinth.store.schema.projects import MembershipRow, ProjectRow, ProjectWindowRow, SessionRow, UserRow
from plinth.store.schema.responses import ResponseRow
from plinth.store.schema.serving import AttachmentRow
from plinth.store.schema.tracking import (
    EvalReportRow,
    ModelAliasRow,
    ModelVersionRow,
    RegisteredModelRow,
    RunArtifactRow,
    RunMetricRow,
    RunRow,
)

__all__ = [
    "NAMING_CONVENTION",
    "AdapterRow",
    "AlertEventRow",
    "AlertRuleRow",
    "ApiKeyRow",
    "ApiKeyWindowRow",
    "AttachmentRow",
    "AuditRow",
    "Base",
    "BiasReportRow",
    "DatasetRow",
    "DatasetVersionRow",
    "DeploymentEventRow",
    "DeploymentRevisionRow",
    "DeploymentRow",
    "DriftRunRow",
    "EvalReportRow",
    "FeedbackRow",
    "GuardrailEventRow",
    "GuardrailPolicyRow",
    "GuardrailPolicyVersionRow",
    "JobLogRow",
    "JobRow",
    "KbChunkRow",
    "KbCitationRow",
    "KbDocumentRow",
    "KbVersionRow",
    "KnowledgeBaseRow",
    "MembershipRow",
    "ModelAliasRow",
    "ModelRow",
    "ModelVersionRow",
    "PipelineRow",
    "PipelineRunRow",
    "PipelineStepRow",
    "PriorityClassRow",
    "ProjectRow",
    "ProjectWindowRow",
    "QueueRow",
    "RegisteredModelRow",
    "RequestLogRow",
    "ResponseRow",
    "RunArtifactRow",
    "RunMetricRow",
    "RunRow",
    "Scoped",
    "SessionRow",
    "TriggerEventRow",
    "TriggerRow",
    "UsageRow",
    "UserRow",
    "UtcDateTime",
    "WorkerRow",
    "annotations",
]
