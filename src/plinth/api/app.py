"""create_app(services): the FastAPI application over the services built at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from plinth import __version__
from plinth.api.auth import AuthMiddleware
from plinth.api.errors import install_error_handlers
from plinth.api.middleware import BodyLimitMiddleware, MetricsMiddleware, RequestIdMiddleware
from plinth.api.openapi import install_openapi
from plinth.api.routers import alerts as alerts_router
from plinth.api.routers import audit as audit_router
from plinth.api.routers import bias as bias_router
from plinth.api.routers import datasets as datasets_router
from plinth.api.routers import deployments as deployments_router
from plinth.api.routers import embeddings as embeddings_router
from plinth.api.routers import guardrails as guardrails_router
from plinth.api.routers import jobs as jobs_router
from plinth.api.routers import k8s as k8s_router
from plinth.api.routers import keys as keys_router
from plinth.api.routers import knowledge as knowledge_router
from plinth.api.routers import models, openai_v1, system
from plinth.api.routers import moderations as moderations_router
from plinth.api.routers import monitor as monitor_router
from plinth.api.routers import pipelines as pipelines_router
from plinth.api.routers import project as project_router
from plinth.api.routers import projects as projects_router
from plinth.api.routers import reports as reports_router
from plinth.api.routers import requests as requests_router
from plinth.api.routers import responses as responses_router
from plinth.api.routers import tracking as tracking_router
from plinth.api.routers import usage as usage_router
from plinth.console.app import install_console
from plinth.errors import PlinthError
from plinth.services import Services

log = logging.getLogger("plinth.api")


def create_app(services: Services) -> FastAPI:
    settings = services.settings

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None
        if settings.preload_default_model:
            task = asyncio.create_task(_preload(app, services))
        if services.alert_evaluator is not None:  # alert rules are evaluated by server processes only
            services.alert_evaluator.start()
        if services.drift_scheduler is not None:  # drift gauges and scheduled runs: server processes only (ADR 0091)
            services.drift_scheduler.start()
        if services.pipeline_runner is not None:  # pipeline runs and triggers: server processes only (ADR 0102)
            services.pipeline_runner.start()
        try:
            yield
        finally:
            if task is not None and not task.done():
                task.cancel()
            services.close()

    app = FastAPI(
        title="plinth",
        version=__version__,
        description="OpenAI-compatible inference (/v1) and the plinth management API (/api/v1).",
        lifespan=lifespan,
        docs_url=None,  # served below from local assets: the default page loads them from a CDN
        redoc_url=None,
    )
    _install_offline_docs(app)
    app.state.services = services
    app.state.preload = "disabled" if not settings.preload_default_model else "pending"
    install_error_handlers(app)
    app.include_router(system.router)
    app.include_router(openai_v1.router)
    app.include_router(models.router)
    app.include_router(embeddings_router.router)
    app.include_router(moderations_router.router)
    app.include_router(responses_router.router)
    app.include_router(knowledge_router.router)
    app.include_router(jobs_router.router)
    app.include_router(datasets_router.router)
    app.include_router(guardrails_router.router)
    app.include_router(tracking_router.router)
    app.include_router(deployments_router.router)
    app.include_router(keys_router.router)
    app.include_router(usage_router.router)
    app.include_router(alerts_router.router)
    app.include_router(reports_router.router)
    app.include_router(requests_router.router)
    app.include_router(bias_router.router)
    app.include_router(monitor_router.router)
    app.include_router(pipelines_router.router)
    app.include_router(audit_router.router)
    app.include_router(projects_router.router)
    app.include_router(k8s_router.router)
    app.include_router(project_router.router)
    install_console(app)  # the web console at /console (ADR 0110); not in the OpenAPI document
    install_openapi(app, settings)
    # Added last = outermost: metrics see every answer, including 413s from the body limit.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Outside the body limit: a caller without a valid key is refused before its body is read.
    app.add_middleware(AuthMiddleware, services=services)
    app.add_middleware(MetricsMiddleware, metrics=services.metrics)
    if settings.cors_allow_origins:
        # Outside auth: a browser's preflight carries no credentials and is answered here.
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Plinth-Project", "X-Request-Id", "X-CSRF-Token"],
            expose_headers=["X-Request-Id", "Retry-After", "WWW-Authenticate"],
            max_age=600,
        )
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer carries x-request-id, refusals too
    return app


def _install_offline_docs(app: FastAPI) -> None:
    """Interactive API docs at /docs with Swagger UI assets shipped in a Python package, so
    the page works on an air-gapped machine."""
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="plinth API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )


async def _preload(app: FastAPI, services: Services) -> None:
    name = services.settings.default_model
    app.state.preload = "loading"
    try:
        await services.models.get(name)
        app.state.preload = "loaded"
    except PlinthError as e:
        app.state.preload = f"failed: {e.message}"
        log.error("could not load the default model %s: %s", name, e.message)
