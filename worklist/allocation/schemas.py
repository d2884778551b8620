"""A site's allocation settings, field names exactly as DESIGN lists them."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from worklist.enums import GeneralReader

# A cap beyond this is no cap at all; the bound keeps the column an honest integer.
MAX_CAP = 1000


class AllocationOut(BaseModel):
    """How ``worklist/next`` and direct claims treat the site's studies."""

    site: str = Field(description="The site's code")
    cap: int = Field(
        description="Studies a radiologist may hold at once from ``next`` or a direct claim "
        "when the study is of this site (stat and urgent studies exempt)"
    )
    next_only_routine: bool = Field(
        description="Routine studies are handed out by ``worklist/next`` only: a direct "
        'claim answers 409 with "reason": "next_only"'
    )
    general_reader: GeneralReader = Field(
        description="When ``next`` may hand a study to a reader without its subspecialty"
    )
    general_after_share: float = Field(
        description='With "after_share": the share of the time from arrival to the target '
        "that must have elapsed first"
    )


class AllocationPatch(BaseModel):
    """The settings to change; a field left out keeps its value."""

    model_config = ConfigDict(extra="forbid")

    cap: Annotated[int, Field(strict=True, ge=0, le=MAX_CAP)] | None = None
    next_only_routine: Annotated[bool, Field(strict=True)] | None = None
    general_reader: GeneralReader | None = None
    general_after_share: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
