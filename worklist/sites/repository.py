"""SQL for sites, DICOM nodes and the state of a site's deliveries (webhook, RIS results)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from worklist.enums import DeliveryChannel, DeliveryStatus, Priority
from worklist.models import Delivery, DeliveryAttempt, DicomNode, NodeGrant, OutboxMessage, Site


@dataclass(frozen=True)
class AttemptRow:
    """One recorded delivery attempt with the message it carried."""

    at: datetime
    webhook_id: str
    event: str
    status_code: int | None
    outcome: str
    error: str | None


async def get_site_by_code(session: AsyncSession, code: str, *, lock: bool = False) -> Site | None:
    """The site with this code, or None; ``lock`` serialises changes to its webhook.

    The lock is ``FOR NO KEY UPDATE``, so rows that merely reference the site (outbox
    messages, deliveries, audit) are still inserted meanwhile.
    """
    stmt = select(Site).where(Site.code == code)
    if lock:
        stmt = stmt.with_for_update(key_share=True).execution_options(populate_existing=True)
    return await session.scalar(stmt)


@dataclass(frozen=True)
class FailedRow:
    """A delivery the receiver refused for good (HL7 AR), with the message it carried."""

    webhook_id: str
    event: str
    failed_at: datetime | None
    error: str | None


async def pending_webhook_deliveries(
    session: AsyncSession, site_id: int, channel: DeliveryChannel = DeliveryChannel.WEBHOOK
) -> tuple[int, datetime | None]:
    """How many deliveries of the site on ``channel`` are pending, and since when the oldest."""
    stmt = select(func.count(), func.min(Delivery.created_at)).where(
        Delivery.site_id == site_id,
        Delivery.status == DeliveryStatus.PENDING,
        Delivery.channel == channel,
    )
    count, oldest = (await session.execute(stmt)).one()
    return count, oldest


async def failed_deliveries(
    session: AsyncSession, site_id: int, channel: DeliveryChannel, limit: int
) -> tuple[int, list[FailedRow]]:
    """How many deliveries of the site on ``channel`` failed for good, and the latest."""
    where = (
        Delivery.site_id == site_id,
        Delivery.status == DeliveryStatus.FAILED,
        Delivery.channel == channel,
    )
    count = await session.scalar(select(func.count()).select_from(Delivery).where(*where))
    stmt = (
        select(
            OutboxMessage.webhook_id,
            OutboxMessage.type,
            Delivery.last_attempt_at,
            Delivery.last_error,
        )
        .join(OutboxMessage, OutboxMessage.id == Delivery.message_id)
        .where(*where)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    return count or 0, [FailedRow(*row) for row in await session.execute(stmt)]


async def recent_attempts(
    session: AsyncSession,
    site_id: int,
    limit: int,
    channel: DeliveryChannel = DeliveryChannel.WEBHOOK,
) -> list[AttemptRow]:
    """The site's latest recorded attempts on ``channel``, newest first."""
    stmt = (
        select(
            DeliveryAttempt.started_at,
            OutboxMessage.webhook_id,
            OutboxMessage.type,
            DeliveryAttempt.status_code,
            DeliveryAttempt.outcome,
            DeliveryAttempt.error,
        )
        .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
        .join(OutboxMessage, OutboxMessage.id == Delivery.message_id)
        .where(Delivery.site_id == site_id, Delivery.channel == channel)
        # Attempt ids follow recording order and their index lets the scan stop early.
        .order_by(DeliveryAttempt.id.desc())
        .limit(limit)
    )
    return [AttemptRow(*row) for row in await session.execute(stmt)]


async def get_node_by_ae_title(session: AsyncSession, ae_title: str) -> DicomNode | None:
    """The DICOM node with this AE title, or None."""
    return await session.scalar(select(DicomNode).where(DicomNode.ae_title == ae_title))


async def list_sites(session: AsyncSession) -> list[Site]:
    """Every site with its nodes, by code."""
    stmt = select(Site).options(selectinload(Site.nodes)).order_by(Site.code)
    return list(await session.scalars(stmt))


async def add_site(
    session: AsyncSession,
    *,
    code: str,
    name: str,
    default_priority: Priority | None = None,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
) -> Site:
    """Insert a site."""
    site = Site(
        code=code,
        name=name,
        default_priority=default_priority,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
    )
    session.add(site)
    await session.flush()
    return site


async def add_node(
    session: AsyncSession, *, site: Site, ae_title: str, hosts: list[str], port: int | None
) -> DicomNode:
    """Insert a DICOM node of ``site``."""
    node = DicomNode(site_id=site.id, ae_title=ae_title, hosts=hosts, port=port)
    session.add(node)
    await session.flush()
    return node


async def get_grant(session: AsyncSession, *, node_id: int, site_id: int) -> NodeGrant | None:
    """The grant of ``site_id`` to ``node_id``, or None."""
    return await session.get(NodeGrant, (node_id, site_id))


async def add_grant(
    session: AsyncSession, *, node: DicomNode, site: Site, granted_by: str
) -> NodeGrant:
    """Record that ``node`` may query and retrieve ``site``'s studies."""
    grant = NodeGrant(node_id=node.id, site_id=site.id, granted_by=granted_by)
    session.add(grant)
    await session.flush()
    return grant


async def delete_grant(session: AsyncSession, grant: NodeGrant) -> None:
    """Withdraw a grant."""
    await session.delete(grant)
    await session.flush()


async def granted_site_codes(session: AsyncSession) -> dict[str, list[str]]:
    """Every node's granted site codes by AE title (nodes without grants are absent)."""
    stmt = (
        select(DicomNode.ae_title, Site.code)
        .join(NodeGrant, NodeGrant.node_id == DicomNode.id)
        .join(Site, Site.id == NodeGrant.site_id)
        .order_by(DicomNode.ae_title, Site.code)
    )
    result: dict[str, list[str]] = {}
    for ae_title, code in await session.execute(stmt):
        result.setdefault(ae_title, []).append(code)
    return result
