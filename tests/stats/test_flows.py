"""``/stats/flows`` (work per month by originating trust and the reader's home trust, with
cross-trust readers) and ``/stats/workload`` (final reports per radiologist per week)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.api.conftest import NORTH, SOUTH
from tests.stats.conftest import (
    ADMIN,
    EAST,
    LOCUM,
    MANAGER,
    RAD_NORTH,
    RAD_SOUTH,
    SOUTH_MANAGER,
    T0,
    VISITOR,
    Network,
    add_examination,
    add_final_report,
)
from worklist.models import DoubleRead, SecondOpinion, Study, User

PERIOD = {"since": "2030-01-01", "until": "2030-02-28"}
HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)


def _report(session: Session, network: Network, site: str, by: str, at: datetime) -> Study:
    study = add_examination(session, network.sites[site], at=at - HOUR)
    add_final_report(session, study, network.users[by], at)
    return study


def _opinion(
    session: Session, study: Study, by: User, asker: User, *, answered: datetime | None
) -> None:
    session.add(
        SecondOpinion(
            study_id=study.id,
            question="Is this a fracture?",
            urgency="routine",
            status="answered" if answered else "claimed",
            requested_by_id=asker.id,
            claimed_by_id=by.id,
            claimed_at=T0,
            agreement="agree" if answered else None,
            answer_text="Agree." if answered else None,
            answered_at=answered,
        )
    )


def _double_read(
    session: Session, study: Study, by: User, first: User, *, at: datetime | None
) -> None:
    session.add(
        DoubleRead(
            study_id=study.id,
            kind="double_read",
            status="submitted" if at else "claimed",
            first_reader_id=first.id,
            reader_id=by.id,
            claimed_at=T0,
            score="1" if at else None,
            text="Concur." if at else None,
            submitted_at=at,
        )
    )


@pytest.fixture
def worked(network: Network) -> Network:
    """January: NORTH reported by dr.north (twice) and the SOUTH-employed visitor, a SOUTH
    study by the visitor, an EAST study by a locum of no trust, a second opinion on NORTH
    answered by dr.south, a double read of NORTH by dr.north (and one of each unfinished).
    February: a SOUTH study by dr.south."""
    users = network.users
    with network.db() as session, session.begin():
        n1 = _report(session, network, NORTH, RAD_NORTH, T0 + HOUR)
        n2 = _report(session, network, NORTH, VISITOR, T0 + 2 * HOUR)
        n3 = _report(session, network, NORTH, RAD_NORTH, T0 + WEEK + HOUR)
        _report(session, network, SOUTH, VISITOR, T0 + WEEK + 2 * HOUR)
        _report(session, network, EAST, LOCUM, T0 + 3 * HOUR)
        _report(session, network, SOUTH, RAD_SOUTH, datetime(2030, 2, 3, 12, tzinfo=T0.tzinfo))
        _report(session, network, NORTH, RAD_NORTH, T0 - 30 * WEEK)  # before the period
        asker = users[RAD_NORTH]
        _opinion(session, n1, users[RAD_SOUTH], asker, answered=T0 + 5 * HOUR)
        _opinion(session, n1, users[RAD_SOUTH], asker, answered=None)
        _double_read(session, n2, users[RAD_NORTH], users[VISITOR], at=T0 + 6 * HOUR)
        _double_read(session, n3, users[VISITOR], users[RAD_NORTH], at=None)
    return network


def _get(network: Network, client: TestClient, path: str, who: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/stats/{path}", params=PERIOD, headers=network.headers[who])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _cell(month: str, origin: str | None, reporting: str | None, *counts: int) -> dict[str, Any]:
    reports, opinions, reads = counts
    return {
        "month": month,
        "origin_site": origin,
        "reporting_site": reporting,
        "reports": reports,
        "second_opinions": opinions,
        "double_reads": reads,
    }


def test_an_admin_sees_every_flow_and_the_monthly_totals(
    worked: Network, client: TestClient
) -> None:
    body = _get(worked, client, "flows", ADMIN)

    assert body["cells"] == [
        _cell("2030-01", EAST, None, 1, 0, 0),
        _cell("2030-01", NORTH, NORTH, 2, 0, 1),
        _cell("2030-01", NORTH, SOUTH, 1, 1, 0),
        _cell("2030-01", SOUTH, SOUTH, 1, 0, 0),
        _cell("2030-02", SOUTH, SOUTH, 1, 0, 0),
    ]
    assert body["network"] == [
        _cell("2030-01", None, None, 5, 1, 1),
        _cell("2030-02", None, None, 1, 0, 0),
    ]


def test_a_manager_sees_flows_their_trust_is_on_either_side_of(
    worked: Network, client: TestClient
) -> None:
    north = _get(worked, client, "flows", MANAGER)
    south = _get(worked, client, "flows", SOUTH_MANAGER)

    assert north["cells"] == [
        _cell("2030-01", NORTH, NORTH, 2, 0, 1),
        _cell("2030-01", NORTH, SOUTH, 1, 1, 0),
    ]
    assert south["cells"] == [
        _cell("2030-01", NORTH, SOUTH, 1, 1, 0),
        _cell("2030-01", SOUTH, SOUTH, 1, 0, 0),
        _cell("2030-02", SOUTH, SOUTH, 1, 0, 0),
    ]
    assert north["network"] == south["network"]
    assert north["network"][0] == _cell("2030-01", None, None, 5, 1, 1)


def _rows(body: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(r["week"], r["username"], r["reports"]) for r in body["rows"]]


def test_a_radiologist_sees_their_own_workload_wherever_they_reported(
    worked: Network, client: TestClient
) -> None:
    body = _get(worked, client, "workload", VISITOR)

    assert _rows(body) == [("2030-01-07", VISITOR, 1), ("2030-01-14", VISITOR, 1)]


def test_a_manager_sees_the_workload_on_their_sites_studies(
    worked: Network, client: TestClient
) -> None:
    body = _get(worked, client, "workload", MANAGER)

    assert _rows(body) == [
        ("2030-01-07", RAD_NORTH, 1),
        ("2030-01-07", VISITOR, 1),
        ("2030-01-14", RAD_NORTH, 1),
    ]


def test_an_admin_sees_every_radiologists_workload(worked: Network, client: TestClient) -> None:
    body = _get(worked, client, "workload", ADMIN)

    assert _rows(body) == [
        ("2030-01-07", LOCUM, 1),
        ("2030-01-07", RAD_NORTH, 1),
        ("2030-01-07", VISITOR, 1),
        ("2030-01-14", RAD_NORTH, 1),
        ("2030-01-14", VISITOR, 1),
        ("2030-01-28", RAD_SOUTH, 1),
    ]
