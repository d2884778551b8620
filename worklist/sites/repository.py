"""SQL for sites, DICOM nodes and the state of a site's webhook deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from worklist.enums import DeliveryChannel, DeliveryStatus, Priority
from worklist.models import Delivery, DeliveryAttempt, DicomNode, NodeGrant, OutboxMessage, Site


@dataclass(frozen=True)
class AttemptRow:
    """One recorded webhook attempt with the message it carried."""

    at: datetime
    webhook_id: str
    event: str
    status_code: int | None
    outcome: str
    error: str | None


def get_site_by_code(session: Session, code: str, *, lock: bool = False) -> Site | None:
    """The site with this code, or None; ``lock`` serialises changes to its webhook.

    The lock is ``FOR NO KEY UPDATE``, so rows that merely reference the site (outbox
    messages, deliveries, audit) are still inserted meanwhile.
    """
    stmt = select(Site).where(Site.code == code)
    if lock:
        stmt = stmt.with_for_update(key_share=True).execution_options(populate_existing=True)
    return session.scalar(stmt)


def pending_webhook_deliveries(session: Session, site_id: int) -> tuple[int, datetime | None]:
    """How many webhook deliveries of the site are pending, and since when the oldest."""
    stmt = select(func.count(), func.min(Delivery.created_at)).where(
        Delivery.site_id == site_id,
        Delivery.status == DeliveryStatus.PENDING,
        Delivery.channel == DeliveryChannel.WEBHOOK,
    )
    count, oldest = session.execute(stmt).one()
    return count, oldest


def recent_attempts(session: Session, site_id: int, limit: int) -> list[AttemptRow]:
    """The site's latest recorded webhook attempts, newest first."""
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
        .where(Delivery.site_id == site_id)
        # Attempt ids follow recording order and their index lets the scan stop early.
        .order_by(DeliveryAttempt.id.desc())
        .limit(limit)
    )
    return [AttemptRow(*row) for row in session.execute(stmt)]


def get_node_by_ae_title(session: Session, ae_title: str) -> DicomNode | None:
    """The DICOM node with this AE title, or None."""
    return session.scalar(select(DicomNode).where(DicomNode.ae_title == ae_title))


def list_sites(session: Session) -> list[Site]:
    """Every site with its nodes, by code."""
    return list(session.scalars(select(Site).options(selectinload(Site.nodes)).order_by(Site.code)))


def add_site(
    session: Session,
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
    session.flush()
    return site


def add_node(
    session: Session, *, site: Site, ae_title: str, hosts: list[str], port: int | None
) -> DicomNode:
    """Insert a DICOM node of ``site``."""
    node = DicomNode(site_id=site.id, ae_title=ae_title, hosts=hosts, port=port)
    session.add(node)
    session.flush()
    return node


def get_grant(session: Session, *, node_id: int, site_id: int) -> NodeGrant | None:
    """The grant of ``site_id`` to ``node_id``, or None."""
    return session.get(NodeGrant, (node_id, site_id))


def add_grant(session: Session, *, node: DicomNode, site: Site, granted_by: str) -> NodeGrant:
    """Record that ``node`` may query and retrieve ``site``'s studies."""
    grant = NodeGrant(node_id=node.id, site_id=site.id, granted_by=granted_by)
    session.add(grant)
    session.flush()
    return grant


def delete_grant(session: Session, grant: NodeGrant) -> None:
    """Withdraw a grant."""
    session.delete(grant)
    session.flush()


def granted_site_codes(session: Session) -> dict[str, list[str]]:
    """Every node's granted site codes by AE title (nodes without grants are absent)."""
    stmt = (
        select(DicomNode.ae_title, Site.code)
        .join(NodeGrant, NodeGrant.node_id == DicomNode.id)
        .join(Site, Site.id == NodeGrant.site_id)
        .order_by(DicomNode.ae_title, Site.code)
    )
    result: dict[str, list[str]] = {}
    for ae_title, code in session.execute(stmt):
        result.setdefault(ae_title, []).append(code)
    return result


def node_site_ids(session: Session, node_id: int) -> set[int]:
    """The sites whose studies a node may query and retrieve: its own and those granted."""
    own = select(DicomNode.site_id).where(DicomNode.id == node_id)
    granted = select(NodeGrant.site_id).where(NodeGrant.node_id == node_id)
    return set(session.scalars(own.union(granted)))
