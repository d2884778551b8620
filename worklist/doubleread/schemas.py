"""Double-reading payloads, field names exactly as DESIGN lists them."""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

MAX_RULES = 100
MAX_READ_TEXT = 20_000

Score = Literal["1", "2a", "2b", "3a", "3b"]


class ReadKind(enum.StrEnum):
    """What a read is for (``double_reads.kind``)."""

    DOUBLE_READ = "double_read"
    PEER_REVIEW = "peer_review"
    ARBITRATION = "arbitration"


class ReadStatus(enum.StrEnum):
    """Where a read is (``double_reads.status``)."""

    OPEN = "open"
    CLAIMED = "claimed"
    SUBMITTED = "submitted"


class DoubleReadingRuleIn(BaseModel):
    """One rule of a site's ordered list; a field left null matches any study."""

    model_config = ConfigDict(extra="forbid")

    modality: str | None = Field(default=None, min_length=1, max_length=16)
    subspecialty: str | None = Field(default=None, min_length=1, max_length=32)
    share: float = Field(
        gt=0, le=1, description="1: every matching study; less: that random share (peer review)"
    )
    other_trust: bool = Field(
        default=False, description="The second reader's home site must not be the study's site"
    )


class DoubleReadingRuleOut(BaseModel):
    """One rule as stored."""

    modality: str | None
    subspecialty: str | None
    share: float
    other_trust: bool


class ParentRead(BaseModel):
    """The discordant read an arbitration decides on (shown to its arbiter)."""

    id: int
    kind: ReadKind
    reader: str | None
    score: Score | None
    text: str | None
    submitted_at: AwareDatetime | None


class FirstReport(BaseModel):
    """The signed report the read is a second read of (addenda not included)."""

    text: str
    author: str
    finalised_at: AwareDatetime | None


class DoubleReadOut(BaseModel):
    """A second (or arbitrating) read of a study.

    ``first_reader``, ``first_report`` and ``parent`` are shown to managers and admins, to
    the arbiter holding an arbitration, and to a second reader once they have submitted:
    until then the second reader is blinded to the first report, its author included.
    ``first_report`` and ``parent`` are given for one read (its GET, claim, next, submit),
    not in the list.
    """

    id: int
    study_uid: str
    site: str
    kind: ReadKind
    status: ReadStatus
    parent_id: int | None
    parent: ParentRead | None = None
    first_reader: str | None
    first_report: FirstReport | None = None
    other_trust: bool
    reader: str | None
    claimed_at: AwareDatetime | None
    score: Score | None
    text: str | None
    submitted_at: AwareDatetime | None
    created_at: AwareDatetime


class SubmitIn(BaseModel):
    """``POST /double-reads/{id}/submit``: the concordance score and the reader's text."""

    model_config = ConfigDict(extra="forbid")

    score: Score = Field(
        description="1 concordant; 2a/2b, 3a/3b discrepancies (b: likely clinically significant)"
    )
    text: str = Field(default="", max_length=MAX_READ_TEXT)


class ScoreCounts(BaseModel):
    """How many submitted reads had each score."""

    one: int = Field(alias="1")
    two_a: int = Field(alias="2a")
    two_b: int = Field(alias="2b")
    three_a: int = Field(alias="3a")
    three_b: int = Field(alias="3b")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class PeerReviewRow(BaseModel):
    """Second reads of one first reader's (or one site's) reports."""

    reads: int = Field(description="Second reads created (arbitrations not counted)")
    submitted: int
    pending: int = Field(description="Reads not yet submitted")
    scores: ScoreCounts
    discrepancy_rate: float | None = Field(
        description="Share of submitted reads scored other than 1 (null: none submitted)"
    )


class RadiologistRow(PeerReviewRow):
    """Per first reader."""

    username: str


class SiteRow(PeerReviewRow):
    """Per study site."""

    site: str


class PeerReviewStats(BaseModel):
    """``GET /stats/peer-review``."""

    radiologists: list[RadiologistRow]
    sites: list[SiteRow]
