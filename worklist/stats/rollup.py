"""Demand's daily rollup: arrivals and first final reports per closed UTC day, site and
first modality (migration 0013), kept by the worker, read by ``/stats/demand``.

**Exact, not approximate.** Demand reads a day from the rollup only when the day is
*clean*: the rollup holds it (``demand_rollup_days``) and no mark says it changed since
(``demand_rollup_marks``, written by the triggers of migration 0013 whenever a study or
report of a closed day is inserted, deleted or moved to another site or first modality).
Every other day of the period (today, yesterday until rolled, a marked day) is computed
from the live tables, as before the rollup: the figures are those of the moment.

**The worker** (``roll_up``, every run of the jobs) rolls up, newest first and at most
``DAYS_PER_RUN`` days a run, the days of the last ``ROLLUP_DAYS`` it does not hold, and
first of all the marked days it holds; it then removes the marks it has seen. A day is
rolled only once it is before the UTC day in which the oldest open transaction of the
database began: a transaction begun earlier that has yet to commit a change to the day
is not marked by the triggers (for it the day was not closed yet), so rolling the day
before it ends could miss its change. One replica rolls at a time (an advisory lock).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    SQLColumnExpression,
    and_,
    any_,
    bindparam,
    delete,
    false,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.config import Settings
from worklist.models import DemandRollup, DemandRollupDay, DemandRollupMark, Report, Study
from worklist.stats import queries
from worklist.stats.scope import Period, day_start

ROLLUP_DAYS = 400
DAYS_PER_RUN = 31
# pg_try_advisory_xact_lock key of the job ("demand" in ASCII).
LOCK_KEY = 0x64656D616E64
NO_MODALITY = ""  # the rollup's key for a study without a modality (NULL elsewhere)
_OLDEST_TRANSACTION = text(
    "SELECT least(now(), min(xact_start)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND backend_type = 'client backend'"
)


@dataclass(frozen=True)
class Cell:
    """Arrivals or reports of one day, site and first modality (None: the study has none)."""

    on_day: date
    site_id: int
    modality: str | None
    n: int


def _runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive days as (first, last) runs, in order."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def on_days(
    column: SQLColumnExpression[datetime | None], days: Iterable[date]
) -> ColumnElement[bool]:
    """``column`` on one of ``days`` (UTC), as index ranges (one per run of days)."""
    ranges = [
        and_(column >= day_start(first), column < day_start(last + timedelta(days=1)))
        for first, last in _runs(days)
    ]
    return or_(false(), *ranges)


def between(
    column: SQLColumnExpression[datetime | None], start: datetime, end: datetime | None
) -> ColumnElement[bool]:
    """``column`` from ``start`` (included) to ``end`` (excluded; None: open)."""
    if end is None:
        return column >= start
    return and_(column >= start, column < end)


async def clean_days(session: AsyncSession, first: date, last: date) -> frozenset[date]:
    """The days from ``first`` to ``last`` the rollup holds and no mark says changed."""
    marked = select(DemandRollupMark.id).where(DemandRollupMark.day == DemandRollupDay.day)
    stmt = select(DemandRollupDay.day).where(
        DemandRollupDay.day >= first, DemandRollupDay.day <= last, ~marked.exists()
    )
    return frozenset(await session.scalars(stmt))


def _days(days: Iterable[date]) -> Any:
    return any_(bindparam(None, sorted(days), type_=ARRAY(Date)))


async def rolled_cells(
    session: AsyncSession, days: frozenset[date]
) -> tuple[list[Cell], list[Cell]]:
    """Arrivals and reports of ``days`` from the rollup."""
    if not days:
        return [], []
    stmt = select(
        DemandRollup.day,
        DemandRollup.site_id,
        DemandRollup.modality,
        DemandRollup.arrivals,
        DemandRollup.reports,
    ).where(DemandRollup.day == _days(days))
    arrivals: list[Cell] = []
    reports: list[Cell] = []
    for day, site_id, modality, arrived, signed in await session.execute(stmt):
        key = (day, site_id, modality or None)
        if arrived:
            arrivals.append(Cell(*key, arrived))
        if signed:
            reports.append(Cell(*key, signed))
    return arrivals, reports


@dataclass(frozen=True)
class DemandCells:
    """What demand is drawn from: arrivals and reports of the period's days, and the
    first final reports of the ``rate_days`` days up to now by site."""

    arrivals: list[Cell]
    reports: list[Cell]
    reported_by_site: dict[int, int]


Runs = list[tuple[date, date | None]]


def _live(days_in: tuple[date, date | None], clean: frozenset[date]) -> Runs:
    """The runs of days from ``days_in`` (last None: open) that are not ``clean``."""
    first, last = days_in
    runs: Runs = []
    start: date | None = first
    inside = (d for d in clean if d >= first and (last is None or d <= last))
    for day_first, day_last in _runs(inside):
        if start is not None and start < day_first:
            runs.append((start, day_first - timedelta(days=1)))
        start = day_last + timedelta(days=1)
    if start is not None and (last is None or start <= last):
        runs.append((start, last))
    return runs


def _live_condition(
    column: SQLColumnExpression[datetime | None], runs: Sequence[tuple[date, date | None]]
) -> ColumnElement[bool]:
    return or_(
        false(),
        *(
            between(column, day_start(a), day_start(b + timedelta(days=1)) if b else None)
            for a, b in runs
        ),
    )


async def demand_cells(
    session: AsyncSession, *, period: Period, now: datetime, rate_days: int
) -> DemandCells:
    """Demand's cells over the whole network: clean days from the rollup, the others live.

    ``period`` has a ``since`` (demand's default period gives it one).
    """
    assert period.since is not None
    today = now.astimezone(UTC).date()
    rate_start = now - timedelta(days=rate_days)
    # Whole days of the rate's window: from the day after the one it starts in to today,
    # which is never clean (the rollup holds closed days only).
    rate_days_in = (rate_start.astimezone(UTC).date() + timedelta(days=1), today)
    last = max(today, period.until) if period.until is not None else today
    clean = await clean_days(session, min(period.since, rate_days_in[0]), last)
    in_period = frozenset(
        d for d in clean if d >= period.since and (period.until is None or d <= period.until)
    )
    in_rate = frozenset(d for d in clean if rate_days_in[0] <= d <= rate_days_in[1])
    period_runs = _live((period.since, period.until), in_period)

    rolled_arrivals, rolled_reports = await rolled_cells(session, in_period | in_rate)
    arrivals = [c for c in rolled_arrivals if c.on_day in in_period]
    reports = [c for c in rolled_reports if c.on_day in in_period]
    reported: dict[int, int] = defaultdict(int)
    for cell in rolled_reports:
        if cell.on_day in in_rate:
            reported[cell.site_id] += cell.n

    if period_runs:
        live = await queries.arrivals(
            session, received=_live_condition(Study.received_at, period_runs)
        )
        arrivals += [Cell(r["on_day"], r["site_id"], r["modality"], r["n"]) for r in live]
    # The rate's window less its clean days: the part-day it starts in, and the rest.
    rate_runs = _live(rate_days_in, in_rate)
    finalised = Report.finalised_at
    recent = and_(
        finalised > rate_start,
        finalised <= now,
        or_(
            finalised < day_start(rate_days_in[0]),
            _live_condition(finalised, rate_runs),
        ),
    )
    signed = await queries.final_reports(
        session, in_period=_live_condition(finalised, period_runs), recent=recent
    )
    for row in signed:
        if row["n"]:
            reports.append(Cell(row["on_day"], row["site_id"], row["modality"], row["n"]))
        reported[row["site_id"]] += row["recent"]
    return DemandCells(arrivals, reports, dict(reported))


# ---------------------------------------------------------------------------- the job


async def _closed_before(session: AsyncSession) -> date:
    """The first UTC day not to roll up: today, or the day the oldest open transaction of
    the database began."""
    oldest: datetime = (await session.execute(_OLDEST_TRANSACTION)).scalar_one()
    return oldest.astimezone(UTC).date()


RolledCells = dict[tuple[date, int, str], list[int]]


async def _cells_of(session: AsyncSession, days: Sequence[date]) -> RolledCells:
    """Arrivals and reports of ``days``, computed from the live tables."""
    cells: RolledCells = defaultdict(lambda: [0, 0])
    for row in await queries.arrivals(session, received=on_days(Study.received_at, days)):
        cells[(row["on_day"], row["site_id"], row["modality"] or NO_MODALITY)][0] += row["n"]
    signed = await queries.final_reports(
        session, in_period=on_days(Report.finalised_at, days), recent=false()
    )
    for row in signed:
        cells[(row["on_day"], row["site_id"], row["modality"] or NO_MODALITY)][1] += row["n"]
    return cells


async def roll_up(session: AsyncSession, settings: Settings) -> int:
    """Roll up the marked days the rollup holds, then days it lacks: how many were rolled."""
    if not await session.scalar(select(func.pg_try_advisory_xact_lock(LOCK_KEY))):
        return 0  # another replica is rolling
    closed = await _closed_before(session)
    first = closed - timedelta(days=ROLLUP_DAYS)
    rolled = set(await session.scalars(select(DemandRollupDay.day)))
    marks: dict[date, list[int]] = defaultdict(list)
    for mark_id, day in await session.execute(select(DemandRollupMark.id, DemandRollupMark.day)):
        marks[day].append(mark_id)
    again = sorted((d for d in marks if d in rolled and d < closed), reverse=True)[:DAYS_PER_RUN]
    missing = (closed - timedelta(days=n) for n in range(1, ROLLUP_DAYS + 1))
    new = [d for d in missing if d >= first and d not in rolled][: DAYS_PER_RUN - len(again)]
    days = again + new
    # Marks of the days rolled now are done; a mark of a day the rollup does not hold
    # changes nothing (that day is rolled, if ever, from the tables as they are then).
    seen = [i for d, ids in marks.items() if d in again or d not in rolled for i in ids]
    if days:
        cells = await _cells_of(session, days)
        await session.execute(delete(DemandRollup).where(DemandRollup.day == _days(days)))
        if cells:
            await session.execute(
                insert(DemandRollup),
                [
                    {"day": d, "site_id": s, "modality": m, "arrivals": a, "reports": r}
                    for (d, s, m), (a, r) in cells.items()
                ],
            )
        upsert = insert(DemandRollupDay).values([{"day": d} for d in days])
        await session.execute(
            upsert.on_conflict_do_update(index_elements=["day"], set_={"rolled_at": func.now()})
        )
    if seen:
        ids = any_(bindparam(None, seen, type_=ARRAY(BigInteger)))
        await session.execute(delete(DemandRollupMark).where(DemandRollupMark.id == ids))
    return len(days)
