"""The transactional outbox: messages to an originating trust, their deliveries and attempts.

A message is written in the same transaction as the change it announces (an alert
raised, escalated or acknowledged; a report signed or amended). Each message has one
delivery per channel: ``webhook`` (the worker POSTs it) and, for alerts, ``sse`` (the
alert stream marks it delivered when a client of the trust received it). Messages and
attempts are append-only; a delivery row carries the state the worker leases and updates.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from worklist.enums import DeliveryChannel, DeliveryStatus
from worklist.models.base import Base

DeliveryChannelType = Enum(
    DeliveryChannel,
    name="delivery_channel",
    values_callable=lambda e: [m.value for m in e],
    validate_strings=True,
)
DeliveryStatusType = Enum(
    DeliveryStatus,
    name="delivery_status",
    values_callable=lambda e: [m.value for m in e],
    validate_strings=True,
)


class OutboxMessage(Base):
    """One event for a trust. ``id`` orders a trust's messages (it is the SSE event id);
    ``webhook_id`` is the Standard Webhooks ``webhook-id``, the same on every retry;
    ``body`` is the JSON payload exactly as it is signed and sent."""

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_site_id_id", "site_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(64), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    type: Mapped[str] = mapped_column(String(64))
    study_id: Mapped[int | None] = mapped_column(
        ForeignKey("studies.id", ondelete="RESTRICT"), nullable=True
    )
    alert_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("alerts.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=sql_text("now()")
    )


class Delivery(Base):
    """The delivery of one message over one channel.

    A worker takes a pending webhook delivery by setting ``lease_token`` and
    ``lease_expires_at`` (``FOR UPDATE SKIP LOCKED``); it records the outcome only while
    its lease token is still the row's, so a worker that died or stalled past its lease
    is overtaken by another without both writing. ``site_id`` repeats the message's so
    the worker's and the metrics' queries need no join.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("message_id", "channel"),
        Index(
            "ix_deliveries_due",
            "next_attempt_at",
            "id",
            postgresql_where=sql_text("status = 'pending' AND channel = 'webhook'"),
        ),
        # Migration 0010: ORU^R01 deliveries to the trusts' RIS.
        Index(
            "ix_deliveries_hl7_due",
            "next_attempt_at",
            "id",
            postgresql_where=sql_text("status = 'pending' AND channel = 'hl7'"),
        ),
        # Migration 0010: what a RIS refused for good (site status, /metrics).
        Index(
            "ix_deliveries_failed",
            "site_id",
            "id",
            postgresql_where=sql_text("status = 'failed'"),
        ),
        Index(
            "ix_deliveries_pending_site_id",
            "site_id",
            "created_at",
            postgresql_where=sql_text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox_messages.id", ondelete="RESTRICT"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    channel: Mapped[DeliveryChannel] = mapped_column(DeliveryChannelType)
    status: Mapped[DeliveryStatus] = mapped_column(
        DeliveryStatusType, server_default=sql_text("'pending'")
    )
    attempts: Mapped[int] = mapped_column(Integer, server_default=sql_text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=sql_text("now()")
    )
    lease_token: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=sql_text("now()")
    )

    message: Mapped[OutboxMessage] = relationship(lazy="raise")


class DeliveryAttempt(Base):
    """One try at a webhook delivery (append-only): what was sent where and what came back."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="RESTRICT"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # delivered | failed | gone | timeout | error
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AlertStreamEntry(Base):
    """An alert message's position in the alert stream, assigned at commit time.

    A deferred constraint trigger on ``outbox_messages`` (migration 0006) adds the row
    while the inserting transaction commits, under an advisory lock held only for the
    rest of that commit: positions follow commit order, so a reader of ``id > last``
    never skips an event that commits later with a smaller id. ``id`` is the SSE event id.
    """

    __tablename__ = "alert_stream"
    __table_args__ = (Index("ix_alert_stream_site_id_id", "site_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("outbox_messages.id", ondelete="RESTRICT"), unique=True
    )
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
