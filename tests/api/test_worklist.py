"""GET /api/v1/worklist: filters, search, order, keyset pagination."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import (
    NORTH,
    SOUTH,
    T0,
    add_patient,
    add_study,
    add_user,
    bearer,
)
from worklist.config import Settings
from worklist.enums import Priority, Role, StudyStatus
from worklist.identity import make_nhs_number
from worklist.models import Site

URL = "/api/v1/worklist"


@pytest.fixture
def admin(db: sessionmaker[Session], sites: dict[str, Site], settings: Settings) -> dict[str, str]:
    """Headers of a network admin (sees every site)."""
    with db() as session, session.begin():
        user = add_user(session, "admin", Role.ADMIN)
    return bearer(settings, user)


def _uids(response: object) -> list[str]:
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    return [item["study_uid"] for item in response.json()["items"]]  # type: ignore[attr-defined]


def test_default_status_filter_is_ready_and_in_progress(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], admin: dict[str, str]
) -> None:
    with db() as session, session.begin():
        patient = add_patient(session, sites[NORTH])
        by_status = {status: add_study(session, patient, status=status) for status in StudyStatus}

    listed = set(_uids(client.get(URL, headers=admin)))

    assert listed == {
        by_status[StudyStatus.READY].study_uid,
        by_status[StudyStatus.IN_PROGRESS].study_uid,
    }


def test_status_filter_is_repeatable(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], admin: dict[str, str]
) -> None:
    with db() as session, session.begin():
        patient = add_patient(session, sites[NORTH])
        by_status = {status: add_study(session, patient, status=status) for status in StudyStatus}

    listed = _uids(client.get(URL, params={"status": ["receiving", "reported"]}, headers=admin))

    assert set(listed) == {
        by_status[StudyStatus.RECEIVING].study_uid,
        by_status[StudyStatus.REPORTED].study_uid,
    }


@pytest.mark.parametrize("params", [{"status": "lost"}, {"priority": "whenever"}])
def test_unknown_status_or_priority_is_422(
    client: TestClient, admin: dict[str, str], params: dict[str, str]
) -> None:
    assert client.get(URL, params=params, headers=admin).status_code == 422


def test_site_filter(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], admin: dict[str, str]
) -> None:
    with db() as session, session.begin():
        north = add_study(session, add_patient(session, sites[NORTH]))
        add_study(session, add_patient(session, sites[SOUTH]))

    assert _uids(client.get(URL, params={"site": NORTH}, headers=admin)) == [north.study_uid]


def test_modality_filter_matches_any_modality_of_the_study(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], admin: dict[str, str]
) -> None:
    with db() as session, session.begin():
        patient = add_patient(session, sites[NORTH])
        mr = add_study(session, patient, modalities=["MR", "SR"])
        add_study(session, patient, modalities=["CT"])
        xr = add_study(session, patient, modalities=["CR"])

    listed = _uids(client.get(URL, params={"modality": ["mr", "CR"]}, headers=admin))

    assert set(listed) == {mr.study_uid, xr.study_uid}


def test_priority_filter(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], admin: dict[str, str]
) -> None:
    with db() as session, session.begin():
        patient = add_patient(session, sites[NORTH])
        stat = add_study(session, patient, priority=Priority.STAT)
        add_study(session, patient, priority=Priority.ROUTINE)

    assert _uids(client.get(URL, params={"priority": "stat"}, headers=admin)) == [stat.study_uid]


def test_mine_is_empty_for_a_caller_holding_no_claim(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], admin: dict[str, str]
) -> None:
    with db() as session, session.begin():
        add_study(session, add_patient(session, sites[NORTH]))

    assert _uids(client.get(URL, params={"mine": "true"}, headers=admin)) == []


def test_search_matches_name_accession_description_or_nhs_number(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], admin: dict[str, str]
) -> None:
    nhs_number = make_nhs_number(4242)
    with db() as session, session.begin():
        smith = add_study(session, add_patient(session, sites[NORTH], name="SMITH^JANE"))
        accession = add_study(
            session, add_patient(session, sites[NORTH]), accession_number="Acc-77"
        )
        description = add_study(
            session, add_patient(session, sites[NORTH]), description="MR KNEE LEFT"
        )
        nhs = add_study(session, add_patient(session, sites[SOUTH], nhs_number=nhs_number))
        add_study(session, add_patient(session, sites[SOUTH], name="JONES^ANN"))
    spaced_nhs_number = f"{nhs_number[:3]} {nhs_number[3:6]} {nhs_number[6:]}"
    expectations = {
        "smith": smith,
        "jane smith": smith,
        "SMITH^JANE": smith,
        "acc-77": accession,
        "ACC-77": accession,
        "knee": description,
        nhs_number: nhs,
        spaced_nhs_number: nhs,
    }

    found = {q: _uids(client.get(URL, params={"q": q}, headers=admin)) for q in expectations}

    assert found == {q: [study.study_uid] for q, study in expectations.items()}


def test_search_treats_like_wildcards_literally(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], admin: dict[str, str]
) -> None:
    with db() as session, session.begin():
        add_study(session, add_patient(session, sites[NORTH]), accession_number="A1")

    assert _uids(client.get(URL, params={"q": "%"}, headers=admin)) == []


def test_order_is_due_at_then_priority_then_received_at(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], admin: dict[str, str]
) -> None:
    due = T0 + timedelta(hours=4)
    with db() as session, session.begin():
        patient = add_patient(session, sites[NORTH])
        later_due = add_study(session, patient, priority=Priority.STAT, due_at=due + timedelta(1))
        routine = add_study(session, patient, priority=Priority.ROUTINE, due_at=due)
        urgent_late = add_study(
            session,
            patient,
            priority=Priority.URGENT,
            due_at=due,
            received_at=T0 + timedelta(minutes=5),
        )
        urgent_early = add_study(session, patient, priority=Priority.URGENT, due_at=due)
        earliest_due = add_study(session, patient, due_at=due - timedelta(hours=1))

    listed = _uids(client.get(URL, headers=admin))

    expected = [earliest_due, urgent_early, urgent_late, routine, later_due]
    assert listed == [s.study_uid for s in expected]


def test_cursor_pagination_walks_every_item_exactly_once_in_order(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], admin: dict[str, str]
) -> None:
    with db() as session, session.begin():
        patient = add_patient(session, sites[NORTH])
        for n in range(11):
            add_study(
                session,
                patient,
                # Few distinct keys, so ties down to the id tiebreaker are crossed by pages.
                priority=list(Priority)[n % 2],
                due_at=T0 + timedelta(hours=n % 3),
            )
    everything = _uids(client.get(URL, params={"limit": 200}, headers=admin))

    walked: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        response = client.get(URL, params=params, headers=admin)
        walked += _uids(response)
        pages += 1
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break

    assert len(everything) == 11
    assert walked == everything
    assert pages == 4


def test_last_full_page_has_no_next_cursor(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], admin: dict[str, str]
) -> None:
    with db() as session, session.begin():
        patient = add_patient(session, sites[NORTH])
        add_study(session, patient)
        add_study(session, patient)

    assert client.get(URL, params={"limit": 2}, headers=admin).json()["next_cursor"] is None


@pytest.mark.parametrize("limit", [0, 201])
def test_limit_outside_1_to_200_is_422(
    client: TestClient, admin: dict[str, str], limit: int
) -> None:
    assert client.get(URL, params={"limit": limit}, headers=admin).status_code == 422


def test_bad_cursor_is_422_with_a_clear_detail(client: TestClient, admin: dict[str, str]) -> None:
    bad_cursors = [
        "not a cursor!",
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        # A naive timestamp, then an unknown priority: well-formed but not ours.
        base64.urlsafe_b64encode(b'["2030-01-01T00:00:00", "stat", "2030-01-01", 1]').decode(),
        base64.urlsafe_b64encode(b'["2030-01-01T00:00:00Z", "soon", "2030-01-01Z", 1]').decode(),
    ]

    for cursor in bad_cursors:
        response = client.get(URL, params={"cursor": cursor}, headers=admin)
        assert response.status_code == 422, cursor
        assert "cursor" in response.json()["detail"]


def test_item_has_the_design_fields(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], admin: dict[str, str]
) -> None:
    with db() as session, session.begin():
        patient = add_patient(
            session, sites[NORTH], local_id="MRN1", name="DOE^JOHN", nhs_number=make_nhs_number(7)
        )
        study = add_study(session, patient, priority=Priority.URGENT, flags=["new_images"])

    item = client.get(URL, headers=admin).json()["items"][0]

    assert set(item) == {
        "study_uid", "site", "accession_number", "patient", "modalities", "description",
        "study_datetime", "received_at", "series_count", "instance_count", "priority",
        "due_at", "status", "claim", "report_status", "flags", "order", "subspecialty",
        "subspecialty_rule",
    }  # fmt: skip
    assert item["site"] == {"code": NORTH, "name": "North Trust"}
    assert item["patient"] == {
        "name": "DOE^JOHN",
        "nhs_number": make_nhs_number(7),
        "local_id": "MRN1",
        "birth_date": "1970-01-01",
        "sex": "F",
    }
    assert item["study_uid"] == study.study_uid
    assert item["received_at"] in ("2030-01-07T09:00:00Z", "2030-01-07T09:00:00+00:00")
    assert item["priority"] == "urgent"
    assert item["claim"] is None
    assert item["report_status"] is None
    assert item["flags"] == ["new_images", "no_order"]  # no_order: shown, never stored
    assert item["order"] is None
