"""``/stats/demand``: arrivals and final reports per day, site and modality, and the days
today's backlog needs at the last 28 days' reporting rate (a fixed ``now``)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api.conftest import NORTH, SOUTH
from tests.stats.conftest import MANAGER, NOW, RAD_NORTH, Network, add_examination, add_final_report
from worklist.models import User
from worklist.stats import service
from worklist.stats.schemas import Demand
from worklist.stats.scope import Period

PERIOD = Period(date(2030, 2, 26), date(2030, 2, 28))


def at(day: int, hour: int, month: int = 2) -> datetime:
    """A time in 2030."""
    return datetime(2030, month, day, hour, tzinfo=UTC)


@pytest.fixture
def days(network: Network) -> Network:
    """Arrivals and reports around the period; three NORTH and one SOUTH study waiting."""
    north, south = network.sites[NORTH], network.sites[SOUTH]
    reader = network.users[RAD_NORTH]
    with network.db() as session, session.begin():
        add_examination(session, north, at=at(26, 10))
        reported = add_examination(session, north, at=at(26, 11))
        add_final_report(session, reported, reader, at(26, 15))
        add_examination(session, north, at=at(27, 9))
        add_examination(session, north, at=at(27, 9), modality="MR")
        before = add_examination(session, north, at=at(20, 9))
        add_final_report(session, before, reader, at(28, 10))
        long_ago = add_examination(session, north, at=at(1, 9, month=1))
        add_final_report(session, long_ago, reader, at(20, 9, month=1))  # before the 28 days
        add_examination(session, south, at=at(26, 12))
        south_done = add_examination(session, south, at=at(10, 9))
        add_final_report(session, south_done, reader, at(27, 8))
    return network


def _demand(network: Network, who: str) -> Demand:
    async def call(session: AsyncSession, user: User) -> Demand:
        return await service.demand(
            session=session, user=user, period=PERIOD, address=None, now=NOW
        )

    return network.as_user(who, call)


def _days(figures: Demand | object) -> list[tuple[str, str | None, str | None, int, int]]:
    return [
        (d.date.isoformat(), d.site, d.modality, d.arrivals, d.reports)
        for d in figures.days  # type: ignore[attr-defined]
    ]


def test_a_manager_sees_their_sites_days_and_the_networks(days: Network) -> None:
    demand = _demand(days, MANAGER)

    assert _days(demand) == [
        ("2030-02-26", NORTH, "CT", 2, 1),
        ("2030-02-27", NORTH, "CT", 1, 0),
        ("2030-02-27", NORTH, "MR", 1, 0),
        ("2030-02-28", NORTH, "CT", 0, 1),
    ]
    # 3 waiting; 2 reports in the 28 days before now (1 a fortnight): 42 days to clear.
    assert demand.days_to_clear == pytest.approx(3 * 28 / 2)
    assert _days(demand.network) == [
        ("2030-02-26", None, "CT", 3, 1),
        ("2030-02-27", None, "CT", 1, 1),
        ("2030-02-27", None, "MR", 1, 0),
        ("2030-02-28", None, "CT", 0, 1),
    ]
    assert demand.network.days_to_clear == pytest.approx(4 * 28 / 3)


def test_nothing_reported_recently_leaves_days_to_clear_unknown(network: Network) -> None:
    with network.db() as session, session.begin():
        add_examination(session, network.sites[NORTH], at=at(26, 10))

    demand = _demand(network, MANAGER)

    assert demand.days_to_clear is None
    assert _days(demand) == [("2030-02-26", NORTH, "CT", 1, 0)]
