"""Demand's daily rollup: the worker rolls closed days up, demand reads them, and a change
to a rolled day (a late arrival, a new first modality) is counted at once, before the
worker rolls the day again. The rollup works on the database's own clock (closed days
are before today, UTC), so these studies are dated from today backwards."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api.conftest import NORTH, SOUTH
from tests.conftest import run_jobs
from tests.stats.conftest import (
    ADMIN,
    MANAGER,
    RAD_NORTH,
    Network,
    add_examination,
    add_final_report,
)
from worklist.config import Settings
from worklist.models import DemandRollup, DemandRollupDay, DemandRollupMark, Study, User
from worklist.stats import rollup, service
from worklist.stats.scope import Period
from worklist.worker import Job

TODAY = datetime.now(UTC).date()
PERIOD = Period(TODAY - timedelta(days=6), TODAY)
ROLL_UP = (Job("roll_up_demand", rollup.roll_up),)


def at(days_ago: int, hour: int) -> datetime:
    """``hour`` o'clock UTC, ``days_ago`` days before today."""
    day = TODAY - timedelta(days=days_ago)
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@pytest.fixture
def days(network: Network) -> Network:
    """A week of arrivals and reports at NORTH and SOUTH, today's included."""
    north, south = network.sites[NORTH], network.sites[SOUTH]
    reader = network.users[RAD_NORTH]
    with network.db() as session, session.begin():
        for days_ago, site, modality in ((5, north, "CT"), (5, north, "MR"), (3, south, "CT")):
            add_examination(session, site, at=at(days_ago, 9), modality=modality)
        reported = add_examination(session, north, at=at(4, 10), modality="MR")
        add_final_report(session, reported, reader, at(2, 11))
        other = add_examination(session, south, at=at(3, 8))
        add_final_report(session, other, reader, at(1, 15))
        add_examination(session, north, at=at(0, 0))  # today: never rolled up
        month_ago = add_examination(session, north, at=at(40, 9))
        add_final_report(session, month_ago, reader, at(27, 12))  # in the rate's 28 days
    return network


def demand(network: Network, who: str) -> dict[str, Any]:
    """``/stats/demand``'s figures as ``who`` sees them now."""

    async def call(session: AsyncSession, user: User) -> dict[str, Any]:
        figures = await service.demand(session=session, user=user, period=PERIOD, address=None)
        return figures.model_dump()

    return network.as_user(who, call)


def rolled(network: Network) -> dict[date, list[tuple[str, str, int, int]]]:
    """The rollup's rows by day: (site id as text, modality, arrivals, reports)."""
    with network.db() as session:
        rows = session.execute(
            select(DemandRollup).order_by(DemandRollup.day, DemandRollup.modality)
        ).scalars()
        out: dict[date, list[tuple[str, str, int, int]]] = {}
        for row in rows:
            out.setdefault(row.day, []).append(
                (str(row.site_id), row.modality, row.arrivals, row.reports)
            )
        return out


def count(network: Network, model: Any) -> int:
    with network.db() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_rolled_days_give_the_same_figures_as_the_live_tables(
    days: Network, settings: Settings
) -> None:
    live_admin, live_manager = demand(days, ADMIN), demand(days, MANAGER)

    done = run_jobs(settings, ROLL_UP)

    assert done["roll_up_demand"] == rollup.DAYS_PER_RUN
    assert count(days, DemandRollupDay) == rollup.DAYS_PER_RUN
    north = str(days.sites[NORTH].id)
    table = rolled(days)
    assert table[TODAY - timedelta(days=5)] == [(north, "CT", 1, 0), (north, "MR", 1, 0)]
    assert table[TODAY - timedelta(days=2)] == [(north, "MR", 0, 1)]
    assert table[TODAY - timedelta(days=27)] == [(north, "CT", 0, 1)]
    assert TODAY not in table
    assert demand(days, ADMIN) == live_admin
    assert demand(days, MANAGER) == live_manager
    # Newest first: the next run goes on further back.
    assert run_jobs(settings, ROLL_UP)["roll_up_demand"] == rollup.DAYS_PER_RUN
    # The figures of a clean day are the rollup's (not the tables', which say 1).
    with days.db() as session, session.begin():
        row = session.get(DemandRollup, (TODAY - timedelta(days=5), days.sites[NORTH].id, "CT"))
        assert row is not None
        row.arrivals = 7
    assert _cell(demand(days, ADMIN), 5, "CT") == (7, 0)


def test_a_change_to_a_rolled_day_counts_at_once_and_is_rolled_again(
    days: Network, settings: Settings
) -> None:
    run_jobs(settings, ROLL_UP)
    before = demand(days, ADMIN)
    with days.db() as session, session.begin():
        # A late-registered study of five days ago, and new images that make the reported
        # MR of four days ago a CT first (its report was signed two days ago).
        add_examination(session, days.sites[NORTH], at=at(5, 12), modality="US")
        study = session.scalars(select(Study).where(Study.modalities == ["MR"])).all()
        mr = next(s for s in study if s.received_at == at(4, 10))
        mr.modalities = ["CT", "MR"]

    assert set(_marks(days)) == {TODAY - timedelta(days=d) for d in (5, 4, 2)}
    after = demand(days, ADMIN)
    assert after != before
    assert _cell(after, 5, "US") == (1, 0)
    assert _cell(after, 2, "CT") == (0, 1)
    assert _cell(after, 2, "MR") is None

    assert run_jobs(settings, ROLL_UP)["roll_up_demand"] >= 3
    assert _marks(days) == []
    assert demand(days, ADMIN) == after


def test_marks_of_days_the_rollup_does_not_hold_are_dropped(
    days: Network, settings: Settings
) -> None:
    with days.db() as session, session.begin():
        add_examination(session, days.sites[NORTH], at=at(600, 9))  # beyond ROLLUP_DAYS
    assert TODAY - timedelta(days=600) in _marks(days)

    run_jobs(settings, ROLL_UP)

    assert _marks(days) == []
    assert count(days, DemandRollupMark) == 0


def test_today_is_never_marked_nor_rolled(days: Network, settings: Settings) -> None:
    marks_before = _marks(days)
    with days.db() as session, session.begin():
        add_examination(session, days.sites[SOUTH], at=datetime.now(UTC))

    assert _marks(days) == marks_before
    run_jobs(settings, ROLL_UP)
    with days.db() as session:
        assert session.get(DemandRollupDay, TODAY) is None


def _marks(network: Network) -> list[date]:
    with network.db() as session:
        return list(session.scalars(select(DemandRollupMark.day).order_by(DemandRollupMark.id)))


def _cell(figures: dict[str, Any], days_ago: int, modality: str) -> tuple[int, int] | None:
    day = TODAY - timedelta(days=days_ago)
    for cell in figures["network"]["days"]:
        if cell["date"] == day and cell["modality"] == modality:
            return cell["arrivals"], cell["reports"]
    return None
