"""Alert payloads: DESIGN's fields exactly, plus what a receiving trust needs to route one."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from worklist.enums import (
    AlertCategory,
    AlertStatus,
    DeliveryChannel,
    DeliveryStatus,
    PatientSource,
)
from worklist.models import Alert, Order
from worklist.orders.schemas import ReferrerOut
from worklist.outbox.sender import shown_error
from worklist.studies.schemas import SiteRef

if TYPE_CHECKING:
    from worklist.alerts.repository import AlertView, DeliveryRow

MAX_FINDING_LENGTH = 10_000
MAX_RECIPIENT_LENGTH = 200
MAX_NAME_LENGTH = 200
MAX_NOTE_LENGTH = 2_000


def _no_nul(text: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the database.
    if "\x00" in text:
        raise ValueError("text must not contain NUL characters")
    return text


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text


Finding = Annotated[
    str,
    Field(min_length=1, max_length=MAX_FINDING_LENGTH),
    AfterValidator(_no_nul),
    AfterValidator(_not_blank),
]
Recipient = Annotated[str, Field(max_length=MAX_RECIPIENT_LENGTH), AfterValidator(_no_nul)]
ClinicianName = Annotated[
    str,
    Field(min_length=1, max_length=MAX_NAME_LENGTH),
    AfterValidator(_no_nul),
    AfterValidator(_not_blank),
]
Note = Annotated[str, Field(max_length=MAX_NOTE_LENGTH), AfterValidator(_no_nul)]


class AlertIn(BaseModel):
    """``POST /studies/{study_uid}/alerts``: what the radiologist found and who should hear."""

    model_config = ConfigDict(extra="forbid")

    category: AlertCategory
    finding: Finding
    recipient: Recipient | None = Field(
        default=None, description="Who at the originating trust should be told (free text)"
    )


class AcknowledgeIn(BaseModel):
    """``POST /alerts/{id}/acknowledge``: the clinician at the trust who took the alert."""

    model_config = ConfigDict(extra="forbid")

    acknowledged_by: ClinicianName
    note: Note | None = None


class DeliveryDisplay(enum.StrEnum):
    """A delivery's state as shown: stored status, refined by attempts and the endpoint."""

    PENDING = "pending"  # not tried yet
    RETRYING = "retrying"  # tried, not yet accepted
    HELD = "held"  # the site's endpoint answered 410: waits until re-enabled
    DELIVERED = "delivered"


class DeliveryOut(BaseModel):
    """One delivery of one of the alert's messages over one channel."""

    channel: DeliveryChannel
    status: DeliveryDisplay
    attempts: int
    last_attempt_at: AwareDatetime | None
    event: str = Field(description="The message type: alert.raised, alert.escalated, ...")
    webhook_id: str = Field(description="The Standard Webhooks webhook-id, same on every retry")
    last_status_code: int | None
    last_error: str | None


class AlertPatient(BaseModel):
    """The patient, as the originating trust identifies them."""

    name: str
    nhs_number: str | None
    local_id: str


class AlertOrder(BaseModel):
    """The clinical context of the order the study matched, as it stands now."""

    placer_order_number: str | None
    filler_order_number: str | None
    procedure_code: str | None
    procedure_name: str | None
    indication: str | None
    patient_source: PatientSource | None
    requested_at: AwareDatetime | None


class AlertOut(BaseModel):
    """A critical-result alert and where its notifications are."""

    id: str
    study_uid: str
    site: SiteRef
    category: AlertCategory
    finding: str
    recipient: str | None
    raised_by: str
    raised_at: AwareDatetime
    ack_due_at: AwareDatetime
    status: AlertStatus
    escalation_level: int
    acknowledged_by: str | None
    acknowledged_at: AwareDatetime | None
    # Extensions: so the receiving trust can route and file it.
    accession_number: str | None
    patient: AlertPatient
    acknowledgement_note: str | None
    referrer: ReferrerOut | None = Field(
        description="The order's referrer when the alert was raised; null without an order"
    )
    order: AlertOrder | None = Field(
        description="The clinical context of the study's order; null without an order"
    )
    deliveries: list[DeliveryOut]


class AlertPage(BaseModel):
    """A page of alerts, newest first; pass ``next_cursor`` back as ``cursor``."""

    items: list[AlertOut]
    next_cursor: str | None


def _display(row: DeliveryRow, view: AlertView) -> DeliveryDisplay:
    delivery = row.delivery
    if delivery.status is DeliveryStatus.DELIVERED:
        return DeliveryDisplay.DELIVERED
    if delivery.channel is DeliveryChannel.WEBHOOK and view.site.webhook_disabled_at is not None:
        return DeliveryDisplay.HELD
    return DeliveryDisplay.RETRYING if delivery.attempts else DeliveryDisplay.PENDING


def alert_fields(view: AlertView) -> dict[str, Any]:
    """The alert's fields except its deliveries (also the data of its outbox messages)."""
    alert = view.alert
    return {
        "id": str(alert.id),
        "study_uid": view.study_uid,
        "site": SiteRef.from_site(view.site),
        "category": alert.category,
        "finding": alert.finding,
        "recipient": alert.recipient,
        "raised_by": view.raised_by,
        "raised_at": alert.raised_at,
        "ack_due_at": alert.ack_due_at,
        "status": alert.status,
        "escalation_level": alert.escalation_level,
        "acknowledged_by": alert.acknowledged_by,
        "acknowledged_at": alert.acknowledged_at,
        "accession_number": view.accession_number,
        "patient": AlertPatient(
            name=view.patient_name, nhs_number=view.nhs_number, local_id=view.local_id
        ),
        "acknowledgement_note": alert.acknowledgement_note,
        "referrer": alert_referrer(alert),
        "order": alert_order(view.order),
    }


def alert_referrer(alert: Alert) -> ReferrerOut | None:
    """The referrer the alert keeps, or None when its study had no order naming one."""
    if not (alert.referrer_name or alert.referrer_code or alert.referrer_organisation):
        return None
    return ReferrerOut(
        name=alert.referrer_name,
        code=alert.referrer_code,
        organisation=alert.referrer_organisation,
    )


def alert_order(order: Order | None) -> AlertOrder | None:
    """The order's clinical context, or None without an order."""
    if order is None:
        return None
    return AlertOrder(
        placer_order_number=order.placer_order_number,
        filler_order_number=order.filler_order_number,
        procedure_code=order.procedure_code,
        procedure_name=order.procedure_name,
        indication=order.indication,
        patient_source=PatientSource(order.patient_source) if order.patient_source else None,
        requested_at=order.requested_at,
    )


def alert_out(view: AlertView, deliveries: Sequence[DeliveryRow]) -> AlertOut:
    """The alert's JSON with its deliveries."""
    return AlertOut(
        **alert_fields(view),
        deliveries=[
            DeliveryOut(
                channel=row.delivery.channel,
                status=_display(row, view),
                attempts=row.delivery.attempts,
                last_attempt_at=row.delivery.last_attempt_at,
                event=row.event,
                webhook_id=row.webhook_id,
                last_status_code=row.delivery.last_status_code,
                last_error=shown_error(row.delivery.last_status_code, row.delivery.last_error),
            )
            for row in deliveries
        ],
    )


def alert_message_data(view: AlertView) -> dict[str, Any]:
    """The alert as its outbox messages carry it: the JSON of the API, without deliveries."""
    return alert_out(view, []).model_dump(mode="json", exclude={"deliveries"})
