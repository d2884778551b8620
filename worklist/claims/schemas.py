"""Claim payloads, field names exactly as DESIGN lists them."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel

from worklist.studies.schemas import WorklistItem


class ClaimOut(BaseModel):
    """A claim: who holds the study and until when the lease runs."""

    study_uid: str
    username: str
    claimed_at: AwareDatetime
    expires_at: AwareDatetime


class ClaimConflict(BaseModel):
    """409 body: why the study cannot be claimed, and by whom it is held when it is."""

    detail: str
    claimed_by: str | None = None


class NextCase(BaseModel):
    """``POST /worklist/next``: the claim just taken and the study it is on."""

    claim: ClaimOut
    study: WorklistItem
