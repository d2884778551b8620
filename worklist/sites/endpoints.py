"""``/api/v1/sites/{code}/webhook``: a trust's webhook endpoint, for its manager and admins."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/sites", tags=["sites"])
