"""``GET /stats/peer-review``: second reads' scores per first reader and per site.

For managers (the reads of their sites' studies) and admins (all), never for radiologists:
scores are a clinical-governance measure, not something peers see of each other.
Arbitrations are not counted: they score a second read, not the first report.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit import repository as audit
from worklist.doubleread.schemas import (
    PeerReviewRow,
    PeerReviewStats,
    RadiologistRow,
    ReadKind,
    ReadStatus,
    ScoreCounts,
    SiteRow,
)
from worklist.enums import AuditAction, Role
from worklist.errors import Forbidden
from worklist.models import DoubleRead, Site, Study, User
from worklist.stats.scope import Period
from worklist.studies.visibility import visible_study_condition

NOT_FOR_PEERS = "peer-review figures are for managers and admins"
SCORES = ("1", "2a", "2b", "3a", "3b")


def _measures() -> list[ColumnElement[Any]]:
    submitted = DoubleRead.status == ReadStatus.SUBMITTED.value
    return [
        func.count().label("reads"),
        func.count().filter(submitted).label("submitted"),
        *(func.count().filter(DoubleRead.score == s).label(f"score_{s}") for s in SCORES),
    ]


def _row(values: Any) -> dict[str, Any]:
    counts = {s: int(values[f"score_{s}"]) for s in SCORES}
    submitted = int(values["submitted"])
    discordant = submitted - counts["1"]
    return PeerReviewRow(
        reads=int(values["reads"]),
        submitted=submitted,
        pending=int(values["reads"]) - submitted,
        scores=ScoreCounts.model_validate(counts),
        discrepancy_rate=discordant / submitted if submitted else None,
    ).model_dump(by_alias=False)


async def peer_review(
    *,
    session: AsyncSession,
    user: User,
    since: date | None,
    until: date | None,
    address: str | None,
) -> PeerReviewStats:
    """Reads created from ``since`` to ``until`` (whole UTC days, both included)."""
    if user.role not in (Role.ADMIN, Role.MANAGER):
        raise Forbidden(NOT_FOR_PEERS)
    period = Period(since, until)
    conditions: list[ColumnElement[bool]] = [
        DoubleRead.kind != ReadKind.ARBITRATION.value,
        visible_study_condition(user),
        *period.conditions(DoubleRead.created_at),
    ]
    base = select(*_measures()).select_from(DoubleRead).join(Study, Study.id == DoubleRead.study_id)
    by_reader = (
        base.add_columns(User.username)
        .join(User, User.id == DoubleRead.first_reader_id)
        .where(*conditions)
        .group_by(User.username)
        .order_by(User.username)
    )
    by_site = (
        base.add_columns(Site.code)
        .join(Site, Site.id == Study.site_id)
        .where(*conditions)
        .group_by(Site.code)
        .order_by(Site.code)
    )
    readers = [
        RadiologistRow(username=row["username"], **_row(row))
        for row in (await session.execute(by_reader)).mappings()
    ]
    sites = [
        SiteRow(site=row["code"], **_row(row))
        for row in (await session.execute(by_site)).mappings()
    ]
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.PEER_REVIEW_STATS_VIEW,
        address=address,
        detail=period.audit_detail(),
    )
    return PeerReviewStats(radiologists=readers, sites=sites)
