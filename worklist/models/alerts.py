"""Critical-result alerts raised on a study, and the acknowledgement deadlines they missed."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Enum, ForeignKey, Identity, Index, Integer, Text, Uuid
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column

from worklist.enums import AlertCategory, AlertStatus
from worklist.models.base import Base

AlertCategoryType = Enum(
    AlertCategory,
    name="alert_category",
    values_callable=lambda e: [m.value for m in e],
    validate_strings=True,
)
AlertStatusType = Enum(
    AlertStatus,
    name="alert_status",
    values_callable=lambda e: [m.value for m in e],
    validate_strings=True,
)


class Alert(Base):
    """A finding the originating trust must be told about and must acknowledge.

    ``site_id`` is the originating trust (the study's site), kept on the row because
    every read filters by it. ``ack_due_at`` is the current deadline: raised_at plus
    the category's deadline, moved on at each escalation. Alerts are never deleted
    and their finding never changes (trigger ``alerts_guard``).
    """

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_site_id_raised_at", "site_id", "raised_at"),
        Index("ix_alerts_raised_by_id_raised_at", "raised_by_id", "raised_at"),
        Index(
            "ix_alerts_open_ack_due_at",
            "ack_due_at",
            postgresql_where=sql_text("status = 'open'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        Uuid, primary_key=True, server_default=sql_text("gen_random_uuid()")
    )
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="RESTRICT"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    category: Mapped[AlertCategory] = mapped_column(AlertCategoryType)
    finding: Mapped[str] = mapped_column(Text)
    recipient: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Migration 0010: the order's referrer when the alert was raised (who should be paged).
    referrer_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    referrer_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    referrer_organisation: Mapped[str | None] = mapped_column(Text, nullable=True)
    raised_by_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    raised_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=sql_text("now()")
    )
    ack_due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[AlertStatus] = mapped_column(AlertStatusType, server_default=sql_text("'open'"))
    escalation_level: Mapped[int] = mapped_column(Integer, server_default=sql_text("0"))
    acknowledged_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    acknowledged_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), nullable=True
    )
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    acknowledgement_note: Mapped[str | None] = mapped_column(Text, nullable=True)


class AlertBreach(Base):
    """A missed acknowledgement deadline (append-only): what escalation level it led to."""

    __tablename__ = "alert_breaches"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("alerts.id", ondelete="RESTRICT"), index=True
    )
    escalation_level: Mapped[int] = mapped_column(Integer)
    deadline_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=sql_text("now()")
    )
