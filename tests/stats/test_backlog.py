"""``/stats/backlog`` and ``/stats/breaches``: unreported studies by age since their
examination, measured against a fixed ``now`` at every band's boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api.conftest import NORTH, SOUTH, audit_rows
from tests.stats.conftest import ADMIN, MANAGER, NOW, Network, add_examination
from worklist.enums import AuditAction, Priority, StudyStatus
from worklist.models import User
from worklist.stats import service
from worklist.stats.schemas import Backlog, Breaches
from worklist.stats.scope import Period

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
LATER = NOW + timedelta(days=30)

# NORTH, routine and ready unless said: age since the examination, and the due time.
NORTH_STUDIES: list[tuple[timedelta, datetime, dict[str, Any]]] = [
    (timedelta(0), NOW, {}),  # <1d, due now: due within 24 h, not overdue
    (DAY - SECOND, NOW + DAY - SECOND, {}),  # <1d, due within 24 h
    (DAY, NOW + DAY, {}),  # 1-3d, due in exactly 24 h: not within them
    (3 * DAY - SECOND, NOW - SECOND, {}),  # 1-3d, overdue
    (3 * DAY, LATER, {}),  # 3-7d
    (7 * DAY, LATER, {}),  # 7-28d
    (28 * DAY, LATER, {}),  # 7-28d: 28 days is not yet past them
    (28 * DAY + SECOND, NOW - 20 * DAY, {}),  # >28d, overdue
    (
        timedelta(hours=2),
        LATER,
        {"priority": Priority.URGENT, "status": StudyStatus.IN_PROGRESS},
    ),  # <1d
    (5 * DAY, LATER, {"status": StudyStatus.RECEIVING}),  # not on the worklist yet
    (5 * DAY, LATER, {"status": StudyStatus.REPORTED}),  # done
]
NO_STUDY_DATE_AGE = 29 * DAY  # >28d by its arrival
SOUTH_AGE = 40 * DAY  # >28d, overdue


@pytest.fixture
def waiting(network: Network) -> dict[str, str]:
    """The studies above; the 28-day breaches' UIDs by name."""
    north, south = network.sites[NORTH], network.sites[SOUTH]
    with network.db() as session, session.begin():
        studies = [
            add_examination(session, north, at=NOW - age, due_at=due, **fields)
            for age, due, fields in NORTH_STUDIES
        ]
        no_date = add_examination(
            session, north, at=None, received_at=NOW - NO_STUDY_DATE_AGE, due_at=LATER
        )
        old_south = add_examination(session, south, at=NOW - SOUTH_AGE, due_at=NOW - DAY)
        return {
            "north": studies[7].study_uid,
            "north_no_date": no_date.study_uid,
            "south": old_south.study_uid,
        }


def _backlog(network: Network, who: str) -> Backlog:
    async def call(session: AsyncSession, user: User) -> Backlog:
        return await service.backlog(
            session=session, user=user, period=Period(), address=None, now=NOW
        )

    return network.as_user(who, call)


def _breaches(network: Network, who: str) -> Breaches:
    async def call(session: AsyncSession, user: User) -> Breaches:
        return await service.breaches(
            session=session, user=user, period=Period(), limit=100, address=None, now=NOW
        )

    return network.as_user(who, call)


def _cells(figures: Any) -> list[tuple[str | None, str, str, int]]:
    return [(c.site, c.priority.value, c.age_band.value, c.count) for c in figures.cells]


def test_a_manager_sees_their_backlog_by_band_and_the_networks(
    network: Network, waiting: dict[str, str]
) -> None:
    backlog = _backlog(network, MANAGER)

    assert _cells(backlog) == [
        (NORTH, "urgent", "<1d", 1),
        (NORTH, "routine", "<1d", 2),
        (NORTH, "routine", "1-3d", 2),
        (NORTH, "routine", "3-7d", 1),
        (NORTH, "routine", "7-28d", 2),
        (NORTH, "routine", ">28d", 2),
    ]
    assert (backlog.due_24h, backlog.overdue) == (2, 2)
    assert _cells(backlog.network) == [
        (None, "urgent", "<1d", 1),
        (None, "routine", "<1d", 2),
        (None, "routine", "1-3d", 2),
        (None, "routine", "3-7d", 1),
        (None, "routine", "7-28d", 2),
        (None, "routine", ">28d", 3),
    ]
    assert (backlog.network.due_24h, backlog.network.overdue) == (2, 3)


def test_an_admin_sees_every_sites_cells(network: Network, waiting: dict[str, str]) -> None:
    backlog = _backlog(network, ADMIN)

    assert _cells(backlog)[-1] == (SOUTH, "routine", ">28d", 1)
    assert (backlog.due_24h, backlog.overdue) == (2, 3)


def test_breaches_are_the_studies_past_28_days_oldest_first(
    network: Network, waiting: dict[str, str]
) -> None:
    mine = _breaches(network, MANAGER)
    every = _breaches(network, ADMIN)

    assert [item.study_uid for item in mine.items] == [
        waiting["north_no_date"],
        waiting["north"],
    ]
    assert (mine.count, mine.network_count) == (2, 3)
    assert [item.study_uid for item in every.items] == [
        waiting["south"],
        waiting["north_no_date"],
        waiting["north"],
    ]


def test_the_breach_list_through_the_api_names_its_studies_in_the_audit(
    network: Network, client: TestClient
) -> None:
    now = datetime.now(UTC)
    with network.db() as session, session.begin():
        late = add_examination(session, network.sites[NORTH], at=now - 40 * DAY)
        add_examination(session, network.sites[NORTH], at=now - 10 * DAY)
        add_examination(session, network.sites[SOUTH], at=now - 40 * DAY)
        late_uid = late.study_uid

    response = client.get("/api/v1/stats/breaches", headers=network.headers[MANAGER])

    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["study_uid"] for item in body["items"]] == [late_uid]
    assert body["items"][0]["site"]["code"] == NORTH
    assert body["items"][0]["patient"]["name"] == "DOE^JANE"
    assert (body["count"], body["network_count"]) == (1, 2)
    rows = audit_rows(network.db, AuditAction.STATS_BREACHES_VIEW)
    assert [(r.actor, r.detail["study_uids"]) for r in rows] == [(MANAGER, [late_uid])]


def test_the_backlog_through_the_api_ages_by_the_database_clock(
    network: Network, client: TestClient
) -> None:
    now = datetime.now(UTC)
    with network.db() as session, session.begin():
        add_examination(session, network.sites[NORTH], at=now - timedelta(hours=2))
        add_examination(session, network.sites[NORTH], at=now - 2 * DAY, due_at=now - DAY)

    response = client.get("/api/v1/stats/backlog", headers=network.headers[MANAGER])

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["cells"] == [
        {"site": NORTH, "priority": "routine", "age_band": "<1d", "count": 1},
        {"site": NORTH, "priority": "routine", "age_band": "1-3d", "count": 1},
    ]
    assert (body["due_24h"], body["overdue"]) == (0, 1)
    assert body["network"]["overdue"] == 1
