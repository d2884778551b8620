"""Report payloads, field names exactly as DESIGN lists them."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field

from worklist.api.guard import MAX_DB_INT
from worklist.enums import ReportStatus

MAX_TEXT_LENGTH = 100_000


def _no_nul(text: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the database.
    if "\x00" in text:
        raise ValueError("text must not contain NUL characters")
    return text


ReportText = Annotated[str, Field(max_length=MAX_TEXT_LENGTH), AfterValidator(_no_nul)]


class ReportTextIn(BaseModel):
    """A draft's text (``PUT .../report``); may be empty while drafting."""

    text: ReportText


class AddendumIn(BaseModel):
    """Text added to a signed report."""

    text: ReportText


class FinaliseIn(BaseModel):
    """Sign the report as it stands at ``version`` (the version the signer has read)."""

    version: Annotated[int, Field(ge=1, le=MAX_DB_INT, strict=True)]


class AddendumOut(BaseModel):
    """One addendum of a signed report."""

    text: str
    author: str
    created_at: AwareDatetime


class ReportOut(BaseModel):
    """A study's report with its addenda; ``version`` is also the response's ETag."""

    status: ReportStatus
    text: str
    author: str
    version: int
    created_at: AwareDatetime
    updated_at: AwareDatetime
    finalised_at: AwareDatetime | None
    finalised_by: str | None
    addenda: list[AddendumOut]


class StaleVersionOut(BaseModel):
    """The body of a 412: the report changed since the caller read it."""

    detail: str
    version: int
