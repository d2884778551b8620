"""POST /api/v1/worklist/next: the most urgent study the caller may report, claimed at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, T0, add_patient, add_study, audit_rows
from tests.claims.conftest import Staff, add_claim, add_expired_claim, claim_row, study_status
from worklist.enums import AuditAction, Priority, StudyStatus
from worklist.models import Patient, Site

NEXT = "/api/v1/worklist/next"


def next_uid(client: TestClient, headers: dict[str, str], **params: Any) -> str | None:
    """The study ``next`` hands out, or None on 204."""
    response = client.post(NEXT, headers=headers, params=params)
    if response.status_code == 204:
        assert response.content == b""
        return None
    assert response.status_code == 200, response.text
    uid: str = response.json()["study"]["study_uid"]
    return uid


def test_next_claims_the_most_urgent_study_and_returns_claim_and_item(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    with db() as session, session.begin():
        # A patient each: next hands a patient's other studies out with the first.
        def patient() -> Patient:
            return add_patient(session, sites[NORTH])

        add_study(session, patient(), due_at=T0 + timedelta(days=3))
        urgent = add_study(session, patient(), priority=Priority.URGENT, due_at=T0 + timedelta(1))
        add_study(session, patient(), priority=Priority.STAT, due_at=T0 + timedelta(days=2))

    response = client.post(NEXT, headers=staff["rad_north"])

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["study"]["study_uid"] == urgent.study_uid
    assert body["study"]["status"] == "in_progress"
    assert body["study"]["claim"] == {
        "username": "rad_north",
        "expires_at": body["claim"]["expires_at"],
    }
    assert body["claim"]["study_uid"] == urgent.study_uid
    assert body["claim"]["username"] == "rad_north"
    assert study_status(db, urgent.study_uid) is StudyStatus.IN_PROGRESS
    [row] = audit_rows(db, AuditAction.CLAIM_CREATED)
    assert (row.study_uid, row.detail["via"]) == (urgent.study_uid, "worklist.next")


def test_next_walks_the_worklist_in_order_then_answers_204(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    with db() as session, session.begin():
        studies = [
            add_study(session, add_patient(session, sites[NORTH]), due_at=T0 + timedelta(hours=n))
            for n in (3, 1, 2)
        ]

    handed = [next_uid(client, staff[user]) for user in ("rad_north", "rad_north2", "rad_both")]

    assert handed == [studies[1].study_uid, studies[2].study_uid, studies[0].study_uid]
    assert next_uid(client, staff["rad_north"]) is None


def test_next_skips_claimed_studies_and_takes_over_expired_claims(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    with db() as session, session.begin():
        patient = add_patient(session, sites[NORTH])
        held = add_study(session, patient, due_at=T0)
        lapsed = add_study(session, patient, due_at=T0 + timedelta(hours=1))
        add_claim(
            session,
            held,
            staff.ids["rad_north2"],
            claimed_at=T0,
            expires_at=T0 + timedelta(days=36500),
        )
        add_expired_claim(session, lapsed, staff.ids["rad_north2"])

    assert next_uid(client, staff["rad_north"]) == lapsed.study_uid
    holder = claim_row(db, lapsed.study_uid)
    assert holder is not None
    assert holder[1] == "rad_north"
    assert next_uid(client, staff["rad_north"]) is None


def test_next_never_hands_out_receiving_or_reported_studies(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    with db() as session, session.begin():
        patient = add_patient(session, sites[NORTH])
        for status in (StudyStatus.RECEIVING, StudyStatus.REPORTED):
            add_study(session, patient, status=status, due_at=T0)

    assert next_uid(client, staff["rad_north"], status=["receiving", "reported"]) is None
    assert next_uid(client, staff["rad_north"]) is None


def test_next_honours_site_privileges(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    with db() as session, session.begin():
        south = add_study(session, add_patient(session, sites[SOUTH]), due_at=T0)
        north = add_study(session, add_patient(session, sites[NORTH]), due_at=T0 + timedelta(1))

    assert next_uid(client, staff["rad_north"]) == north.study_uid
    assert next_uid(client, staff["rad_north2"]) is None
    assert next_uid(client, staff["rad_both"]) == south.study_uid


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"modality": "mr"}, "mr"),
        ({"priority": ["urgent", "inpatient"]}, "urgent"),
        ({"site": SOUTH}, "south"),
        ({"q": "KNEE"}, "mr"),
        ({"status": "in_progress"}, "lapsed"),
    ],
)
def test_next_applies_the_worklist_filters(
    client: TestClient,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    staff: Staff,
    params: dict[str, Any],
    expected: str,
) -> None:
    with db() as session, session.begin():
        north = add_patient(session, sites[NORTH])
        studies = {
            "first": add_study(session, north, due_at=T0),
            "mr": add_study(
                session,
                north,
                modalities=["MR"],
                description="MR KNEE",
                due_at=T0 + timedelta(hours=1),
            ),
            "urgent": add_study(
                session, north, priority=Priority.URGENT, due_at=T0 + timedelta(hours=2)
            ),
            "south": add_study(
                session, add_patient(session, sites[SOUTH]), due_at=T0 + timedelta(hours=3)
            ),
            "lapsed": add_study(session, north, due_at=T0 + timedelta(hours=4)),
        }
        add_expired_claim(session, studies["lapsed"], staff.ids["rad_north"])

    assert next_uid(client, staff["rad_both"], **params) == studies[expected].study_uid


@pytest.mark.parametrize("username", ["manager_north", "admin", "alert_north"])
def test_only_radiologists_take_next(
    client: TestClient,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    staff: Staff,
    username: str,
) -> None:
    with db() as session, session.begin():
        add_study(session, add_patient(session, sites[NORTH]))

    assert client.post(NEXT, headers=staff[username]).status_code == 403
