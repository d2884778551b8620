"""The pooled reporting workforce (migration 0011): the subspecialty vocabulary, routing
rules, second opinions, double reading, and the study grants they give."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column

from worklist.models.base import Base, CreatedAtMixin

CODE = String(32)


class Subspecialty(CreatedAtMixin, Base):
    """A code of the network's subspecialty vocabulary (admins add; never deleted)."""

    __tablename__ = "subspecialties"

    code: Mapped[str] = mapped_column(CODE, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, server_default=sql_text("true"))


class RoutingRule(Base):
    """One rule of the ordered list that gives a study its subspecialty (first match wins).

    A field left null matches anything; ``procedure_pattern`` is a case-insensitive
    regular expression on the procedure code and text; ``max_age_years`` matches a
    patient younger than it at the study date.
    """

    __tablename__ = "routing_rules"

    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    subspecialty: Mapped[str] = mapped_column(
        ForeignKey("subspecialties.code", ondelete="RESTRICT")
    )
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    body_part: Mapped[str | None] = mapped_column(Text, nullable=True)
    procedure_pattern: Mapped[str | None] = mapped_column(Text, nullable=True)
    max_age_years: Mapped[int | None] = mapped_column(Integer, nullable=True)


class StudyGrant(Base):
    """Access to one study a radiologist holds because of a request that named them
    (a second opinion or a double read), for as long as that request runs."""

    __tablename__ = "study_grants"
    __table_args__ = (
        UniqueConstraint("user_id", "study_id", "reason", "reason_id"),
        Index("ix_study_grants_reason", "reason", "reason_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    # "second_opinion" or "double_read", and that request's id.
    reason: Mapped[str] = mapped_column(String(16))
    reason_id: Mapped[int] = mapped_column(Integer)
    granted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=sql_text("now()")
    )


class SecondOpinion(Base):
    """A question about a study for a subspecialty or a named radiologist."""

    __tablename__ = "second_opinions"
    __table_args__ = (
        Index(
            "ix_second_opinions_open",
            "urgency",
            "created_at",
            postgresql_where=sql_text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="RESTRICT"), index=True)
    question: Mapped[str] = mapped_column(Text)
    subspecialty: Mapped[str | None] = mapped_column(
        ForeignKey("subspecialties.code", ondelete="RESTRICT"), nullable=True
    )
    radiologist_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), nullable=True
    )
    # "routine" or "urgent"; status "open", "claimed", "answered" or "withdrawn".
    urgency: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), server_default=sql_text("'open'"))
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    claimed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), nullable=True
    )
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # "agree", "minor_discrepancy" or "major_discrepancy", and the answer's text.
    agreement: Mapped[str | None] = mapped_column(String(32), nullable=True)
    answer_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=sql_text("now()")
    )
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DoubleReadingRule(Base):
    """A site's rule for a second read after the first final report: every matching
    study (``share`` 1.0) or a random share of them (peer review)."""

    __tablename__ = "double_reading_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    subspecialty: Mapped[str | None] = mapped_column(
        ForeignKey("subspecialties.code", ondelete="RESTRICT"), nullable=True
    )
    share: Mapped[float] = mapped_column(Float)
    other_trust: Mapped[bool] = mapped_column(Boolean, server_default=sql_text("false"))


class DoubleRead(Base):
    """A blinded second read of a study (``double_read`` or ``peer_review``), or the third
    read that arbitrates a discordance (``arbitration``, ``parent_id`` the discordant read)."""

    __tablename__ = "double_reads"
    __table_args__ = (
        Index("ix_double_reads_open", "created_at", postgresql_where=sql_text("status = 'open'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="RESTRICT"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    # "open", "claimed" or "submitted".
    status: Mapped[str] = mapped_column(String(16), server_default=sql_text("'open'"))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("double_reads.id", ondelete="RESTRICT"), nullable=True
    )
    # The report's author; the read must go to someone else (and, with other_trust, to a
    # radiologist whose home site is not the study's).
    first_reader_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    other_trust: Mapped[bool] = mapped_column(Boolean, server_default=sql_text("false"))
    reader_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # "1", "2a", "2b", "3a" or "3b", and the reader's text.
    score: Mapped[str | None] = mapped_column(String(4), nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=sql_text("now()")
    )
