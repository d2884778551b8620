"""A study grant opens one study to read, and nothing else, for as long as it runs.

SOUTH's radiologist holds no privilege at NORTH. A grant on one NORTH study lets them
read that study (detail, report, its priors through it, DICOMweb) and audits each read
naming the grant; it never puts the study on their worklist or lets them claim it, and
another NORTH study stays absent. Ending the grant closes it all again.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, add_patient, add_study, audit_rows, bearer
from tests.claims.conftest import add_report
from worklist.config import Settings
from worklist.enums import AuditAction, ReportStatus, Role
from worklist.models import Site, StudyGrant, User
from worklist.studies.grants import GrantReason

OPINION_ID = 41


@dataclass
class World:
    """The granted study, a prior of the same patient, another study of the same trust."""

    headers: dict[str, str]
    reader_id: int
    granted: str
    granted_id: int
    prior: str
    other: str


@pytest.fixture
def world(db: sessionmaker[Session], settings: Settings, sites: dict[str, Site]) -> World:
    with db() as session, session.begin():
        north = session.merge(sites[NORTH])
        south = session.merge(sites[SOUTH])
        author = User(username="north.rad", password_hash="!", role=Role.RADIOLOGIST, sites=[north])
        reader = User(username="south.rad", password_hash="!", role=Role.RADIOLOGIST, sites=[south])
        session.add_all([author, reader])
        session.flush()
        patient = add_patient(session, north, nhs_number="9434765919")
        granted = add_study(session, patient)
        prior = add_study(session, patient, description="CT HEAD (2019)")
        other = add_study(session, add_patient(session, north))
        add_report(session, granted, author.id, ReportStatus.FINAL)
        add_report(session, prior, author.id, ReportStatus.FINAL)
        return World(
            headers=bearer(settings, reader),
            reader_id=reader.id,
            granted=granted.study_uid,
            granted_id=granted.id,
            prior=prior.study_uid,
            other=other.study_uid,
        )


def _grant(db: sessionmaker[Session], world: World) -> None:
    with db() as session, session.begin():
        session.add(
            StudyGrant(
                user_id=world.reader_id,
                study_id=world.granted_id,
                reason=GrantReason.SECOND_OPINION.value,
                reason_id=OPINION_ID,
            )
        )


def _end(db: sessionmaker[Session]) -> None:
    with db() as session, session.begin():
        session.query(StudyGrant).delete()


def _reads(client: TestClient, world: World) -> dict[str, int]:
    def get(url: str) -> int:
        return client.get(url, headers=world.headers).status_code

    return {
        "study": get(f"/api/v1/studies/{world.granted}"),
        "report": get(f"/api/v1/studies/{world.granted}/report"),
        "prior": get(f"/api/v1/studies/{world.granted}/priors/{world.prior}"),
        "prior report": get(f"/api/v1/studies/{world.granted}/priors/{world.prior}/report"),
        "qido": get(f"/dicomweb/studies?StudyInstanceUID={world.granted}"),
        "other study": get(f"/api/v1/studies/{world.other}"),
        "prior directly": get(f"/api/v1/studies/{world.prior}"),
    }


def test_without_a_grant_the_other_trust_is_absent(client: TestClient, world: World) -> None:
    reads = _reads(client, world)

    assert reads == dict.fromkeys(reads, 404) | {"qido": 200}
    qido = client.get(f"/dicomweb/studies?StudyInstanceUID={world.granted}", headers=world.headers)
    assert qido.json() == []


def test_a_grant_opens_the_study_and_its_priors_only(
    client: TestClient, db: sessionmaker[Session], world: World
) -> None:
    _grant(db, world)

    reads = _reads(client, world)

    assert reads == {
        "study": 200,
        "report": 200,
        "prior": 200,
        "prior report": 200,
        "qido": 200,
        "other study": 404,
        "prior directly": 404,
    }
    qido = client.get(f"/dicomweb/studies?StudyInstanceUID={world.granted}", headers=world.headers)
    assert len(qido.json()) == 1


def test_a_grant_never_puts_the_study_on_the_worklist_nor_lets_it_be_claimed(
    client: TestClient, db: sessionmaker[Session], world: World
) -> None:
    _grant(db, world)

    worklist = client.get(f"/api/v1/worklist?site={NORTH}", headers=world.headers)
    claim = client.post(f"/api/v1/studies/{world.granted}/claim", headers=world.headers)
    draft = client.put(
        f"/api/v1/studies/{world.granted}/report", headers=world.headers, json={"text": "Mine."}
    )
    taken = client.post("/api/v1/worklist/next", headers=world.headers)

    assert worklist.status_code == 200
    assert worklist.json()["items"] == []
    assert claim.status_code == 404
    assert draft.status_code == 404
    assert taken.status_code == 204


def test_reads_through_a_grant_are_audited_naming_it(
    client: TestClient, db: sessionmaker[Session], world: World
) -> None:
    _grant(db, world)
    _reads(client, world)

    named = {"reason": "second_opinion", "id": OPINION_ID}
    for action in (AuditAction.STUDY_VIEW, AuditAction.REPORT_VIEW, AuditAction.PRIOR_VIEW):
        rows = [row for row in audit_rows(db, action) if row.actor == "south.rad"]
        assert rows, action
        assert all(row.detail.get("grant") == named for row in rows), action
    queried = [r for r in audit_rows(db, AuditAction.STUDY_QUERIED) if r.actor == "south.rad"]
    assert queried[-1].detail["grants"] == {world.granted: named}


def test_ending_the_grant_closes_everything_it_opened(
    client: TestClient, db: sessionmaker[Session], world: World
) -> None:
    _grant(db, world)
    assert _reads(client, world)["study"] == 200

    _end(db)

    reads = _reads(client, world)
    assert reads == dict.fromkeys(reads, 404) | {"qido": 200}
