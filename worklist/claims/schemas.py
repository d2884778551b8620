"""Claim payloads, field names exactly as DESIGN lists them."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, Field

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
    reason: str | None = Field(
        default=None,
        description='Why an allocation rule refused it: "next_only" (routine work of this '
        'site comes from worklist/next only) or "cap" (the caller holds the site\'s cap)',
    )


class NextCase(BaseModel):
    """``POST /worklist/next``: the claim just taken and the study it is on."""

    claim: ClaimOut
    study: WorklistItem
    also_claimed: list[str] = Field(
        default_factory=list,
        description="UIDs of the patient's other unreported studies (any trust the caller "
        "reports for) claimed with this one; released with it",
    )
