"""Orders posted as FHIR ServiceRequests: who may post them, and what the answer holds.

A trust's ``order_client`` (or its ``alert_client``: the same results system often
places the orders) posts for its one site. The ServiceRequest is read as an
``OrderContent`` and applied by ``service.apply_order``, the one writer of orders, in
the request's transaction; the answer is the order as stored, as a ServiceRequest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from worklist.api.guard import MAX_DB_INT
from worklist.audit import repository as audit
from worklist.enums import AuditAction, OrderSource, Role
from worklist.models import Site, User
from worklist.orders import repository
from worklist.orders.content import OrderControl
from worklist.orders.fhir import service_request
from worklist.orders.outcome import FhirForbidden, FhirNotFound
from worklist.orders.service import Actor, apply_order
from worklist.orders.servicerequest import parse_service_request

ORDER_ROLES = (Role.ORDER_CLIENT, Role.ALERT_CLIENT)
NOT_AN_ORDER_CLIENT = "only a trust's order client (or alert client) may place orders"
OTHER_SITE = "the ServiceRequest names another site: a client may only order for its own site"
ORDER_NOT_FOUND = "no such ServiceRequest"


def caller_site(user: User) -> Site:
    """The one site an order client places orders for; FhirForbidden for anyone else."""
    if user.role not in ORDER_ROLES or len(user.sites) != 1:
        raise FhirForbidden(NOT_AN_ORDER_CLIENT)
    return user.sites[0]


@dataclass(frozen=True)
class SubmittedOrder:
    """What posting a ServiceRequest did: the stored order as a ServiceRequest."""

    order_id: int
    created: bool
    resource: dict[str, Any]


async def submit_service_request(
    *,
    session: AsyncSession,
    user: User,
    data: object,
    turnaround_targets: Mapping[str, timedelta],
    address: str | None,
) -> SubmittedOrder:
    """Apply a posted ServiceRequest as the caller's site's order (audited by apply_order)."""
    site = caller_site(user)
    request = parse_service_request(data)
    if request.named_sites - {site.code}:
        raise FhirForbidden(OTHER_SITE)
    content = request.content
    if content.control is OrderControl.NEW and await repository.order_exists(
        session, site_id=site.id, accession_number=content.accession_number
    ):
        content = dataclasses.replace(content, control=OrderControl.CHANGE)
    applied = await apply_order(
        session,
        site_id=site.id,
        content=content,
        source=OrderSource.FHIR,
        actor=Actor(name=user.username, kind=audit.ActorKind.USER, address=address),
        turnaround_targets=turnaround_targets,
    )
    order = await repository.get_order(session, order_id=applied.order_id, site_id=site.id)
    assert order is not None  # apply_order just wrote it, in this transaction
    return SubmittedOrder(
        order_id=order.id, created=applied.created, resource=service_request(order, site)
    )


def parse_order_id(text: str) -> int:
    """The order id in a path; anything else names no ServiceRequest (404)."""
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_DB_INT:
        raise FhirNotFound(ORDER_NOT_FOUND)
    return int(text)


async def read_service_request(
    *, session: AsyncSession, user: User, order_id: str, address: str | None
) -> dict[str, Any]:
    """One of the caller's site's orders as a ServiceRequest; the read is audited."""
    site = caller_site(user)
    order = await repository.get_order(session, order_id=parse_order_id(order_id), site_id=site.id)
    if order is None:
        raise FhirNotFound(ORDER_NOT_FOUND)
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.ORDER_VIEW,
        site_id=site.id,
        address=address,
        detail={"order_id": order.id},
    )
    return service_request(order, site)
