"""SQL of the turnaround, backlog and demand figures: aggregates computed by PostgreSQL.

Every study's clock starts at its examination (``EXAMINED_AT``: the study date and time,
else its first arrival), and its turnaround ends at its first final report
(``reports.finalised_at``, set once when the draft is signed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Label,
    Select,
    SQLColumnExpression,
    Text,
    bindparam,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.enums import Priority, StudyStatus
from worklist.models import Order, Report, Site, Study
from worklist.stats.schemas import AgeBand, Grouping
from worklist.stats.scope import Period, Sites

EXAMINED_AT: ColumnElement[datetime] = func.coalesce(Study.study_datetime, Study.received_at)
BREACH_AGE = timedelta(days=28)
# Upper bounds of the age bands (the last is open): a lower bound is in its band.
AGE_BANDS: tuple[tuple[AgeBand, timedelta], ...] = (
    (AgeBand.UNDER_1D, timedelta(days=1)),
    (AgeBand.D1_3, timedelta(days=3)),
    (AgeBand.D3_7, timedelta(days=7)),
)
DUE_SOON = timedelta(hours=24)


def unreported() -> ColumnElement[bool]:
    """Studies on the worklist (ready or being reported): the backlog.

    Rendered as literals so the planner matches the partial index of migration 0012.
    """
    statuses = [StudyStatus.READY, StudyStatus.IN_PROGRESS]
    return Study.status.in_(bindparam(None, statuses, expanding=True, literal_execute=True))


def reported() -> ColumnElement[bool]:
    """Reported studies (a literal: one statement text, planned with the value)."""
    status = bindparam(None, StudyStatus.REPORTED, type_=Study.status.type, literal_execute=True)
    return Study.status == status


def utc_day(column: SQLColumnExpression[Any]) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp."""
    return func.date(func.timezone("UTC", column))


def utc_week(column: SQLColumnExpression[Any]) -> ColumnElement[Any]:
    """The Monday (UTC) of a timestamp's ISO week."""
    return func.date(func.date_trunc("week", func.timezone("UTC", column)))


def utc_month(column: SQLColumnExpression[Any]) -> ColumnElement[str]:
    """``YYYY-MM`` of a timestamp (UTC)."""
    return func.to_char(func.timezone("UTC", column), "YYYY-MM")


def first_modality() -> ColumnElement[str | None]:
    """The study's first modality (a study is counted once, under the modality listed first)."""
    return cast(Study.modalities[1], Text)


def study_of(study_id: SQLColumnExpression[Any]) -> Any:
    """The site and first modality of the study ``study_id`` names, as a LATERAL probe.

    ``OFFSET 0`` keeps the planner from flattening it into a join: joined, it hashed all
    1M studies to keep the few weeks' a figure reads, where probing each by its primary
    key takes a tenth of the time (docs/stats.md).
    """
    return (
        select(Study.site_id, first_modality().label("modality"))
        .where(Study.id == study_id)
        .offset(0)
        .lateral("study")
    )


def _dimension(grouping: Grouping) -> SQLColumnExpression[Any]:
    match grouping:
        case Grouping.SITE:
            return Site.code
        case Grouping.MODALITY:
            return first_modality()
        case Grouping.PRIORITY:
            # The enum itself: groups sort by urgency (stat first), not by name.
            return Study.priority
        case Grouping.PATIENT_SOURCE:
            return Order.patient_source
        case Grouping.WEEK:
            return cast(utc_week(EXAMINED_AT), Text)
        case Grouping.MONTH:
            return utc_month(EXAMINED_AT)


def _seconds(delta: ColumnElement[Any]) -> ColumnElement[float]:
    return cast(func.extract("epoch", delta), Float)


def _target_seconds(targets: Mapping[str, timedelta]) -> ColumnElement[float]:
    return case(
        *((Study.priority == p, literal(targets[p.value].total_seconds())) for p in Priority),
        else_=None,
    )


async def turnaround(
    session: AsyncSession,
    *,
    sites: Sites,
    period: Period,
    groupings: Sequence[Grouping],
    targets: Mapping[str, timedelta],
    with_network: bool = False,
) -> Sequence[RowMapping]:
    """One row per group: ``g_<dimension>`` for each grouping, then the measures.

    Studies examined in the period and reported; percentiles as ``percentile_cont``.
    ``with_network`` (``groupings`` has ``site``): the network's groups too, the same
    groupings without ``site``, from the same pass over the reports (``GROUPING SETS``);
    ``network`` says which rows they are.
    """
    # Each reported study probes its report (unique index) through a LATERAL the planner
    # may not flatten (OFFSET 0): as a plain join it hashed every report of the network
    # (957k rows, 0.6 s at 1M studies) to keep a few weeks' worth.
    final = (
        select(Report.finalised_at)
        .where(Report.study_id == Study.id, Report.finalised_at.is_not(None))
        .offset(0)
        .lateral("final")
    )
    seconds = _seconds(final.c.finalised_at - EXAMINED_AT)
    dimensions: list[Label[Any]] = [_dimension(g).label(f"g_{g.value}") for g in groupings]
    stmt: Select[Any] = (
        select(
            *dimensions,
            func.count().label("count"),
            *(
                func.percentile_cont(q).within_group(seconds).label(f"p{round(q * 100)}")
                for q in (0.5, 0.9, 0.95)
            ),
            func.count().filter(seconds <= _target_seconds(targets)).label("within_target"),
            func.count().filter(seconds > BREACH_AGE.total_seconds()).label("over_28_days"),
        )
        .select_from(Study)
        .join(final, true())
        .where(reported(), sites.condition(Study.site_id), *period.conditions(EXAMINED_AT))
    )
    if Grouping.SITE in groupings:
        stmt = stmt.join(Site, Site.id == Study.site_id)
    if Grouping.PATIENT_SOURCE in groupings:
        stmt = stmt.outerjoin(Order, Order.id == Study.order_id)
    if with_network:
        # The dimensions' own expressions (their bound values are the select list's).
        exprs = {g: d.element for g, d in zip(groupings, dimensions, strict=True)}
        others = [exprs[g] for g in groupings if g is not Grouping.SITE]
        stmt = stmt.add_columns(func.grouping(exprs[Grouping.SITE]).label("network")).group_by(
            func.grouping_sets(tuple_(*exprs.values()), tuple_(*others))
        )
    elif dimensions:
        stmt = stmt.group_by(*dimensions)
    if dimensions:
        stmt = stmt.order_by(*(d.asc().nulls_last() for d in dimensions))
    rows: Sequence[RowMapping] = (await session.execute(stmt)).mappings().all()
    return rows


def age_band(now: ColumnElement[datetime]) -> ColumnElement[str]:
    """The age band of an unreported study (``>28d``: more than 28 days, a breach)."""
    age = now - EXAMINED_AT
    return case(
        *((age < bound, literal(band.value)) for band, bound in AGE_BANDS),
        (age <= BREACH_AGE, literal(AgeBand.D7_28.value)),
        else_=literal(AgeBand.OVER_28D.value),
    )


async def backlog(
    session: AsyncSession, *, sites: Sites, period: Period, now: ColumnElement[datetime]
) -> Sequence[RowMapping]:
    """Unreported studies (examined in the period) per site, priority and age band, each
    cell with how many are due within 24 hours and how many are overdue."""
    band = age_band(now).label("age_band")
    stmt = (
        select(
            Study.site_id,
            Study.priority,
            band,
            func.count().label("count"),
            func.count().filter(Study.due_at >= now, Study.due_at < now + DUE_SOON).label("due"),
            func.count().filter(Study.due_at < now).label("overdue"),
        )
        .where(unreported(), sites.condition(Study.site_id), *period.conditions(EXAMINED_AT))
        .group_by(Study.site_id, Study.priority, band)
    )
    return (await session.execute(stmt)).mappings().all()


async def site_codes(session: AsyncSession) -> dict[int, str]:
    """Every site's code by id (a network has tens of sites)."""
    return {row.id: row.code for row in await session.execute(select(Site.id, Site.code))}


async def arrivals(session: AsyncSession, *, received: ColumnElement[bool]) -> Sequence[RowMapping]:
    """Studies first received per UTC day, site and first modality, where ``received``
    (a condition on ``Study.received_at``) holds."""
    day = utc_day(Study.received_at).label("on_day")
    modality = first_modality().label("modality")
    stmt = (
        select(day, Study.site_id, modality, func.count().label("n"))
        .where(received)
        .group_by(day, Study.site_id, modality)
    )
    return (await session.execute(stmt)).mappings().all()


async def final_reports(
    session: AsyncSession, *, in_period: ColumnElement[bool], recent: ColumnElement[bool]
) -> Sequence[RowMapping]:
    """First final reports per UTC day, site and first modality of their study: ``n``
    those signed where ``in_period`` holds, ``recent`` those where ``recent`` holds (both
    conditions on ``Report.finalised_at``).

    One pass over the reports of both windows (demand's period and the 28 days of its
    reporting rate overlap but for a day by default): each report probes its study once,
    where a pass per window probed most of them twice. Groups with no report in the
    period have ``n`` 0 (their ``recent`` still counts).
    """
    day = utc_day(Report.finalised_at).label("on_day")
    study = study_of(Report.study_id)
    stmt = (
        select(
            day,
            study.c.site_id,
            study.c.modality,
            func.count().filter(in_period).label("n"),
            func.count().filter(recent).label("recent"),
        )
        .select_from(Report)
        .join(study, true())
        .where(Report.finalised_at.is_not(None), or_(in_period, recent))
        .group_by(day, study.c.site_id, study.c.modality)
    )
    return (await session.execute(stmt)).mappings().all()


async def waiting_by_site(session: AsyncSession) -> dict[int, int]:
    """Unreported studies now, by site id."""
    stmt = select(Study.site_id, func.count()).where(unreported()).group_by(Study.site_id)
    return {row[0]: row[1] for row in await session.execute(stmt)}


async def study_ids(session: AsyncSession, *, where: Sequence[ColumnElement[bool]]) -> list[int]:
    """The ids of the studies matching ``where``, oldest examination first.

    No LIMIT on purpose: with one the planner walked the examination-time index over
    every reported study (0.4 s at 1M) instead of the unreported ones' partial index.
    """
    stmt = select(Study.id).where(*where).order_by(EXAMINED_AT, Study.id)
    return list((await session.scalars(stmt)).all())


async def count_studies(session: AsyncSession, *, where: Sequence[ColumnElement[bool]]) -> int:
    """How many studies match ``where``."""
    count = await session.scalar(select(func.count()).select_from(Study).where(*where))
    return int(count or 0)
