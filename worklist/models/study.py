"""Patients, studies, series and instances: the network index."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from worklist.enums import Priority, StudyStatus
from worklist.models.base import Base
from worklist.models.site import Site
from worklist.models.types import PriorityType, StudyStatusType

UID = String(64)


class Patient(Base):
    """A patient as known to one trust (local ID issued by that site)."""

    __tablename__ = "patients"
    __table_args__ = (
        UniqueConstraint("site_id", "local_id"),
        # Migration 0009: what C-FIND and QIDO-RS match on (worklist.matching.conditions).
        Index(
            "ix_patients_name_lower",
            text("lower(name)"),
            postgresql_ops={"lower(name)": "text_pattern_ops"},
        ),
        Index("ix_patients_local_id", "local_id", postgresql_ops={"local_id": "text_pattern_ops"}),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    local_id: Mapped[str] = mapped_column(Text)
    nhs_number: Mapped[str | None] = mapped_column(String(10), nullable=True, index=True)
    name: Mapped[str] = mapped_column(Text, server_default="")
    birth_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    sex: Mapped[str | None] = mapped_column(String(16), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )


class Study(Base):
    """One imaging study on the network worklist."""

    __tablename__ = "studies"
    __table_args__ = (
        Index("ix_studies_worklist_order", "status", "due_at", "priority", "received_at", "id"),
        Index(
            "ix_studies_site_worklist_order",
            "site_id",
            "status",
            "due_at",
            "priority",
            "received_at",
            "id",
        ),
        # Migration 0003: the backlog in worklist order (site_id, status: in-index filters).
        Index(
            "ix_studies_backlog_order",
            "due_at",
            "priority",
            "received_at",
            "id",
            "site_id",
            "status",
            postgresql_where=text("status IN ('ready', 'in_progress')"),
        ),
        Index(
            "ix_studies_receiving_quiet",
            "last_instance_at",
            postgresql_where=text("status = 'receiving'"),
        ),
        # Migration 0009: StudyDate ranges, and QIDO-RS's newest-first study list.
        Index("ix_studies_newest", text("study_datetime DESC NULLS LAST"), text("id DESC")),
        # Migration 0012: the network figures (worklist.stats) by examination and arrival
        # time; the backlog's cells and the 28-day breaches read the partial one alone.
        # Not partial: ANALYZE keeps statistics of a plain expression index's values, which
        # the planner needs to see how few studies a few weeks are.
        # With ``id``: the monthly extract reads a month in (examination, id) order.
        Index("ix_studies_examined_at", text("coalesce(study_datetime, received_at)"), "id"),
        Index(
            "ix_studies_unreported_examined_at",
            text("coalesce(study_datetime, received_at)"),
            "site_id",
            "priority",
            "due_at",
            postgresql_where=text("status IN ('ready', 'in_progress')"),
        ),
        Index("ix_studies_received_at", "received_at"),
        # Migration 0014: one site's backlog in worklist order (the page's site filter).
        Index(
            "ix_studies_site_backlog_order",
            "site_id",
            "due_at",
            "priority",
            "received_at",
            "id",
            postgresql_where=text("status IN ('ready', 'in_progress')"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_uid: Mapped[str] = mapped_column(UID, unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patients.id", ondelete="RESTRICT"), index=True
    )
    accession_number: Mapped[str | None] = mapped_column(Text, nullable=True, index=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    study_datetime: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    modalities: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    priority: Mapped[Priority] = mapped_column(PriorityType)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[StudyStatus] = mapped_column(StudyStatusType)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_instance_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    series_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    instance_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    flags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    # Migration 0007: the patient demographics the study's instances carried (the patient
    # row keeps its own; a difference flags the study demographic_mismatch).
    received_patient_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_patient_birth_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    received_patient_sex: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Migration 0010: the RIS order it matched (site and accession number), if any.
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # Migration 0011: Body Part Examined (0018,0015) of its first instance that had one; the
    # subspecialty its routing rule gave it (``subspecialty_rule`` the rule's position), or
    # a manager set in triage (rule null).
    body_part: Mapped[str | None] = mapped_column(Text, nullable=True)
    subspecialty: Mapped[str | None] = mapped_column(
        ForeignKey("subspecialties.code", ondelete="RESTRICT"), nullable=True
    )
    subspecialty_rule: Mapped[int | None] = mapped_column(Integer, nullable=True)

    site: Mapped[Site] = relationship(lazy="raise")
    patient: Mapped[Patient] = relationship(lazy="raise")
    series: Mapped[list[Series]] = relationship(back_populates="study", lazy="raise")


class Series(Base):
    """A series within a study."""

    __tablename__ = "series"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    series_uid: Mapped[str] = mapped_column(UID, unique=True)
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    instance_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))

    study: Mapped[Study] = relationship(back_populates="series", lazy="raise")


class Instance(Base):
    """A stored SOP instance: where its file is and what it is."""

    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    sop_class_uid: Mapped[str] = mapped_column(UID)
    transfer_syntax_uid: Mapped[str] = mapped_column(UID)
    instance_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    path: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
