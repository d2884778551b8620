"""``/dicomweb``: QIDO-RS searches and WADO-RS retrievals."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])
