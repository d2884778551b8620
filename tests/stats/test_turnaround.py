"""``GET /api/v1/stats/turnaround``: examination to first final report, against percentiles,
shares and counts worked out by hand (``percentile_cont``: linear between the ranks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import NORTH, SOUTH, audit_rows
from tests.stats.conftest import (
    RAD_NORTH,
    RAD_SOUTH,
    T0,
    Network,
    add_examination,
    add_final_report,
    reported_after,
)
from worklist.enums import AuditAction, PatientSource, Priority
from worklist.models import Order

URL = "/api/v1/stats/turnaround"
PERIOD = {"since": "2030-01-07", "until": "2030-01-31"}


def percentile_cont(values: list[float], q: float) -> float:
    """PostgreSQL's percentile_cont, by hand: interpolate between the ranks around q*(n-1)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


# NORTH: hours from examination to report, and each study's priority and modality.
NORTH_STUDIES = [
    (2, Priority.ROUTINE, "CT", PatientSource.GP),
    (10, Priority.ROUTINE, "CT", None),
    (30, Priority.ROUTINE, "CT", None),
    (200, Priority.ROUTINE, "CT", None),  # beyond routine's 7 days
    (3, Priority.URGENT, "CT", PatientSource.EMERGENCY),
    (5, Priority.URGENT, "CT", None),  # beyond urgent's 4 hours
    (700, Priority.ROUTINE, "MR", None),  # 29 days 4 hours: over 28 days
]
NORTH_NO_STUDY_DATE = 4  # routine CT without a study date: its arrival (T0) counts
SOUTH_HOURS = [1, 100]  # routine CT; the second examined a week after T0


@pytest.fixture
def reported(network: Network) -> Network:
    """The studies above, one NORTH study examined before the period, one unreported."""
    north, south = network.sites[NORTH], network.sites[SOUTH]
    rad_north, rad_south = network.users[RAD_NORTH], network.users[RAD_SOUTH]
    with network.db() as session, session.begin():
        for hours, priority, modality, source in NORTH_STUDIES:
            study = reported_after(
                session, north, rad_north, hours, priority=priority, modality=modality
            )
            if source is not None:
                order = Order(
                    site_id=north.id,
                    accession_number=f"ORD-{study.id}",
                    source="hl7",
                    patient_identifiers=[],
                    patient_source=source.value,
                )
                session.add(order)
                session.flush()
                study.order_id = order.id
        no_date = add_examination(session, north, at=None, received_at=T0)
        add_final_report(session, no_date, rad_north, T0 + timedelta(hours=NORTH_NO_STUDY_DATE))
        reported_after(session, south, rad_south, SOUTH_HOURS[0])
        reported_after(session, south, rad_south, SOUTH_HOURS[1], at=T0 + timedelta(days=7))
        reported_after(session, north, rad_north, 1, at=T0 - timedelta(days=30))
        add_examination(session, north, at=T0)
    return network


def _get(network: Network, client: TestClient, who: str, *groups: str) -> dict[str, Any]:
    response = client.get(
        URL, params={**PERIOD, "group_by": list(groups)}, headers=network.headers[who]
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _expected(hours: list[float], within: int, over: int) -> dict[str, Any]:
    return {
        "count": len(hours),
        "p50_hours": pytest.approx(percentile_cont(hours, 0.5)),
        "p90_hours": pytest.approx(percentile_cont(hours, 0.9)),
        "p95_hours": pytest.approx(percentile_cont(hours, 0.95)),
        "within_target_share": pytest.approx(within / len(hours)),
        "over_28_days": over,
    }


NORTH_HOURS = [h for h, *_ in NORTH_STUDIES] + [NORTH_NO_STUDY_DATE]


def test_the_hand_computed_percentiles_are_postgresqls() -> None:
    # [2, 3, 4, 5, 10, 30, 200, 700]: ranks 3.5, 6.3 and 6.65.
    assert percentile_cont(NORTH_HOURS, 0.5) == 7.5
    assert percentile_cont(NORTH_HOURS, 0.9) == pytest.approx(350)
    assert percentile_cont(NORTH_HOURS, 0.95) == pytest.approx(525)


def test_an_admin_sees_every_site_and_the_network(reported: Network, client: TestClient) -> None:
    body = _get(reported, client, "net.admin", "site")

    assert body["groups"] == [
        {"key": {"site": NORTH}, **_expected(NORTH_HOURS, within=5, over=1)},
        {"key": {"site": SOUTH}, **_expected(SOUTH_HOURS, within=2, over=0)},
    ]
    assert body["network"] == [
        {"key": {}, **_expected(NORTH_HOURS + SOUTH_HOURS, within=7, over=1)}
    ]


def test_a_manager_sees_their_site_and_the_network_totals(
    reported: Network, client: TestClient
) -> None:
    body = _get(reported, client, "north.manager", "site", "priority")

    routine = [2, 10, 30, 200, 700, NORTH_NO_STUDY_DATE]
    assert body["groups"] == [
        {"key": {"site": NORTH, "priority": "urgent"}, **_expected([3, 5], within=1, over=0)},
        {"key": {"site": NORTH, "priority": "routine"}, **_expected(routine, within=4, over=1)},
    ]
    assert body["network"] == [
        {"key": {"priority": "urgent"}, **_expected([3, 5], within=1, over=0)},
        {
            "key": {"priority": "routine"},
            **_expected(routine + SOUTH_HOURS, within=6, over=1),
        },
    ]


def test_no_grouping_is_one_group_of_the_callers_sites(
    reported: Network, client: TestClient
) -> None:
    body = _get(reported, client, "north.manager")

    assert body["groups"] == [{"key": {}, **_expected(NORTH_HOURS, within=5, over=1)}]


def test_groups_by_modality(reported: Network, client: TestClient) -> None:
    body = _get(reported, client, "north.manager", "modality")

    ct = [2, 10, 30, 200, 3, 5, NORTH_NO_STUDY_DATE]
    assert body["groups"] == [
        {"key": {"modality": "CT"}, **_expected(ct, within=5, over=0)},
        {"key": {"modality": "MR"}, **_expected([700], within=0, over=1)},
    ]


def test_groups_by_the_orders_patient_source(reported: Network, client: TestClient) -> None:
    body = _get(reported, client, "north.manager", "patient_source")

    rest = [10, 30, 200, 5, 700, NORTH_NO_STUDY_DATE]
    assert body["groups"] == [
        {"key": {"patient_source": "emergency"}, **_expected([3], within=1, over=0)},
        {"key": {"patient_source": "gp"}, **_expected([2], within=1, over=0)},
        {"key": {"patient_source": None}, **_expected(rest, within=3, over=1)},
    ]


def test_groups_by_week_and_month_of_the_examination(reported: Network, client: TestClient) -> None:
    weeks = _get(reported, client, "net.admin", "week")
    months = _get(reported, client, "net.admin", "month")

    assert [(g["key"], g["count"]) for g in weeks["groups"]] == [
        ({"week": "2030-01-07"}, 9),
        ({"week": "2030-01-14"}, 1),
    ]
    assert [(g["key"], g["count"]) for g in months["groups"]] == [({"month": "2030-01"}, 10)]


def test_a_period_without_reports_has_no_groups(reported: Network, client: TestClient) -> None:
    response = client.get(
        URL,
        params={"since": "2031-01-01", "group_by": "site"},
        headers=reported.headers["net.admin"],
    )

    assert response.json() == {"groups": [], "network": []}


def test_every_view_is_audited_once_without_patient_data(
    reported: Network, client: TestClient
) -> None:
    _get(reported, client, "north.manager", "site", "week")

    rows = audit_rows(reported.db, AuditAction.STATS_VIEW)
    assert [(r.actor, r.study_uid, r.detail) for r in rows] == [
        (
            "north.manager",
            None,
            {
                "figure": "turnaround",
                "since": "2030-01-07",
                "until": "2030-01-31",
                "group_by": ["site", "week"],
            },
        )
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2030-1-7"},
        {"until": "0"},
        {"since": "2030-02-01", "until": "2030-01-01"},
        {"group_by": "ward"},
    ],
)
def test_bad_parameters_are_refused(
    network: Network, client: TestClient, params: dict[str, str]
) -> None:
    response = client.get(URL, params=params, headers=network.headers["net.admin"])

    assert response.status_code == 422


def test_without_since_the_last_28_days_count(network: Network, client: TestClient) -> None:
    now = datetime.now(UTC)
    with network.db() as session, session.begin():
        for days_ago in (40, 10):
            reported_after(
                session,
                network.sites[NORTH],
                network.users[RAD_NORTH],
                2,
                at=now - timedelta(days=days_ago),
            )

    response = client.get(URL, headers=network.headers["north.manager"])
    after = datetime.now(UTC)

    assert [g["count"] for g in response.json()["groups"]] == [1]
    # 27 days before today (UTC); either day if the request ran across midnight.
    since = audit_rows(network.db, AuditAction.STATS_VIEW)[0].detail["since"]
    assert since in {(t - timedelta(days=27)).date().isoformat() for t in (now, after)}
