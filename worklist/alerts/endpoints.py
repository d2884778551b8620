"""``/api/v1/alerts`` and ``/api/v1/studies/{study_uid}/alerts``: critical-result alerts."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["alerts"])
