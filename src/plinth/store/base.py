"""The metadata store interface.

Services talk to this interface only; it returns domain objects, never ORM rows. The
implementation is chosen by the URL scheme of ``PLINTH_DATABASE_URL`` (see
:func:`plinth.store.open_store`).

The interface is split by area, one module each (``base_catalog.py``: models and adapters;
later areas add ``base_<area>.py``); :class:`MetadataStore` combines them with the
lifecycle. A new area adds its interface module, its tables (``schema/<area>.py``), an
Alembic migration and its SQL mixin (``sql/<area>.py``).
"""

from __future__ import annotations

import abc

from plinth.store.base_alerts import AlertsStore
from plinth.store.base_auth import AuthStore
from plinth.store.base_bias import BiasStore
from plinth.store.base_catalog import CatalogStore
from plinth.store.base_datasets import DatasetsStore
from plinth.store.base_deployments import DeploymentsStore
from plinth.store.base_drift import DriftStore
from plinth.store.base_guardrails import GuardrailsStore
from plinth.store.base_jobs import JobsStore
from plinth.store.base_knowledge import KnowledgeStore
from plinth.store.base_pipelines import PipelinesStore
from plinth.store.base_projects import ProjectsStore
from plinth.store.base_requests import RequestLogStore
from plinth.store.base_responses import ResponsesStore
from plinth.store.base_serving import ServingStore
from plinth.store.base_tracking import RegistryStore, TrackingStore


class MetadataStore(
    CatalogStore,
    ServingStore,
    KnowledgeStore,
    JobsStore,
    DatasetsStore,
    GuardrailsStore,
    TrackingStore,
    RegistryStore,
    DeploymentsStore,
    AuthStore,
    ProjectsStore,
    RequestLogStore,
    DriftStore,
    AlertsStore,
    BiasStore,
    PipelinesStore,
    ResponsesStore,
    abc.ABC,
):
    """Durable metadata of every area, behind one connection pool and one migration chain."""

    url: str

    # -- lifecycle -------------------------------------------------------------------------
    @abc.abstractmethod
    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""

    @abc.abstractmethod
    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at, or None for an empty database."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise PlinthError(STORE_UNAVAILABLE) if the database cannot be reached."""

    @abc.abstractmethod
    def close(self) -> None: ...
