"""Management API of versioned datasets under ``/api/v1/datasets`` (canonical error shape)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["datasets"])
