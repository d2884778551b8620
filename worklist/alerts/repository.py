"""SQL for alerts: raising, reading, acknowledging and escalating them, and their deliveries.

Lock order, everywhere: the study row or the alert row first (``FOR NO KEY UPDATE``, so
rows that merely reference them are not blocked). Alert messages get their stream
positions at commit time (``AlertStreamEntry``, migration 0006), so no lock is taken here.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.enums import AlertCategory, AlertStatus, DeliveryChannel, DeliveryStatus
from worklist.models import (
    Alert,
    AlertBreach,
    AlertStreamEntry,
    Claim,
    Delivery,
    Order,
    OutboxMessage,
    Patient,
    Report,
    Site,
    Study,
    User,
)
from worklist.orders.content import Referrer

# Advisory lock (two-key form: class, object) that every transaction adding an alert
# message holds from the message's insert to its commit. Alert messages therefore commit
# in id order, so a stream that has read up to id N can never later find an id below N
# appear: the cursor and Last-Event-ID replay stay exact without gap tracking.

# DML ... RETURNING Alert must refresh an instance the session may already hold.
_REFRESH: dict[str, Any] = {"synchronize_session": False, "populate_existing": True}


_ViewSelect = Select[Alert, str, str | None, Site, str, str | None, str, str, Order | None]


@dataclass(frozen=True)
class AlertView:
    """An alert with what its JSON shows: the study, the site, the patient, the raiser, and
    the order the study matched (its clinical context), if any."""

    alert: Alert
    study_uid: str
    accession_number: str | None
    site: Site
    patient_name: str
    nhs_number: str | None
    local_id: str
    raised_by: str
    order: Order | None = None


@dataclass(frozen=True)
class DeliveryRow:
    """A delivery of one of an alert's messages, with the message's type and webhook id."""

    delivery: Delivery
    event: str
    webhook_id: str


@dataclass(frozen=True)
class AlertKey:
    """An alert's position in the newest-first order: (raised_at, id)."""

    raised_at: datetime
    id: uuid.UUID


@dataclass(frozen=True)
class AlertFilters:
    """What ``GET /alerts`` narrows to."""

    status: AlertStatus | None = None
    category: AlertCategory | None = None
    study_uid: str | None = None


@dataclass(frozen=True)
class StreamMessage:
    """An alert message as the alert stream sends it: ``id`` is its stream position."""

    id: int
    message_id: int
    site_id: int
    type: str
    body: str
    created_at: datetime


def _view_select() -> _ViewSelect:
    return (
        select(
            Alert,
            Study.study_uid,
            Study.accession_number,
            Site,
            Patient.name,
            Patient.nhs_number,
            Patient.local_id,
            User.username,
            Order,
        )
        .join(Study, Study.id == Alert.study_id)
        .join(Site, Site.id == Alert.site_id)
        .join(Patient, Patient.id == Study.patient_id)
        .join(User, User.id == Alert.raised_by_id)
        .outerjoin(Order, Order.id == Study.order_id)
        .execution_options(populate_existing=True)
    )


def _view(row: Any) -> AlertView:
    return AlertView(*row)


async def study_writers(session: AsyncSession, *, study_id: int) -> tuple[int | None, int | None]:
    """The user ids of the study's claim holder and report author (None where there is none).

    A claim whose lease lapsed but that nobody took over still counts, as for report saves.
    """
    holder = select(Claim.user_id).where(Claim.study_id == study_id).scalar_subquery()
    author = select(Report.author_id).where(Report.study_id == study_id).scalar_subquery()
    row = (await session.execute(select(holder, author))).one()
    return row[0], row[1]


async def order_of(session: AsyncSession, order_id: int | None) -> Order | None:
    """The order a study matched (None when it matched none)."""
    if order_id is None:
        return None
    return await session.get(Order, order_id)


async def insert_alert(
    session: AsyncSession,
    *,
    study_id: int,
    site_id: int,
    category: AlertCategory,
    finding: str,
    recipient: str | None,
    referrer: Referrer,
    raised_by_id: int,
    deadline: timedelta,
) -> Alert:
    """Insert an open alert due for acknowledgement ``deadline`` after it was raised;
    ``referrer`` is who asked for the study (from its order), kept as it was then."""
    stmt = (
        insert(Alert)
        .values(
            study_id=study_id,
            site_id=site_id,
            category=category,
            finding=finding,
            recipient=recipient,
            referrer_name=referrer.name,
            referrer_code=referrer.code,
            referrer_organisation=referrer.organisation,
            raised_by_id=raised_by_id,
            ack_due_at=func.now() + deadline,
        )
        .returning(Alert)
    )
    return (await session.scalars(stmt, execution_options=_REFRESH)).one()


async def get_view(
    session: AsyncSession, *, alert_id: uuid.UUID, visible: ColumnElement[bool], lock: bool = False
) -> AlertView | None:
    """The alert if ``visible`` admits it; ``lock`` serialises acknowledgements."""
    stmt = _view_select().where(Alert.id == alert_id, visible)
    if lock:
        stmt = stmt.with_for_update(of=Alert, key_share=True)
    row = (await session.execute(stmt)).one_or_none()
    return _view(row) if row else None


async def list_views(
    session: AsyncSession,
    *,
    visible: ColumnElement[bool],
    filters: AlertFilters,
    after: AlertKey | None,
    limit: int,
) -> list[AlertView]:
    """Visible alerts matching ``filters``, newest first, after ``after``."""
    stmt = _view_select().where(visible)
    if filters.status is not None:
        stmt = stmt.where(Alert.status == filters.status)
    if filters.category is not None:
        stmt = stmt.where(Alert.category == filters.category)
    if filters.study_uid is not None:
        stmt = stmt.where(Study.study_uid == filters.study_uid)
    if after is not None:
        stmt = stmt.where(
            Alert.raised_at <= after.raised_at,
            or_(Alert.raised_at < after.raised_at, Alert.id < after.id),
        )
    stmt = stmt.order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(limit)
    return [_view(row) for row in await session.execute(stmt)]


def _deliveries_select(
    alert_ids: Collection[uuid.UUID],
) -> Select[Delivery, uuid.UUID | None, str, str]:
    return (
        select(Delivery, OutboxMessage.alert_id, OutboxMessage.type, OutboxMessage.webhook_id)
        .join(OutboxMessage, OutboxMessage.id == Delivery.message_id)
        .where(OutboxMessage.alert_id.in_(alert_ids))
        .order_by(OutboxMessage.id, Delivery.channel)
        .execution_options(populate_existing=True)
    )


async def deliveries_of(
    session: AsyncSession, alert_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[DeliveryRow]]:
    """The deliveries of every message of these alerts, oldest message first."""
    found: dict[uuid.UUID, list[DeliveryRow]] = {alert_id: [] for alert_id in alert_ids}
    if not alert_ids:
        return found
    for delivery, alert_id, event, webhook_id in await session.execute(
        _deliveries_select(alert_ids)
    ):
        if alert_id is not None:  # always, given the filter: for the type checker
            found[alert_id].append(DeliveryRow(delivery, event, webhook_id))
    return found


async def acknowledge(
    session: AsyncSession,
    *,
    alert_id: uuid.UUID,
    acknowledged_by: str,
    user_id: int,
    note: str | None,
) -> Alert | None:
    """Record the first acknowledgement of an open alert; None if it was already taken."""
    stmt = (
        update(Alert)
        .where(Alert.id == alert_id, Alert.status == AlertStatus.OPEN)
        .values(
            status=AlertStatus.ACKNOWLEDGED,
            acknowledged_by=acknowledged_by,
            acknowledged_by_user_id=user_id,
            acknowledged_at=func.now(),
            acknowledgement_note=note,
        )
        .returning(Alert)
    )
    return (await session.scalars(stmt, execution_options=_REFRESH)).one_or_none()


# The alert stream.


def _alert_messages(
    site_ids: frozenset[int] | None,
) -> Select[int, int, int, str, str, datetime]:
    stmt = select(
        AlertStreamEntry.id,
        OutboxMessage.id,
        OutboxMessage.site_id,
        OutboxMessage.type,
        OutboxMessage.body,
        OutboxMessage.created_at,
    ).join(OutboxMessage, OutboxMessage.id == AlertStreamEntry.message_id)
    if site_ids is not None:
        stmt = stmt.where(AlertStreamEntry.site_id.in_(sorted(site_ids)))
    return stmt


async def newest_alert_message_id(session: AsyncSession, site_ids: frozenset[int] | None) -> int:
    """The stream position of the newest alert message of these sites (0 when none)."""
    stmt = select(func.max(AlertStreamEntry.id))
    if site_ids is not None:
        stmt = stmt.where(AlertStreamEntry.site_id.in_(sorted(site_ids)))
    newest = (await session.execute(stmt)).scalar_one_or_none()
    return int(newest or 0)


async def alert_messages_after(
    session: AsyncSession, site_ids: frozenset[int] | None, *, after: int, limit: int
) -> list[StreamMessage]:
    """Alert messages of these sites after stream position ``after``, in stream order."""
    stmt = _alert_messages(site_ids).where(AlertStreamEntry.id > after)
    rows = await session.execute(stmt.order_by(AlertStreamEntry.id).limit(limit))
    return [StreamMessage(*row) for row in rows]


async def mark_sse_delivered(session: AsyncSession, message_ids: Sequence[int]) -> list[int]:
    """Record that a stream client was sent these messages; return those sent for the first time."""
    if not message_ids:
        return []
    # Bookkeeping of events already sent: not worth a WAL flush that would hold up the
    # stream's next read (a crash can only leave a sent delivery shown as pending).
    await session.execute(text("SET LOCAL synchronous_commit TO off"))
    # The locked pre-image tells first deliveries apart (RETURNING only sees the new row).
    before = (
        select(Delivery.id, Delivery.delivered_at)
        .where(Delivery.message_id.in_(message_ids), Delivery.channel == DeliveryChannel.SSE)
        .with_for_update()
        .subquery()
    )
    stmt = (
        update(Delivery)
        .where(Delivery.id == before.c.id)
        .values(
            status=DeliveryStatus.DELIVERED,
            attempts=Delivery.attempts + 1,
            last_attempt_at=func.now(),
            delivered_at=func.coalesce(Delivery.delivered_at, func.now()),
        )
        .returning(Delivery.message_id, before.c.delivered_at.is_(None))
    )
    rows = await session.execute(stmt, execution_options={"synchronize_session": False})
    return [message_id for message_id, first in rows if first]


# Escalation (a worker job).


async def lock_overdue(
    session: AsyncSession, *, limit: int, now: datetime | None = None
) -> list[Alert]:
    """Lock up to ``limit`` open alerts past their deadline (at ``now``, default the database
    clock), skipping those locked elsewhere."""
    reference: datetime | ColumnElement[datetime] = func.now() if now is None else now
    stmt = (
        select(Alert)
        .where(Alert.status == AlertStatus.OPEN, Alert.ack_due_at <= reference)
        .order_by(Alert.ack_due_at)
        .limit(limit)
        .with_for_update(key_share=True, skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(stmt))


async def escalate(
    session: AsyncSession, *, alert: Alert, deadline: timedelta, now: datetime | None = None
) -> Alert:
    """Record the missed deadline and raise the alert's level; the next deadline runs from
    ``now`` (default the database clock)."""
    reference: datetime | ColumnElement[datetime] = func.now() if now is None else now
    level = alert.escalation_level + 1
    session.add(
        AlertBreach(alert_id=alert.id, escalation_level=level, deadline_at=alert.ack_due_at)
    )
    stmt = (
        update(Alert)
        .where(Alert.id == alert.id)
        .values(escalation_level=level, ack_due_at=reference + deadline)
        .returning(Alert)
    )
    return (await session.scalars(stmt, execution_options=_REFRESH)).one()


async def get_views(session: AsyncSession, alert_ids: Collection[uuid.UUID]) -> list[AlertView]:
    """These alerts with what their JSON shows."""
    if not alert_ids:
        return []
    rows = await session.execute(_view_select().where(Alert.id.in_(alert_ids)))
    return [_view(row) for row in rows]
