"""``worklist/next`` keeps a patient together: their other unreported studies, at every trust
the reader reports for, are claimed with the first, released with it and renewed with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from tests.allocation.conftest import claims_of
from tests.api.conftest import NORTH, SOUTH, T0, add_patient, add_study, audit_rows
from tests.claims.conftest import Staff, add_claim, add_expired_claim, study_status
from tests.conftest import run_committed
from worklist.claims.repository import ExpiredClaim
from worklist.claims.service import renew_claim
from worklist.config import Settings
from worklist.enums import AuditAction, StudyStatus
from worklist.identity import make_nhs_number
from worklist.models import Claim, Site, Study
from worklist.worker import expire_claims

NEXT = "/api/v1/worklist/next"


def claim_url(uid: str) -> str:
    return f"/api/v1/studies/{uid}/claim"


def test_next_claims_the_patients_other_unreported_studies_at_every_visible_trust(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    nhs = make_nhs_number(1234)
    now = datetime.now(UTC)
    with db() as session, session.begin():
        north = add_patient(session, sites[NORTH], nhs_number=nhs)
        south = add_patient(session, sites[SOUTH], nhs_number=nhs)
        first = add_study(session, north, due_at=T0)
        same_row = add_study(session, north, due_at=T0 + timedelta(days=5))
        other_trust = add_study(session, south, due_at=T0 + timedelta(days=9))
        lapsed = add_study(session, south, due_at=T0 + timedelta(days=7))
        add_expired_claim(session, lapsed, staff.ids["rad_north"])
        left = {
            "reported": add_study(session, north, status=StudyStatus.REPORTED),
            "receiving": add_study(session, north, status=StudyStatus.RECEIVING),
            "held": add_study(session, south),
            "another patient": add_study(session, add_patient(session, sites[NORTH])),
        }
        add_claim(
            session,
            left["held"],
            staff.ids["rad_north"],
            claimed_at=now,
            expires_at=now + timedelta(hours=1),
        )

    response = client.post(NEXT, headers=staff["rad_both"])

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["study"]["study_uid"] == first.study_uid
    grouped = [same_row.study_uid, other_trust.study_uid, lapsed.study_uid]
    assert body["also_claimed"] == sorted(grouped, key=lambda uid: int(uid.rsplit(".", 1)[1]))
    with db() as session:
        claims = claims_of(session)
    rad_both = staff.ids["rad_both"]
    assert {uid: claims[uid] for uid in grouped} == dict.fromkeys(
        grouped, (rad_both, first.study_uid)
    )
    assert claims[first.study_uid] == (rad_both, None)
    assert claims[left["held"].study_uid][0] == staff.ids["rad_north"]
    for name, study in left.items():
        if name != "held":
            assert study.study_uid not in claims, name
    assert {study_status(db, uid) for uid in grouped} == {StudyStatus.IN_PROGRESS}
    created = audit_rows(db, AuditAction.CLAIM_CREATED)
    assert sorted(r.study_uid for r in created) == sorted([first.study_uid, *grouped])
    assert {r.detail.get("group") for r in created if r.study_uid in grouped} == {first.study_uid}


def test_only_studies_at_trusts_the_reader_sees_come_along(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    nhs = make_nhs_number(4321)
    with db() as session, session.begin():
        first = add_study(session, add_patient(session, sites[NORTH], nhs_number=nhs), due_at=T0)
        south = add_study(session, add_patient(session, sites[SOUTH], nhs_number=nhs))

    response = client.post(NEXT, headers=staff["rad_north"])

    assert response.status_code == 200, response.text
    assert response.json()["also_claimed"] == []
    with db() as session:
        assert south.study_uid not in claims_of(session)
    assert study_status(db, first.study_uid) is StudyStatus.IN_PROGRESS


def test_a_direct_claim_claims_the_study_alone(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    with db() as session, session.begin():
        patient = add_patient(session, sites[NORTH])
        first, other = add_study(session, patient), add_study(session, patient)

    assert client.post(claim_url(first.study_uid), headers=staff["rad_north"]).status_code == 200
    with db() as session:
        assert set(claims_of(session)) == {first.study_uid}
    assert study_status(db, other.study_uid) is StudyStatus.READY


def handed_group(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> tuple[str, list[str]]:
    """rad_north takes a patient with three studies from next: (first, the others)."""
    with db() as session, session.begin():
        patient = add_patient(session, sites[NORTH])
        for hours in (0, 5, 9):
            add_study(session, patient, due_at=T0 + timedelta(hours=hours))
    response = client.post(NEXT, headers=staff["rad_north"])
    assert response.status_code == 200, response.text
    return response.json()["study"]["study_uid"], response.json()["also_claimed"]


def test_releasing_the_first_study_releases_the_group(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    first, others = handed_group(client, db, sites, staff)

    response = client.delete(claim_url(first), headers=staff["rad_north"])

    assert response.status_code == 204, response.text
    with db() as session:
        assert claims_of(session) == {}
    assert {study_status(db, uid) for uid in [first, *others]} == {StudyStatus.READY}
    released = audit_rows(db, AuditAction.CLAIM_RELEASED)
    assert sorted(r.study_uid for r in released) == sorted([first, *others])
    assert {r.detail.get("group") for r in released if r.study_uid in others} == {first}


def test_a_manager_releasing_the_first_study_releases_the_group(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    first, _others = handed_group(client, db, sites, staff)

    assert client.delete(claim_url(first), headers=staff["manager_north"]).status_code == 204

    with db() as session:
        assert claims_of(session) == {}


def test_releasing_a_grouped_study_releases_it_alone(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    first, others = handed_group(client, db, sites, staff)

    assert client.delete(claim_url(others[0]), headers=staff["rad_north"]).status_code == 204

    with db() as session:
        assert set(claims_of(session)) == {first, others[1]}
    assert study_status(db, others[0]) is StudyStatus.READY


def expiries(db: sessionmaker[Session]) -> dict[str, datetime]:
    with db() as session:
        rows = session.execute(
            select(Study.study_uid, Claim.expires_at).join(Claim, Claim.study_id == Study.id)
        )
        return {row.study_uid: row.expires_at for row in rows}


def age_claims(db: sessionmaker[Session], by: timedelta) -> None:
    with db() as session, session.begin():
        for claim in session.scalars(select(Claim)):
            claim.expires_at -= by


def test_renewing_the_first_study_renews_the_group(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    first, others = handed_group(client, db, sites, staff)
    age_claims(db, timedelta(minutes=10))
    before = expiries(db)

    assert client.post(claim_url(first), headers=staff["rad_north"]).status_code == 200

    after = expiries(db)
    assert all(after[uid] > before[uid] for uid in [first, *others])


def test_renewing_a_grouped_study_renews_it_alone(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    first, others = handed_group(client, db, sites, staff)
    age_claims(db, timedelta(minutes=10))
    before = expiries(db)

    assert client.post(claim_url(others[0]), headers=staff["rad_north"]).status_code == 200

    after = expiries(db)
    assert after[others[0]] > before[others[0]]
    assert (after[first], after[others[1]]) == (before[first], before[others[1]])


def test_taking_over_a_lapsed_grouped_study_takes_it_out_of_the_group(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    first, others = handed_group(client, db, sites, staff)
    age_claims(db, timedelta(days=1))

    taken = client.post(claim_url(others[0]), headers=staff["rad_north2"])
    released = client.delete(claim_url(first), headers=staff["rad_north"])

    assert (taken.status_code, released.status_code) == (200, 204), taken.text
    with db() as session:
        assert claims_of(session) == {others[0]: (staff.ids["rad_north2"], None)}


def study_id(db: sessionmaker[Session], uid: str) -> int:
    with db() as session:
        return session.scalars(select(Study.id).where(Study.study_uid == uid)).one()


def test_a_report_save_on_the_first_study_renews_the_group(
    client: TestClient,
    db: sessionmaker[Session],
    database_url: str,
    settings: Settings,
    sites: dict[str, Site],
    staff: Staff,
) -> None:
    first, others = handed_group(client, db, sites, staff)
    age_claims(db, timedelta(minutes=10))
    before = expiries(db)
    first_id, rad_north = study_id(db, first), staff.ids["rad_north"]
    lease = settings.claim_lease_seconds

    async def save(session: AsyncSession) -> None:
        await renew_claim(session, study_id=first_id, user_id=rad_north, lease_seconds=lease)

    run_committed(database_url, save)

    after = expiries(db)
    assert all(after[uid] > before[uid] for uid in [first, *others])


def test_a_groups_leases_run_out_together(
    client: TestClient,
    db: sessionmaker[Session],
    database_url: str,
    sites: dict[str, Site],
    staff: Staff,
) -> None:
    first, others = handed_group(client, db, sites, staff)
    last_expiry = max(expiries(db).values())

    async def expire(session: AsyncSession) -> list[ExpiredClaim]:
        return await expire_claims(session, now=last_expiry + timedelta(seconds=1))

    expired = run_committed(database_url, expire)

    assert sorted(e.study_uid for e in expired) == sorted([first, *others])
    with db() as session:
        assert claims_of(session) == {}
    assert {study_status(db, uid) for uid in [first, *others]} == {StudyStatus.READY}
