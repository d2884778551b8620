"""SQL for readiness and the gauges and counters computed at scrape time."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.enums import (
    AlertCategory,
    AlertStatus,
    DeliveryChannel,
    DeliveryStatus,
    Priority,
    StudyStatus,
)
from worklist.models import Alert, AlertBreach, Delivery, Site, Study

BACKLOG_STATUSES = (StudyStatus.RECEIVING, StudyStatus.READY, StudyStatus.IN_PROGRESS)


@dataclass(frozen=True)
class BacklogCount:
    """How many studies of a site wait at one priority and status."""

    site: str
    priority: Priority
    status: StudyStatus
    count: int


async def ping(session: AsyncSession) -> None:
    """Run ``SELECT 1``; raises when the database is unreachable."""
    await session.execute(text("SELECT 1"))


async def backlog_counts(session: AsyncSession) -> list[BacklogCount]:
    """Studies not yet reported, by site code, priority and status."""
    stmt = (
        select(Site.code, Study.priority, Study.status, func.count())
        .join(Study.site)
        .where(Study.status.in_(BACKLOG_STATUSES))
        .group_by(Site.code, Study.priority, Study.status)
        .order_by(Site.code, Study.priority, Study.status)
    )
    rows = (await session.execute(stmt)).all()
    return [
        BacklogCount(site=code, priority=priority, status=status, count=count)
        for code, priority, status, count in rows
    ]


@dataclass(frozen=True)
class SiteWebhook:
    """A site and the state of its webhook endpoint."""

    id: int
    code: str
    active: bool
    webhook_configured: bool
    webhook_disabled: bool


@dataclass(frozen=True)
class AlertCount:
    """Alerts (open, or breaches recorded) of a site in one category."""

    site_id: int
    category: AlertCategory
    count: int


@dataclass(frozen=True)
class PendingDeliveries:
    """Deliveries of a site waiting on one channel, and the age of the oldest."""

    site_id: int
    channel: DeliveryChannel
    count: int
    oldest_seconds: float


@dataclass(frozen=True)
class FailedDeliveries:
    """Deliveries of a site on one channel that failed for good."""

    site_id: int
    channel: DeliveryChannel
    count: int


@dataclass(frozen=True)
class DeliverySnapshot:
    """Everything the alert and delivery metrics need, read in one transaction."""

    sites: list[SiteWebhook]
    breaches: list[AlertCount]
    open_alerts: list[AlertCount]
    pending: list[PendingDeliveries]
    # Deliveries the receiver refused for good (HL7 AR), by site and channel.
    failed: list[FailedDeliveries]


async def limit_statement_time(session: AsyncSession, seconds: float) -> None:
    """Make the database cancel any statement of this transaction running over ``seconds``."""
    await session.execute(
        text("SELECT set_config('statement_timeout', :ms, true)"),
        {"ms": str(max(1, int(seconds * 1000)))},
    )


async def delivery_snapshot(session: AsyncSession) -> DeliverySnapshot:
    """Sites with their webhook state, breaches and open alerts by category, pending and
    failed deliveries.

    Each query reads an index made for it: open alerts and pending deliveries are
    partial indexes; breaches are rare by construction. Failed deliveries (an HL7 AR)
    are rare too, but have no index of their own yet: the count scans ``deliveries``.
    """
    site_rows = await session.execute(
        select(
            Site.id,
            Site.code,
            Site.active,
            Site.webhook_url.is_not(None),
            Site.webhook_disabled_at.is_not(None),
        ).order_by(Site.code)
    )
    breach_rows = await session.execute(
        select(Alert.site_id, Alert.category, func.count())
        .join(AlertBreach, AlertBreach.alert_id == Alert.id)
        .group_by(Alert.site_id, Alert.category)
    )
    open_rows = await session.execute(
        select(Alert.site_id, Alert.category, func.count())
        .where(Alert.status == AlertStatus.OPEN)
        .group_by(Alert.site_id, Alert.category)
    )
    pending_rows = await session.execute(
        select(
            Delivery.site_id,
            Delivery.channel,
            func.count(),
            func.extract("epoch", func.now() - func.min(Delivery.created_at)),
        )
        .where(Delivery.status == DeliveryStatus.PENDING)
        .group_by(Delivery.site_id, Delivery.channel)
    )
    failed_rows = await session.execute(
        select(Delivery.site_id, Delivery.channel, func.count())
        .where(Delivery.status == DeliveryStatus.FAILED)
        .group_by(Delivery.site_id, Delivery.channel)
    )
    return DeliverySnapshot(
        sites=[SiteWebhook(*row) for row in site_rows],
        failed=[FailedDeliveries(*row) for row in failed_rows],
        breaches=[AlertCount(*row) for row in breach_rows],
        open_alerts=[AlertCount(*row) for row in open_rows],
        pending=[
            PendingDeliveries(site_id, channel, count, max(0.0, float(age)))
            for site_id, channel, count, age in pending_rows
        ],
    )
