"""POST/DELETE /api/v1/studies/{uid}/claim: leases, takeovers, who may claim and release."""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, add_patient, add_study, audit_rows
from tests.claims.conftest import Staff, add_expired_claim, claim_row, study_status
from worklist.enums import AuditAction, StudyStatus
from worklist.models import Site


def claim_url(study_uid: str) -> str:
    return f"/api/v1/studies/{study_uid}/claim"


@pytest.fixture
def north_uid(db: sessionmaker[Session], sites: dict[str, Site]) -> str:
    """A ready study at NORTH."""
    with db() as session, session.begin():
        return add_study(session, add_patient(session, sites[NORTH])).study_uid


def test_claim_returns_the_lease_and_puts_the_study_in_progress(
    client: TestClient, db: sessionmaker[Session], staff: Staff, north_uid: str
) -> None:
    response = client.post(claim_url(north_uid), headers=staff["rad_north"])

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["study_uid"] == north_uid
    assert body["username"] == "rad_north"
    claimed_at = datetime.fromisoformat(body["claimed_at"])
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert (expires_at - claimed_at).total_seconds() == pytest.approx(1800, abs=1)
    assert study_status(db, north_uid) is StudyStatus.IN_PROGRESS
    [row] = audit_rows(db, AuditAction.CLAIM_CREATED)
    assert (row.actor, row.study_uid) == ("rad_north", north_uid)


def test_claiming_again_renews_the_lease(
    client: TestClient, db: sessionmaker[Session], staff: Staff, north_uid: str
) -> None:
    first = client.post(claim_url(north_uid), headers=staff["rad_north"]).json()

    again = client.post(claim_url(north_uid), headers=staff["rad_north"])

    assert again.status_code == 200, again.text
    assert again.json()["claimed_at"] == first["claimed_at"]
    assert datetime.fromisoformat(again.json()["expires_at"]) > datetime.fromisoformat(
        first["expires_at"]
    )
    assert [r.actor for r in audit_rows(db, AuditAction.CLAIM_RENEWED)] == ["rad_north"]


def test_someone_elses_claim_is_409_naming_the_holder(
    client: TestClient, db: sessionmaker[Session], staff: Staff, north_uid: str
) -> None:
    client.post(claim_url(north_uid), headers=staff["rad_north"])

    response = client.post(claim_url(north_uid), headers=staff["rad_north2"])

    assert response.status_code == 409
    assert response.json()["claimed_by"] == "rad_north"
    assert response.json()["detail"]
    held = claim_row(db, north_uid)
    assert held is not None
    assert held[1] == "rad_north"


def test_an_expired_claim_can_be_taken_over(
    client: TestClient,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    staff: Staff,
) -> None:
    with db() as session, session.begin():
        study = add_study(session, add_patient(session, sites[NORTH]))
        add_expired_claim(session, study, staff.ids["rad_north"])

    response = client.post(claim_url(study.study_uid), headers=staff["rad_north2"])

    assert response.status_code == 200, response.text
    assert response.json()["username"] == "rad_north2"
    [row] = audit_rows(db, AuditAction.CLAIM_CREATED)
    assert row.detail["taken_over_from"] == "rad_north"


@pytest.mark.parametrize("status", [StudyStatus.RECEIVING, StudyStatus.REPORTED])
def test_receiving_or_reported_study_is_not_claimable(
    client: TestClient,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    staff: Staff,
    status: StudyStatus,
) -> None:
    with db() as session, session.begin():
        uid = add_study(session, add_patient(session, sites[NORTH]), status=status).study_uid

    response = client.post(claim_url(uid), headers=staff["rad_north"])

    assert response.status_code == 409
    assert "claimed_by" not in response.json()
    assert status.value in response.json()["detail"]
    assert claim_row(db, uid) is None


@pytest.mark.parametrize("username", ["rad_south", "manager_south", "alert_north"])
def test_claiming_a_study_the_caller_cannot_see_is_404(
    client: TestClient, staff: Staff, north_uid: str, username: str
) -> None:
    response = client.post(claim_url(north_uid), headers=staff[username])

    assert response.status_code == 404
    assert client.post(claim_url("1.2.3.999"), headers=staff[username]).json() == response.json()


@pytest.mark.parametrize("username", ["manager_north", "admin"])
def test_managers_and_admins_do_not_claim(
    client: TestClient, staff: Staff, north_uid: str, username: str
) -> None:
    response = client.post(claim_url(north_uid), headers=staff[username])

    assert response.status_code == 403
    assert "radiologist" in response.json()["detail"]


@pytest.mark.parametrize("releaser", ["rad_north", "manager_north", "admin"])
def test_release_by_holder_manager_or_admin_returns_the_study_to_ready(
    client: TestClient, db: sessionmaker[Session], staff: Staff, north_uid: str, releaser: str
) -> None:
    client.post(claim_url(north_uid), headers=staff["rad_north"])

    response = client.delete(claim_url(north_uid), headers=staff[releaser])

    assert response.status_code == 204, response.text
    assert claim_row(db, north_uid) is None
    assert study_status(db, north_uid) is StudyStatus.READY
    [row] = audit_rows(db, AuditAction.CLAIM_RELEASED)
    assert (row.actor, row.detail["holder"]) == (releaser, "rad_north")


def test_another_radiologist_cannot_release(
    client: TestClient, db: sessionmaker[Session], staff: Staff, north_uid: str
) -> None:
    client.post(claim_url(north_uid), headers=staff["rad_north"])

    response = client.delete(claim_url(north_uid), headers=staff["rad_north2"])

    assert response.status_code == 403
    assert claim_row(db, north_uid) is not None


def test_release_of_an_invisible_study_is_404(
    client: TestClient, staff: Staff, north_uid: str
) -> None:
    client.post(claim_url(north_uid), headers=staff["rad_north"])

    assert client.delete(claim_url(north_uid), headers=staff["manager_south"]).status_code == 404


def test_release_without_a_claim_is_409(client: TestClient, staff: Staff, north_uid: str) -> None:
    response = client.delete(claim_url(north_uid), headers=staff["rad_north"])

    assert response.status_code == 409
    assert response.json() == {"detail": "study is not claimed"}


def test_released_study_can_be_claimed_by_someone_else(
    client: TestClient, staff: Staff, north_uid: str
) -> None:
    client.post(claim_url(north_uid), headers=staff["rad_north"])
    client.delete(claim_url(north_uid), headers=staff["rad_north"])

    response = client.post(claim_url(north_uid), headers=staff["rad_both"])

    assert response.status_code == 200
    assert response.json()["username"] == "rad_both"


def test_radiologist_with_privileges_at_the_other_trust_claims_there(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    with db() as session, session.begin():
        uid = add_study(session, add_patient(session, sites[SOUTH])).study_uid

    assert client.post(claim_url(uid), headers=staff["rad_both"]).status_code == 200
    assert client.post(claim_url(uid), headers=staff["rad_north"]).status_code == 404
