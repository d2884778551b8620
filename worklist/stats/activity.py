"""SQL of the flows, alert and workload figures: who did what work, and how fast alerts
were acknowledged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    SQLColumnExpression,
    String,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.doubleread.schemas import ReadStatus
from worklist.enums import AlertCategory
from worklist.models import Alert, AlertBreach, DoubleRead, Report, SecondOpinion, User
from worklist.opinions.schemas import OpinionStatus
from worklist.stats.queries import study_of, utc_month, utc_week
from worklist.stats.scope import Period, Sites

REPORT = "report"
SECOND_OPINION = "second_opinion"
DOUBLE_READ = "double_read"


def _work(
    kind: str,
    *,
    source: Any,
    at: SQLColumnExpression[Any],
    study_id: SQLColumnExpression[Any],
    by: SQLColumnExpression[Any],
    done: ColumnElement[bool],
    period: Period,
) -> Any:
    study = study_of(study_id)
    return (
        select(
            utc_month(at).label("month"),
            study.c.site_id.label("origin"),
            User.home_site_id.label("reporting"),
            literal(kind, String).label("kind"),
        )
        .select_from(source)
        .join(study, true())
        .join(User, User.id == by)
        .where(done, *period.conditions(at))
    )


async def flows(session: AsyncSession, *, sites: Sites, period: Period) -> Sequence[RowMapping]:
    """Per month, originating site id and reporting radiologist's home site id: first final
    reports, answered second opinions and submitted double reads.

    A manager's sites are in a cell on either side: their studies reported elsewhere,
    and their radiologists' work on other trusts' studies.
    """
    work = union_all(
        _work(
            REPORT,
            source=Report,
            at=Report.finalised_at,
            study_id=Report.study_id,
            by=Report.finalised_by_id,
            done=Report.finalised_at.is_not(None),
            period=period,
        ),
        _work(
            SECOND_OPINION,
            source=SecondOpinion,
            at=SecondOpinion.answered_at,
            study_id=SecondOpinion.study_id,
            by=SecondOpinion.claimed_by_id,
            done=SecondOpinion.status == OpinionStatus.ANSWERED.value,
            period=period,
        ),
        _work(
            DOUBLE_READ,
            source=DoubleRead,
            at=DoubleRead.submitted_at,
            study_id=DoubleRead.study_id,
            by=DoubleRead.reader_id,
            done=DoubleRead.status == ReadStatus.SUBMITTED.value,
            period=period,
        ),
    ).subquery("work")
    mine = (
        or_(sites.condition(work.c.origin), sites.condition(work.c.reporting))
        if sites.ids is not None
        else None
    )
    stmt = select(
        work.c.month,
        work.c.origin,
        work.c.reporting,
        *(
            func.count().filter(work.c.kind == kind).label(kind)
            for kind in (REPORT, SECOND_OPINION, DOUBLE_READ)
        ),
    ).group_by(work.c.month, work.c.origin, work.c.reporting)
    if mine is not None:
        stmt = stmt.where(mine)
    return (await session.execute(stmt)).mappings().all()


def _minutes(delta: ColumnElement[Any]) -> ColumnElement[Any]:
    return cast(func.extract("epoch", delta), Float) / 60.0


async def alerts(
    session: AsyncSession,
    *,
    sites: Sites,
    period: Period,
    deadlines: Mapping[str, timedelta],
    now: ColumnElement[datetime],
    by_site: bool,
) -> Sequence[RowMapping]:
    """Alerts raised in the period, per category (and site id, ``by_site``).

    Within deadline: acknowledged by raised_at plus the category's deadline (the first
    one; escalation moves ``ack_due_at`` on). Counted among ``due`` once acknowledged or
    once that deadline has passed.
    """
    deadline = case(
        *((Alert.category == c, literal(deadlines[c.value])) for c in AlertCategory),
        else_=None,
    )
    first_due = Alert.raised_at + deadline
    breaches = (
        select(AlertBreach.alert_id, func.count().label("n"))
        .group_by(AlertBreach.alert_id)
        .subquery("breaches")
    )
    ack_minutes = _minutes(Alert.acknowledged_at - Alert.raised_at)
    dimensions = [Alert.site_id, Alert.category] if by_site else [Alert.category]
    stmt = (
        select(
            *dimensions,
            func.count().label("count"),
            func.count().filter(Alert.acknowledged_at <= first_due).label("within"),
            func.count()
            .filter(or_(Alert.acknowledged_at.is_not(None), first_due <= now))
            .label("due"),
            func.percentile_cont(0.5).within_group(ack_minutes).label("p50"),
            func.percentile_cont(0.9).within_group(ack_minutes).label("p90"),
            func.count().filter(Alert.escalation_level > 0).label("escalations"),
            cast(func.coalesce(func.sum(breaches.c.n), 0), Integer).label("breaches"),
        )
        .outerjoin(breaches, breaches.c.alert_id == Alert.id)
        .where(sites.condition(Alert.site_id), *period.conditions(Alert.raised_at))
        .group_by(*dimensions)
    )
    return (await session.execute(stmt)).mappings().all()


async def workload(
    session: AsyncSession,
    *,
    sites: Sites,
    period: Period,
    reporter_id: int | None,
) -> Sequence[RowMapping]:
    """First final reports per radiologist and UTC week: on ``sites``' studies, or (with
    ``reporter_id``) those one radiologist signed, wherever the study is."""
    week = utc_week(Report.finalised_at).label("week")
    stmt = (
        select(User.username, week, func.count().label("reports"))
        .select_from(Report)
        .join(User, User.id == Report.finalised_by_id)
        .where(Report.finalised_at.is_not(None), *period.conditions(Report.finalised_at))
        .group_by(User.username, week)
        .order_by(week, User.username)
    )
    if reporter_id is not None:
        stmt = stmt.where(Report.finalised_by_id == reporter_id)
    if sites.ids is not None:
        study = study_of(Report.study_id)
        stmt = stmt.join(study, true()).where(sites.condition(study.c.site_id))
    return (await session.execute(stmt)).mappings().all()
