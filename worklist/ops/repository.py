"""SQL for readiness and the backlog gauges."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.enums import Priority, StudyStatus
from worklist.models import Site, Study

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
