"""Orders from the trusts' RIS (HL7 v2 ORM/OMI or FHIR ServiceRequest) and the HL7
senders and messages behind them (migration 0010)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from worklist.enums import Priority
from worklist.models.base import Base
from worklist.models.types import PriorityType


class Order(Base):
    """A request for imaging from a trust's RIS; one per site and accession number.

    A study matches it by the same site and accession number, whichever arrives first
    (``studies.order_id``; ``index_instances_v4`` matches new studies)."""

    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("site_id", "accession_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    accession_number: Mapped[str] = mapped_column(Text)
    placer_order_number: Mapped[str | None] = mapped_column(Text, nullable=True)
    filler_order_number: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), server_default=text("'active'"))
    # The last HL7 order control (NW, XO, CA, OC, SC) or FHIR status applied, and the
    # RIS's own order status (ORC-5) when it sent one.
    last_control: Mapped[str | None] = mapped_column(String(16), nullable=True)
    ris_status: Mapped[str | None] = mapped_column(Text, nullable=True)
    source: Mapped[str] = mapped_column(String(8))
    # PID-3 as sent: [{"id", "authority", "type"}]; the local id and NHS number pulled out.
    patient_identifiers: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    patient_local_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    nhs_number: Mapped[str | None] = mapped_column(String(10), nullable=True)
    patient_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    patient_birth_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    procedure_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    procedure_coding_system: Mapped[str | None] = mapped_column(Text, nullable=True)
    procedure_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Ours (mapped by WORKLIST_HL7_PRIORITY_MAP or FHIR priority), and as the RIS sent it.
    priority: Mapped[Priority | None] = mapped_column(PriorityType, nullable=True)
    ris_priority: Mapped[str | None] = mapped_column(Text, nullable=True)
    referrer_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    referrer_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    referrer_organisation: Mapped[str | None] = mapped_column(Text, nullable=True)
    referrer_organisation_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    patient_source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    indication: Mapped[str | None] = mapped_column(Text, nullable=True)
    requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )


class Hl7Sender(Base):
    """A RIS's Sending Facility (MSH-4), registered to one site (``--hl7-facility``)."""

    __tablename__ = "hl7_senders"

    facility: Mapped[str] = mapped_column(Text, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)


class Hl7Message(Base):
    """A message applied from a facility (MSH-10 control id): a resend is acknowledged
    again with the stored acknowledgement, never applied twice."""

    __tablename__ = "hl7_messages"

    facility: Mapped[str] = mapped_column(Text, primary_key=True)
    control_id: Mapped[str] = mapped_column(Text, primary_key=True)
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="SET NULL"), nullable=True
    )
    ack_code: Mapped[str] = mapped_column(String(2))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
