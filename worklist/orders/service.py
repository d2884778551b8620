"""Applying an order: the one place that writes ``orders`` and matches them to studies.

HL7 v2 (``worklist.hl7``) and FHIR (``POST /api/v1/fhir/ServiceRequest``) both call
``apply_order`` inside the transaction that acknowledges the message. An order and a
study match by site and accession number whichever arrives first: here for the studies
already indexed, in ``index_instances_v4`` for a study whose images come later. The
order's priority overrides the DICOM one (due time recomputed from the study's arrival);
a cancelled order cancels its study (``lifecycle``), releasing any claim with an event.
The studies are routed again (``worklist.routing``): the order names their procedure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit import repository as audit
from worklist.claims import repository as claims
from worklist.enums import AuditAction, OrderSource, OrderStatus, Priority
from worklist.events import EventType, WorklistEvent, stage
from worklist.models import Order, Study
from worklist.orders import repository
from worklist.orders.content import OrderContent, OrderControl
from worklist.routing import service as routing
from worklist.studies import lifecycle
from worklist.studies.lifecycle import StudyEvent

RELEASE_REASON_CANCELLED = "order_cancelled"


@dataclass(frozen=True)
class Actor:
    """Who applies the order, for the audit log."""

    name: str
    kind: audit.ActorKind
    address: str | None = None


@dataclass(frozen=True)
class AppliedOrder:
    """What applying an order did."""

    order_id: int
    created: bool
    status: OrderStatus
    study_uids: tuple[str, ...]


@dataclass(frozen=True)
class _Target:
    """The order a message was applied to, as its studies need it."""

    order_id: int
    site_id: int
    accession_number: str
    priority: Priority | None
    status: OrderStatus


def _field_values(content: OrderContent) -> dict[str, Any]:
    """The order columns ``content`` says something about (None: unsaid, kept)."""
    values: dict[str, Any] = {
        name: getattr(content, name)
        for name in repository.CONTENT_COLUMNS
        if getattr(content, name) is not None
    }
    for column, attribute in repository.REFERRER_COLUMNS.items():
        value = getattr(content.referrer, attribute)
        if value is not None:
            values[column] = value
    if content.identifiers:
        values["patient_identifiers"] = [identifier.as_json() for identifier in content.identifiers]
    return values


def _audit_row(
    actor: Actor, action: AuditAction, site_id: int, content: OrderContent, source: OrderSource
) -> dict[str, Any]:
    # The order-level row; its detail gains "order_id" once the order has one.
    return audit.new_values(
        actor=actor.name,
        actor_kind=actor.kind,
        action=action,
        site_id=site_id,
        address=actor.address,
        detail={"control": content.control.value, "source": source.value},
    )


async def _create(
    session: AsyncSession,
    site_id: int,
    content: OrderContent,
    source: OrderSource,
    actor: Actor,
    now: datetime,
) -> tuple[_Target | None, tuple[int, ...]]:
    """The accession locked and a new order written whole by one statement, with its
    audit row and the lock on its studies; None (and the studies locked) when the site
    has the accession already."""
    status = OrderStatus.CANCELLED if content.control.cancels else OrderStatus.ACTIVE
    values = {
        **dict.fromkeys(repository.CREATE_COLUMNS),
        "site_id": site_id,
        "accession_number": content.accession_number,
        "source": source.value,
        "status": status.value,
        "last_control": content.control.value,
        "updated_at": now,
        "patient_identifiers": [],
        **_field_values(content),
    }
    row = _audit_row(actor, AuditAction.ORDER_RECEIVED, site_id, content, source)
    created = await repository.lock_and_create_order(session, values=values, audit_row=row)
    if created.order_id is None:
        return None, created.study_ids
    target = _Target(created.order_id, site_id, content.accession_number, content.priority, status)
    return target, created.study_ids


async def _change(
    session: AsyncSession,
    order: Order,
    content: OrderContent,
    source: OrderSource,
    actor: Actor,
    now: datetime,
) -> tuple[_Target, bool]:
    """Write ``content`` over an existing (locked) order; whether it was cancelled."""
    was_cancelled = order.status == OrderStatus.CANCELLED
    for name, value in _field_values(content).items():
        setattr(order, name, value)
    order.last_control = content.control.value
    order.updated_at = now
    if content.control.cancels:
        order.status = OrderStatus.CANCELLED
    elif content.control in (OrderControl.NEW, OrderControl.CHANGE):
        order.status = OrderStatus.ACTIVE
    await session.flush()
    action = AuditAction.ORDER_CANCELLED if content.control.cancels else AuditAction.ORDER_CHANGED
    row = _audit_row(actor, action, order.site_id, content, source)
    await audit.record_now(session, **{**row, "detail": {"order_id": order.id, **row["detail"]}})
    status = OrderStatus(order.status)
    target = _Target(order.id, order.site_id, order.accession_number, order.priority, status)
    return target, was_cancelled


async def apply_order(
    session: AsyncSession,
    *,
    site_id: int,
    content: OrderContent,
    source: OrderSource,
    actor: Actor,
    turnaround_targets: Mapping[str, timedelta],
    now: datetime | None = None,
) -> AppliedOrder:
    """Store ``content`` as the site's order for its accession number and apply it to the
    site's studies of that accession; flushes, the caller commits.

    A new order (NW, usually for an accession not seen yet) tries its INSERT first;
    anything else looks for the order first. An INSERT that finds the order there (a
    resent NW, or two senders racing on one accession) does nothing, and the order is
    then locked and written over like any change.
    """
    now = now or datetime.now(UTC)
    accession = content.accession_number
    target: _Target | None = None
    study_ids: tuple[int, ...] | None = None
    order: Order | None = None
    # The accession's lock holds the routing rules too, before the studies are locked:
    # the order routes them. A new order takes it in the same round trip as its INSERT.
    if content.control is not OrderControl.NEW:
        await repository.lock_accession(session, site_id=site_id, accession=accession)
        order = await repository.lock_order(session, site_id=site_id, accession=accession)
    if order is None:
        target, study_ids = await _create(session, site_id, content, source, actor, now)
    created = target is not None
    was_cancelled = False
    if target is None:
        order = order or await repository.lock_order(session, site_id=site_id, accession=accession)
        assert order is not None
        target, was_cancelled = await _change(session, order, content, source, actor, now)
    if study_ids is None:
        study_ids = tuple(
            await repository.lock_study_ids(session, site_id=site_id, accession=accession)
        )
    uids = await _apply_to_studies(
        session,
        target,
        study_ids,
        actor=actor,
        cancel=content.control.cancels,
        reinstate=was_cancelled and target.status is OrderStatus.ACTIVE,
        turnaround_targets=turnaround_targets,
    )
    return AppliedOrder(
        order_id=target.order_id, created=created, status=target.status, study_uids=uids
    )


async def _apply_to_studies(
    session: AsyncSession,
    order: _Target,
    study_ids: tuple[int, ...],
    *,
    actor: Actor,
    cancel: bool,
    reinstate: bool,
    turnaround_targets: Mapping[str, timedelta],
) -> tuple[str, ...]:
    studies: list[Study] = []
    if study_ids:
        stmt = select(Study).where(Study.id.in_(study_ids)).order_by(Study.id)
        studies = list(await session.scalars(stmt))
    updates: dict[int, dict[str, Any]] = {}
    for study in studies:
        changes = updates.setdefault(study.id, {})
        if study.order_id != order.order_id:
            study.order_id = order.order_id
            _audit(
                session,
                actor,
                AuditAction.ORDER_MATCHED,
                study=study,
                detail={"order_id": order.order_id},
            )
        if order.priority is not None and order.priority != study.priority:
            study.priority = order.priority
            study.due_at = study.received_at + turnaround_targets[order.priority.value]
            changes |= {"priority": study.priority.value, "due_at": study.due_at.isoformat()}
        before = study.status
        if cancel:
            lifecycle.apply(study, StudyEvent.ORDER_CANCELLED)
            await _release_claim(session, study)
        elif reinstate:
            lifecycle.apply(study, StudyEvent.ORDER_REINSTATED)
        if study.status != before:
            changes["status"] = study.status.value
            _audit(
                session,
                actor,
                AuditAction.STUDY_CANCELLED if cancel else AuditAction.STUDY_REINSTATED,
                study=study,
                detail={"order_id": order.order_id, "old_status": before.value},
            )
    if studies:
        await session.flush()
        # The order's procedure is what most rules look at.
        for routed in await routing.route_studies(session, [study.id for study in studies]):
            updates[routed.study_id] |= {
                "subspecialty": routed.routed.subspecialty,
                "subspecialty_rule": routed.routed.rule,
            }
    for study in studies:
        if updates[study.id]:
            stage(
                session,
                WorklistEvent(
                    type=EventType.STUDY_UPDATED,
                    site_id=study.site_id,
                    study_uid=study.study_uid,
                    data=updates[study.id],
                ),
            )
    return tuple(study.study_uid for study in studies)


async def _release_claim(session: AsyncSession, study: Study) -> None:
    held = await claims.get_claim(session, study_id=study.id)
    if held is None:
        return
    await claims.delete_claim(session, study_id=study.id)
    stage(
        session,
        WorklistEvent(
            type=EventType.STUDY_RELEASED,
            site_id=study.site_id,
            study_uid=study.study_uid,
            data={"reason": RELEASE_REASON_CANCELLED, "username": held.username},
        ),
    )


def _audit(
    session: AsyncSession,
    actor: Actor,
    action: AuditAction,
    *,
    study: Study | None = None,
    site_id: int | None = None,
    detail: dict[str, Any],
) -> None:
    audit.record(
        session,
        actor=actor.name,
        actor_kind=actor.kind,
        action=action,
        study_uid=study.study_uid if study is not None else None,
        site_id=study.site_id if study is not None else site_id,
        address=actor.address,
        detail=detail,
    )
