"""Second opinion payloads, field names exactly as DESIGN lists them.

No payload here carries patient identifiers: a request is shown to radiologists at other
trusts before they hold any right to its study, so it says only what they need to decide
whether to take it (the study's site, modalities and description). The patient is read
through the study, once the request grants it.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from worklist.opinions.repository import OpinionRow

MAX_QUESTION_LENGTH = 4_000
MAX_ANSWER_LENGTH = 10_000
MAX_USERNAME_LENGTH = 64
MAX_CODE_LENGTH = 32


class OpinionStatus(enum.StrEnum):
    """Where a second opinion is (``second_opinions.status``)."""

    OPEN = "open"
    CLAIMED = "claimed"
    ANSWERED = "answered"
    WITHDRAWN = "withdrawn"


class Urgency(enum.StrEnum):
    """How soon the requester needs the answer; urgent requests are handed out first."""

    ROUTINE = "routine"
    URGENT = "urgent"


class Agreement(enum.StrEnum):
    """What the second reader thinks of the study's reading."""

    AGREE = "agree"
    MINOR_DISCREPANCY = "minor_discrepancy"
    MAJOR_DISCREPANCY = "major_discrepancy"


ENDED = (OpinionStatus.ANSWERED, OpinionStatus.WITHDRAWN)


def _no_nul(text: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the database.
    if "\x00" in text:
        raise ValueError("text must not contain NUL characters")
    return text


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text


Question = Annotated[
    str,
    Field(min_length=1, max_length=MAX_QUESTION_LENGTH),
    AfterValidator(_no_nul),
    AfterValidator(_not_blank),
]
AnswerText = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ANSWER_LENGTH),
    AfterValidator(_no_nul),
    AfterValidator(_not_blank),
]


class SecondOpinionIn(BaseModel):
    """``POST /studies/{study_uid}/second-opinions``: the question and who should answer."""

    model_config = ConfigDict(extra="forbid")

    question: Question
    subspecialty: str | None = Field(
        default=None,
        max_length=MAX_CODE_LENGTH,
        description="A code of the subspecialties table: only radiologists holding it may "
        "take the request (neither this nor ``radiologist``: any radiologist may)",
    )
    radiologist: str | None = Field(
        default=None,
        max_length=MAX_USERNAME_LENGTH,
        description="The username of an active radiologist: only they may take it",
    )
    urgency: Urgency


class AnswerIn(BaseModel):
    """``POST /second-opinions/{id}/answer``: the holder's agreement and text."""

    model_config = ConfigDict(extra="forbid")

    agreement: Agreement
    text: AnswerText


class AnswerOut(BaseModel):
    """The answer to a second opinion."""

    agreement: Agreement
    text: str
    answered_at: AwareDatetime


class SiteOut(BaseModel):
    """The trust a request's study belongs to."""

    code: str
    name: str


class OpinionStudy(BaseModel):
    """What a request shows of its study: enough to decide, nothing that names the patient."""

    site: SiteOut
    modalities: list[str]
    description: str | None


class SecondOpinionOut(BaseModel):
    """A second opinion request, its holder and its answer."""

    id: int
    study_uid: str
    status: OpinionStatus
    question: str
    subspecialty: str | None
    radiologist: str | None = Field(description="The radiologist it is addressed to, if named")
    urgency: Urgency
    requested_by: str
    claimed_by: str | None
    answer: AnswerOut | None
    created_at: AwareDatetime
    study: OpinionStudy

    @classmethod
    def from_row(cls, row: OpinionRow) -> SecondOpinionOut:
        """Build from a repository row (no patient identifiers, whoever reads it)."""
        opinion = row.opinion
        answer = None
        if opinion.agreement is not None and opinion.answered_at is not None:
            answer = AnswerOut(
                agreement=Agreement(opinion.agreement),
                text=opinion.answer_text or "",
                answered_at=opinion.answered_at,
            )
        return cls(
            id=opinion.id,
            study_uid=row.study_uid,
            status=OpinionStatus(opinion.status),
            question=opinion.question,
            subspecialty=opinion.subspecialty,
            radiologist=row.radiologist,
            urgency=Urgency(opinion.urgency),
            requested_by=row.requested_by,
            claimed_by=row.claimed_by,
            answer=answer,
            created_at=opinion.created_at,
            study=OpinionStudy(
                site=SiteOut(code=row.site_code, name=row.site_name),
                modalities=list(row.modalities),
                description=row.description,
            ),
        )


class SecondOpinionList(BaseModel):
    """``GET /second-opinions``: urgent first, then oldest; ``next_cursor`` for more."""

    items: list[SecondOpinionOut]
    next_cursor: str | None


class SecondOpinionSummary(BaseModel):
    """A second opinion as a study's detail lists it (the full request: its ``id``)."""

    id: int
    status: OpinionStatus
    urgency: Urgency
    subspecialty: str | None
    radiologist: str | None
    requested_by: str
    claimed_by: str | None
    agreement: Agreement | None
    created_at: AwareDatetime
    answered_at: AwareDatetime | None

    @classmethod
    def from_row(cls, row: OpinionRow) -> SecondOpinionSummary:
        """Build from a repository row."""
        opinion = row.opinion
        return cls(
            id=opinion.id,
            status=OpinionStatus(opinion.status),
            urgency=Urgency(opinion.urgency),
            subspecialty=opinion.subspecialty,
            radiologist=row.radiologist,
            requested_by=row.requested_by,
            claimed_by=row.claimed_by,
            agreement=Agreement(opinion.agreement) if opinion.agreement else None,
            created_at=opinion.created_at,
            answered_at=opinion.answered_at,
        )
