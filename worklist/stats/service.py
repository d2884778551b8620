"""The figures' rules: who sees which sites, the network totals beside them, defaults of
the period, and the one audit row of each request (docs/stats.md)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.config import Settings
from worklist.enums import AlertCategory, AuditAction, Priority, Role
from worklist.errors import Forbidden
from worklist.models import Study, User
from worklist.stats import activity, queries, rollup
from worklist.stats.queries import BREACH_AGE, EXAMINED_AT
from worklist.stats.schemas import (
    AgeBand,
    AlertGroup,
    Alerts,
    Backlog,
    BacklogCell,
    BacklogFigures,
    Breaches,
    Demand,
    DemandDay,
    DemandFigures,
    FlowCell,
    Flows,
    Grouping,
    Turnaround,
    TurnaroundGroup,
    Workload,
    WorkloadRow,
)
from worklist.stats.scope import (
    Period,
    Sites,
    clock,
    database_now,
    figure_settings,
    record_view,
)
from worklist.studies import repository as studies
from worklist.studies.schemas import WorklistItem

NOT_FOR_CLIENTS = "workload figures are for radiologists, managers and admins"
# Demand covers the last four weeks unless ``since`` says otherwise; the reporting rate
# that clears the backlog is the mean of the last 28 days.
DEMAND_DAYS = 28
RATE_DAYS = 28
# Turnaround, flows, alerts and workload cover the last 28 days unless ``since`` is given:
# at 1M studies a whole history's percentiles take seconds, and 12 weeks' over 300 ms.
HISTORY_DAYS = 28
EVERY_SITE = Sites(None)
_PRIORITY_ORDER = {p: i for i, p in enumerate(Priority)}
_BAND_ORDER = {b: i for i, b in enumerate(AgeBand)}
_CATEGORY_ORDER = {c: i for i, c in enumerate(AlertCategory)}


def _today() -> date:
    return datetime.now(UTC).date()


def _recent(period: Period, days: int) -> Period:
    """``period``, or the ``days`` days up to its ``until`` (else today) when it has no since."""
    return period.or_since((period.until or _today()) - timedelta(days=days - 1))


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600.0


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _turnaround_groups(
    rows: Iterable[RowMapping], groupings: Sequence[Grouping]
) -> list[TurnaroundGroup]:
    return [
        TurnaroundGroup(
            key={g.value: row[f"g_{g.value}"] for g in groupings},
            count=row["count"],
            p50_hours=_hours(row["p50"]),
            p90_hours=_hours(row["p90"]),
            p95_hours=_hours(row["p95"]),
            within_target_share=_share(row["within_target"], row["count"]),
            over_28_days=row["over_28_days"],
        )
        for row in rows
        if row["count"]
    ]


async def turnaround(
    *,
    session: AsyncSession,
    user: User,
    settings: Settings,
    period: Period,
    groupings: Sequence[Grouping],
    address: str | None,
) -> Turnaround:
    """Examination to final report per group, for the caller's sites and the network."""
    sites = Sites.of(user)
    await figure_settings(session)
    period = _recent(period, HISTORY_DAYS)
    groupings = list(dict.fromkeys(groupings))
    targets = settings.turnaround_targets
    network_groupings = [g for g in groupings if g is not Grouping.SITE]
    rows: Sequence[RowMapping]
    network: Sequence[RowMapping]
    if Grouping.SITE in groupings:
        # Every site's groups and the network's in one pass; the caller's are among them.
        every = await queries.turnaround(
            session,
            sites=EVERY_SITE,
            period=period,
            groupings=groupings,
            targets=targets,
            with_network=True,
        )
        codes = None if sites.ids is None else {site.code for site in user.sites}
        rows = [r for r in every if not r["network"] and (codes is None or r["g_site"] in codes)]
        network = [r for r in every if r["network"]]
    else:
        rows = await queries.turnaround(
            session,
            sites=sites,
            period=period,
            groupings=groupings,
            targets=targets,
        )
        # An admin's groups without ``site`` are the network's already.
        network = (
            rows
            if sites.ids is None
            else await queries.turnaround(
                session,
                sites=EVERY_SITE,
                period=period,
                groupings=network_groupings,
                targets=targets,
            )
        )
    record_view(
        session,
        user=user,
        address=address,
        figure="turnaround",
        period=period,
        group_by=[g.value for g in groupings],
    )
    return Turnaround(
        groups=_turnaround_groups(rows, groupings),
        network=_turnaround_groups(network, network_groupings),
    )


async def breaches(
    *,
    session: AsyncSession,
    user: User,
    period: Period,
    limit: int,
    address: str | None,
    now: datetime | None = None,
) -> Breaches:
    """Unreported studies examined more than 28 days ago, oldest first; the list is audited
    as a worklist read (it names patients)."""
    sites = Sites.of(user)
    await figure_settings(session)
    at = clock(now)
    where = [queries.unreported(), at - BREACH_AGE > EXAMINED_AT, *period.conditions(EXAMINED_AT)]
    ids = await queries.study_ids(session, where=[*where, sites.condition(Study.site_id)])
    rows = await studies.list_worklist_columns(
        session,
        where=[Study.id.in_(ids[:limit])],
        order_by=[EXAMINED_AT, Study.id],
        limit=limit,
    )
    items = [WorklistItem.fields_from_columns(row) for row in rows]
    count = len(ids)
    network_count = (
        count if sites.ids is None else await queries.count_studies(session, where=where)
    )
    record_view(
        session,
        user=user,
        address=address,
        figure="breaches",
        period=period,
        action=AuditAction.STATS_BREACHES_VIEW,
        study_uids=[item["study_uid"] for item in items],
    )
    return Breaches.model_validate({"items": items, "count": count, "network_count": network_count})


def _backlog_figures(
    rows: Iterable[RowMapping], codes: Mapping[int, str], *, by_site: bool
) -> BacklogFigures:
    counts: dict[tuple[str | None, Priority, AgeBand], int] = defaultdict(int)
    due = overdue = 0
    for row in rows:
        site = codes.get(row["site_id"]) if by_site else None
        counts[(site, row["priority"], AgeBand(row["age_band"]))] += row["count"]
        due += row["due"]
        overdue += row["overdue"]
    ordered = sorted(
        counts.items(),
        key=lambda item: (item[0][0] or "", _PRIORITY_ORDER[item[0][1]], _BAND_ORDER[item[0][2]]),
    )
    cells = [
        BacklogCell(site=site, priority=priority, age_band=band, count=n)
        for (site, priority, band), n in ordered
    ]
    return BacklogFigures(cells=cells, due_24h=due, overdue=overdue)


async def backlog(
    *,
    session: AsyncSession,
    user: User,
    period: Period,
    address: str | None,
    now: datetime | None = None,
) -> Backlog:
    """Unreported studies now by site, priority and age band, with the network's."""
    sites = Sites.of(user)
    await figure_settings(session)
    at = clock(now)
    rows = await queries.backlog(session, sites=sites, period=period, now=at)
    every = (
        rows
        if sites.ids is None
        else await queries.backlog(session, sites=EVERY_SITE, period=period, now=at)
    )
    codes = await queries.site_codes(session)
    mine = _backlog_figures(rows, codes, by_site=True)
    record_view(session, user=user, address=address, figure="backlog", period=period)
    return Backlog(
        cells=mine.cells,
        due_24h=mine.due_24h,
        overdue=mine.overdue,
        network=_backlog_figures(every, codes, by_site=False),
    )


def _demand_days(
    arrivals: Iterable[rollup.Cell],
    reports: Iterable[rollup.Cell],
    codes: Mapping[int, str],
    *,
    by_site: bool,
) -> list[DemandDay]:
    cells: dict[tuple[date, str | None, str | None], list[int]] = defaultdict(lambda: [0, 0])
    for column, rows in enumerate((arrivals, reports)):
        for cell in rows:
            site = codes.get(cell.site_id) if by_site else None
            cells[(cell.on_day, site, cell.modality)][column] += cell.n
    return [
        DemandDay(date=day, site=site, modality=modality, arrivals=a, reports=r)
        for (day, site, modality), (a, r) in sorted(
            cells.items(), key=lambda item: (item[0][0], item[0][1] or "", item[0][2] or "")
        )
    ]


def _days_to_clear(backlog_count: int, reported: int) -> float | None:
    return backlog_count * RATE_DAYS / reported if reported else None


async def demand(
    *,
    session: AsyncSession,
    user: User,
    period: Period,
    address: str | None,
    now: datetime | None = None,
) -> Demand:
    """Arrivals and final reports per day, site and modality (the 28 days to ``until`` or
    today unless ``since`` is given), and the days the backlog needs at the recent
    reporting rate."""
    sites = Sites.of(user)
    await figure_settings(session)
    period = _recent(period, DEMAND_DAYS)
    at = now or await database_now(session)
    codes = await queries.site_codes(session)

    # The network's cells, by site (closed days from the worker's rollup, the others
    # live): a manager's are among them (one pass, not two).
    cells = await rollup.demand_cells(session, period=period, now=at, rate_days=RATE_DAYS)
    arrivals, reports, reported = cells.arrivals, cells.reports, cells.reported_by_site
    waiting = await queries.waiting_by_site(session)
    mine = sites.ids if sites.ids is not None else tuple(codes)
    network = DemandFigures(
        days=_demand_days(arrivals, reports, codes, by_site=False),
        days_to_clear=_days_to_clear(sum(waiting.values()), sum(reported.values())),
    )
    record_view(session, user=user, address=address, figure="demand", period=period)
    return Demand(
        days=_demand_days(
            [c for c in arrivals if c.site_id in mine],
            [c for c in reports if c.site_id in mine],
            codes,
            by_site=True,
        ),
        days_to_clear=_days_to_clear(
            sum(waiting.get(i, 0) for i in mine), sum(reported.get(i, 0) for i in mine)
        ),
        network=network,
    )


def _flow_cells(rows: Iterable[RowMapping], codes: Mapping[int, str]) -> list[FlowCell]:
    cells = [
        FlowCell(
            month=row["month"],
            origin_site=codes.get(row["origin"]),
            reporting_site=codes.get(row["reporting"]) if row["reporting"] is not None else None,
            reports=row[activity.REPORT],
            second_opinions=row[activity.SECOND_OPINION],
            double_reads=row[activity.DOUBLE_READ],
        )
        for row in rows
    ]
    return sorted(
        cells,
        key=lambda c: (c.month, c.origin_site or "", c.reporting_site is None, c.reporting_site),
    )


def _monthly_totals(cells: Iterable[FlowCell]) -> list[FlowCell]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for cell in cells:
        total = totals[cell.month]
        total[0] += cell.reports
        total[1] += cell.second_opinions
        total[2] += cell.double_reads
    return [
        FlowCell(
            month=month,
            origin_site=None,
            reporting_site=None,
            reports=r,
            second_opinions=o,
            double_reads=d,
        )
        for month, (r, o, d) in sorted(totals.items())
    ]


async def flows(*, session: AsyncSession, user: User, period: Period, address: str | None) -> Flows:
    """Work per month by originating trust and reporting radiologist's home trust."""
    sites = Sites.of(user)
    await figure_settings(session)
    period = _recent(period, HISTORY_DAYS)
    codes = await queries.site_codes(session)
    cells = _flow_cells(await activity.flows(session, sites=sites, period=period), codes)
    every = (
        cells
        if sites.ids is None
        else _flow_cells(await activity.flows(session, sites=EVERY_SITE, period=period), codes)
    )
    record_view(session, user=user, address=address, figure="flows", period=period)
    return Flows(cells=cells, network=_monthly_totals(every))


def _alert_groups(rows: Iterable[RowMapping], codes: Mapping[int, str]) -> list[AlertGroup]:
    groups = [
        AlertGroup(
            site=codes.get(row["site_id"]) if "site_id" in row else None,
            category=row["category"],
            count=row["count"],
            acknowledged_within_deadline_share=_share(row["within"], row["due"]),
            ack_p50_minutes=row["p50"],
            ack_p90_minutes=row["p90"],
            escalations=row["escalations"],
            breaches=row["breaches"],
        )
        for row in rows
    ]
    return sorted(groups, key=lambda g: (g.site or "", _CATEGORY_ORDER[g.category]))


async def alerts(
    *,
    session: AsyncSession,
    user: User,
    settings: Settings,
    period: Period,
    address: str | None,
    now: datetime | None = None,
) -> Alerts:
    """Acknowledgement of alerts raised in the period per site and category."""
    sites = Sites.of(user)
    await figure_settings(session)
    period = _recent(period, HISTORY_DAYS)
    at = clock(now)
    deadlines = settings.alert_ack_deadlines
    codes = await queries.site_codes(session)

    async def rows(scope: Sites, *, by_site: bool) -> Sequence[RowMapping]:
        return await activity.alerts(
            session, sites=scope, period=period, deadlines=deadlines, now=at, by_site=by_site
        )

    groups = _alert_groups(await rows(sites, by_site=True), codes)
    network = _alert_groups(await rows(EVERY_SITE, by_site=False), codes)
    record_view(session, user=user, address=address, figure="alerts", period=period)
    return Alerts(groups=groups, network=network)


async def workload(
    *, session: AsyncSession, user: User, period: Period, address: str | None
) -> Workload:
    """Final reports per radiologist per week: a radiologist's own, a manager's site's
    studies', every one for an admin."""
    reporter_id: int | None = None
    if user.role is Role.RADIOLOGIST:
        sites, reporter_id = EVERY_SITE, user.id
    elif user.role in (Role.ADMIN, Role.MANAGER):
        sites = Sites.of(user)
    else:
        raise Forbidden(NOT_FOR_CLIENTS)
    await figure_settings(session)
    period = _recent(period, HISTORY_DAYS)
    rows = await activity.workload(session, sites=sites, period=period, reporter_id=reporter_id)
    record_view(session, user=user, address=address, figure="workload", period=period)
    return Workload(rows=[WorkloadRow.model_validate(dict(row)) for row in rows])
