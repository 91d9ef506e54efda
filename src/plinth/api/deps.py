"""Request-scoped access to the services built at start-up."""

from __future__ import annotations

from fastapi import Request

from plinth.services import Services


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services
