"""Alert rules: who raises and acknowledges, deadlines, audit, and the outbox messages.

Raising and acknowledging write the alert, its audit row and its outbox message (with
one delivery per channel) in the request's transaction: a committed alert is never
without its notification, and a refused one leaves nothing behind.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from worklist import outbox, pagination
from worklist.alerts import repository
from worklist.alerts.fhir import communication
from worklist.alerts.repository import AlertFilters, AlertKey, AlertView
from worklist.alerts.schemas import (
    AcknowledgeIn,
    AlertIn,
    AlertOut,
    AlertPage,
    alert_message_data,
    alert_out,
)
from worklist.alerts.visibility import require_acknowledger, visible_alert_condition
from worklist.audit import repository as audit
from worklist.enums import AuditAction, OutboxEventType
from worklist.errors import Forbidden, NotFound
from worklist.models import Order, User
from worklist.orders.content import Referrer
from worklist.studies import repository as studies
from worklist.studies.repository import StudyLoad
from worklist.studies.service import STUDY_NOT_FOUND
from worklist.studies.visibility import visible_study_condition

ALERT_NOT_FOUND = "alert not found"
NOT_HOLDER_OR_AUTHOR = (
    "only the radiologist holding the claim on this study or the report's author may raise an alert"
)


def parse_alert_id(text: str) -> uuid.UUID:
    """The alert id in a path; a malformed one is an alert that does not exist (404)."""
    try:
        return uuid.UUID(text)
    except ValueError as exc:
        raise NotFound(ALERT_NOT_FOUND) from exc


def encode_cursor(key: AlertKey) -> str:
    """An opaque cursor for the position after ``key``."""
    return pagination.encode_cursor(key.raised_at, key.id)


def decode_cursor(cursor: str) -> AlertKey:
    """The position a cursor stands for; InvalidInput when it is not one of ours."""
    raised_at, alert_id = pagination.decode_cursor(cursor, (datetime, uuid.UUID))
    return AlertKey(raised_at=raised_at, id=alert_id)


async def raise_alert(
    *,
    session: AsyncSession,
    user: User,
    study_uid: str,
    body: AlertIn,
    deadlines: dict[str, timedelta],
    address: str | None,
) -> AlertOut:
    """Raise an alert on a study (claim holder or report author), for its originating trust."""
    study = await studies.get_visible_study(
        session,
        study_uid=study_uid,
        visible=visible_study_condition(user),
        load=StudyLoad.SITE_AND_PATIENT,
        lock=True,
    )
    if study is None:
        raise NotFound(STUDY_NOT_FOUND)
    site, patient = study.site, study.patient
    if user.id not in await repository.study_writers(session, study_id=study.id):
        raise Forbidden(NOT_HOLDER_OR_AUTHOR)
    order = await repository.order_of(session, study.order_id)
    referrer = referrer_of(order)
    alert = await repository.insert_alert(
        session,
        study_id=study.id,
        site_id=site.id,
        category=body.category,
        finding=body.finding,
        recipient=default_recipient(body.recipient, referrer),
        referrer=referrer,
        raised_by_id=user.id,
        deadline=deadlines[body.category.value],
    )
    view = AlertView(
        alert=alert,
        study_uid=study.study_uid,
        accession_number=study.accession_number,
        site=site,
        patient_name=patient.name,
        nhs_number=patient.nhs_number,
        local_id=patient.local_id,
        raised_by=user.username,
        order=order,
    )
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.ALERT_RAISED,
        study_uid=study.study_uid,
        site_id=site.id,
        address=address,
        detail={"alert_id": str(alert.id), "category": alert.category.value},
    )
    await _enqueue(session, view, OutboxEventType.ALERT_RAISED)
    return await _out(session, view)


def referrer_of(order: Order | None) -> Referrer:
    """Who asked for the study, as an alert keeps them: the order's referrer, the
    organisation by name (else its code)."""
    if order is None:
        return Referrer()
    return Referrer(
        name=order.referrer_name,
        code=order.referrer_code,
        organisation=order.referrer_organisation or order.referrer_organisation_code,
    )


def default_recipient(given: str | None, referrer: Referrer) -> str | None:
    """The recipient the radiologist named; else the referrer ("Dr A Jones, Riverside
    Surgery"). Escalation still goes to the trust's alert desk whoever it names."""
    if given is not None and given.strip():
        return given
    who = referrer.name or referrer.code
    named = ", ".join(filter(None, [who, referrer.organisation]))
    return named or given


async def get_alert(
    *, session: AsyncSession, user: User, alert_id: str, address: str | None
) -> AlertOut:
    """One alert the user may see; reading its finding is audited."""
    view = await visible_alert(session, user, alert_id)
    _audit_view(session, user, view, address)
    return await _out(session, view)


async def get_alert_fhir(
    *, session: AsyncSession, user: User, alert_id: str, address: str | None
) -> dict[str, Any]:
    """One alert the user may see as a FHIR R4 Communication; the read is audited."""
    view = await visible_alert(session, user, alert_id)
    _audit_view(session, user, view, address)
    return communication(view)


async def list_alerts(
    *,
    session: AsyncSession,
    user: User,
    filters: AlertFilters,
    limit: int,
    cursor: str | None,
    address: str | None,
) -> AlertPage:
    """One page of the alerts the user may see, newest first; the read is audited."""
    after = decode_cursor(cursor) if cursor else None
    views = await repository.list_views(
        session,
        visible=visible_alert_condition(user),
        filters=filters,
        after=after,
        limit=limit + 1,
    )
    page = views[:limit]
    last = page[-1].alert if page else None
    next_cursor = (
        encode_cursor(AlertKey(raised_at=last.raised_at, id=last.id))
        if last is not None and len(views) > limit
        else None
    )
    deliveries = await repository.deliveries_of(session, [v.alert.id for v in page])
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.ALERT_VIEW,
        address=address,
        detail={
            "filters": {
                "status": filters.status.value if filters.status else None,
                "category": filters.category.value if filters.category else None,
                "study_uid": filters.study_uid,
            },
            "cursor": cursor,
            "alert_ids": [str(v.alert.id) for v in page],
        },
    )
    return AlertPage(
        items=[alert_out(v, deliveries[v.alert.id]) for v in page], next_cursor=next_cursor
    )


async def acknowledge(
    *,
    session: AsyncSession,
    user: User,
    alert_id: str,
    body: AcknowledgeIn,
    address: str | None,
) -> AlertOut:
    """Acknowledge an alert for its trust; repeating it returns the first acknowledgement."""
    view = await visible_alert(session, user, alert_id, lock=True)
    require_acknowledger(user, view.alert)
    acknowledged = await repository.acknowledge(
        session,
        alert_id=view.alert.id,
        acknowledged_by=body.acknowledged_by,
        user_id=user.id,
        note=body.note,
    )
    if acknowledged is None:  # already acknowledged (the lock made us wait for it)
        _audit_view(session, user, view, address)
        return await _out(session, view)
    view = replace(view, alert=acknowledged)
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.ALERT_ACKNOWLEDGED,
        study_uid=view.study_uid,
        site_id=view.site.id,
        address=address,
        detail={"alert_id": str(view.alert.id), "acknowledged_by": body.acknowledged_by},
    )
    await _enqueue(session, view, OutboxEventType.ALERT_ACKNOWLEDGED)
    return await _out(session, view)


async def visible_alert(
    session: AsyncSession, user: User, alert_id: str, *, lock: bool = False
) -> AlertView:
    """The alert if ``user`` may see it; NotFound otherwise (also for a malformed id)."""
    view = await repository.get_view(
        session, alert_id=parse_alert_id(alert_id), visible=visible_alert_condition(user), lock=lock
    )
    if view is None:
        raise NotFound(ALERT_NOT_FOUND)
    return view


async def _enqueue(session: AsyncSession, view: AlertView, event_type: OutboxEventType) -> None:
    outbox.enqueue(
        session,
        site=view.site,
        event_type=event_type,
        data=alert_message_data(view),
        study_id=view.alert.study_id,
        alert_id=view.alert.id,
        sse=True,
    )
    await session.flush()


async def _out(session: AsyncSession, view: AlertView) -> AlertOut:
    deliveries = await repository.deliveries_of(session, [view.alert.id])
    return alert_out(view, deliveries[view.alert.id])


def _audit_view(session: AsyncSession, user: User, view: AlertView, address: str | None) -> None:
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.ALERT_VIEW,
        study_uid=view.study_uid,
        site_id=view.site.id,
        address=address,
        detail={"alert_ids": [str(view.alert.id)]},
    )
