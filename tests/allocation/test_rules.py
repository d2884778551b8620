"""The allocation rules one at a time: next-only's 409, the cap and its exemptions, the
cap of the candidate's site, and the general-reader share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.allocation.conftest import ensure_subspecialties, set_allocation, timing
from tests.api.conftest import NORTH, SOUTH, T0, add_patient, add_study
from tests.claims.conftest import Staff, add_claim
from worklist.enums import Priority
from worklist.models import Site, Study

NEXT = "/api/v1/worklist/next"


def claim_url(uid: str) -> str:
    return f"/api/v1/studies/{uid}/claim"


def hold(
    session: Session, site: Site, user_id: int, priority: Priority = Priority.ROUTINE
) -> Study:
    """A study of ``site`` that ``user_id`` holds for the next hour."""
    now = datetime.now(UTC)
    study = add_study(session, add_patient(session, site), priority=priority)
    add_claim(session, study, user_id, claimed_at=now, expires_at=now + timedelta(hours=1))
    return study


def test_next_only_refuses_a_direct_claim_of_routine_work_with_its_reason(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    with db() as session, session.begin():
        set_allocation(session, sites[NORTH], next_only_routine=True)
        routine = add_study(session, add_patient(session, sites[NORTH]))
        inpatient = add_study(
            session, add_patient(session, sites[NORTH]), priority=Priority.INPATIENT
        )

    refused = client.post(claim_url(routine.study_uid), headers=staff["rad_north"])
    allowed = client.post(claim_url(inpatient.study_uid), headers=staff["rad_north"])
    handed = client.post(NEXT, headers=staff["rad_north"])

    assert refused.status_code == 409
    assert refused.json() == {
        "detail": "routine studies of this site are handed out by worklist/next only: "
        "POST /api/v1/worklist/next takes the most urgent one",
        "reason": "next_only",
    }
    assert allowed.status_code == 200, allowed.text
    assert handed.status_code == 200, handed.text
    assert handed.json()["study"]["study_uid"] == routine.study_uid
    renewed = client.post(claim_url(routine.study_uid), headers=staff["rad_north"])
    assert renewed.status_code == 200, renewed.text


def test_at_the_cap_next_hands_out_only_stat_and_urgent_work(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    with db() as session, session.begin():
        set_allocation(session, sites[NORTH], allocation_cap=2)
        rad = staff.ids["rad_north"]
        held = [
            hold(session, sites[NORTH], rad),
            hold(session, sites[NORTH], rad, Priority.INPATIENT),
        ]
        hold(session, sites[NORTH], rad, Priority.STAT)  # exempt: not counted
        routine = add_study(session, add_patient(session, sites[NORTH]), due_at=T0)
        urgent = add_study(
            session,
            add_patient(session, sites[NORTH]),
            priority=Priority.URGENT,
            due_at=T0 + timedelta(days=1),
        )

    first = client.post(NEXT, headers=staff["rad_north"])
    second = client.post(NEXT, headers=staff["rad_north"])
    direct = client.post(claim_url(routine.study_uid), headers=staff["rad_north"])
    renewal = client.post(claim_url(held[0].study_uid), headers=staff["rad_north"])
    others = client.post(NEXT, headers=staff["rad_north2"])

    assert first.status_code == 200, first.text
    assert first.json()["study"]["study_uid"] == urgent.study_uid
    assert second.status_code == 409
    assert second.json()["reason"] == "cap"
    assert (direct.status_code, direct.json()["reason"]) == (409, "cap")
    assert renewal.status_code == 200, renewal.text
    assert others.json()["study"]["study_uid"] == routine.study_uid


def test_at_the_cap_with_nothing_else_waiting_next_answers_204(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    with db() as session, session.begin():
        set_allocation(session, sites[NORTH], allocation_cap=1)
        hold(session, sites[NORTH], staff.ids["rad_north"])

    assert client.post(NEXT, headers=staff["rad_north"]).status_code == 204


def test_the_cap_of_the_candidates_site_applies(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    with db() as session, session.begin():
        set_allocation(session, sites[NORTH], allocation_cap=1)
        hold(session, sites[SOUTH], staff.ids["rad_both"])
        add_study(session, add_patient(session, sites[NORTH]), due_at=T0)
        south = add_study(session, add_patient(session, sites[SOUTH]), due_at=T0 + timedelta(1))

    response = client.post(NEXT, headers=staff["rad_both"])

    assert response.status_code == 200, response.text
    assert response.json()["study"]["study_uid"] == south.study_uid


def test_a_cap_of_zero_leaves_only_stat_and_urgent_work(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    with db() as session, session.begin():
        set_allocation(session, sites[NORTH], allocation_cap=0)
        routine = add_study(session, add_patient(session, sites[NORTH]))
        stat = add_study(session, add_patient(session, sites[NORTH]), priority=Priority.STAT)

    assert client.post(claim_url(routine.study_uid), headers=staff["rad_north"]).status_code == 409
    assert client.post(claim_url(stat.study_uid), headers=staff["rad_north"]).status_code == 200


@pytest.mark.parametrize(
    ("share", "elapsed", "handed"),
    [(0.0, 0.0, True), (0.5, 0.4, False), (0.5, 0.6, True), (1.0, 0.9, False), (1.0, 1.1, True)],
)
def test_after_share_waits_for_that_share_of_the_target(
    client: TestClient,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    staff: Staff,
    share: float,
    elapsed: float,
    handed: bool,
) -> None:
    with db() as session, session.begin():
        ensure_subspecialties(session, "neuro")
        set_allocation(
            session, sites[NORTH], general_reader="after_share", general_after_share=share
        )
        # A moment's margin so that 0.0 has elapsed by the time next runs.
        received_at, due_at = timing(elapsed + 0.001)
        add_study(
            session,
            add_patient(session, sites[NORTH]),
            subspecialty="neuro",
            received_at=received_at,
            due_at=due_at,
        )

    response = client.post(NEXT, headers=staff["rad_north"])

    assert response.status_code == (200 if handed else 204), response.text
