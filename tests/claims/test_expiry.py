"""Lease expiry (worker job ``expire_claims``) and renewal (claims again, ``renew_claim``).

No test waits for a lease to run out: the job runs at a given ``now``, or the claim is
moved into the database clock's past, as if its time had passed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, add_patient, add_study, audit_rows
from tests.claims.conftest import Staff, add_claim, claim_row, study_status
from tests.conftest import run_committed, run_jobs
from worklist.app import create_app
from worklist.claims.repository import ExpiredClaim
from worklist.claims.service import ClaimNotHeld, renew_claim
from worklist.config import Settings
from worklist.db import make_async_engine, make_async_sessionmaker
from worklist.enums import AuditAction, StudyStatus
from worklist.events import EventType, WorklistEvent, staged
from worklist.models import Claim, Site, Study
from worklist.worker import JOBS, expire_claims

SHORT_LEASE_SECONDS = 1.0


@pytest.fixture
def short_lease(settings: Settings, db: sessionmaker[Session]) -> Iterator[TestClient]:
    """The API with a one-second claim lease."""
    app = create_app(settings.model_copy(update={"claim_lease_seconds": SHORT_LEASE_SECONDS}))
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def north_uid(db: sessionmaker[Session], sites: dict[str, Site]) -> str:
    """A ready study at NORTH."""
    with db() as session, session.begin():
        return add_study(session, add_patient(session, sites[NORTH])).study_uid


def claim(client: TestClient, study_uid: str, headers: dict[str, str]) -> datetime:
    """Claim the study; its lease's expiry."""
    response = client.post(f"/api/v1/studies/{study_uid}/claim", headers=headers)
    assert response.status_code == 200, response.text
    return datetime.fromisoformat(response.json()["expires_at"])


def age_claim(db: sessionmaker[Session], study_uid: str, by: timedelta | None = None) -> datetime:
    """Move the study's claim back in time by ``by`` (default: until its lease ran out a
    moment ago by the database clock), as if it had been taken that much earlier; its new
    expiry."""
    with db() as session, session.begin():
        held = session.scalars(
            select(Claim)
            .join(Study, Study.id == Claim.study_id)
            .where(Study.study_uid == study_uid)
        ).one()
        if by is None:
            database_now = session.scalars(select(func.now())).one()
            by = held.expires_at - database_now + timedelta(milliseconds=1)
        held.claimed_at -= by
        held.expires_at -= by
        return held.expires_at


def listed_claims(client: TestClient, headers: dict[str, str]) -> dict[str, object]:
    """The worklist's claim column by study UID."""
    response = client.get("/api/v1/worklist", headers=headers)
    assert response.status_code == 200, response.text
    return {item["study_uid"]: item["claim"] for item in response.json()["items"]}


def _expire(
    database_url: str, now: datetime | None = None
) -> tuple[list[ExpiredClaim], list[WorklistEvent]]:
    async def work(session: AsyncSession) -> tuple[list[ExpiredClaim], list[WorklistEvent]]:
        return await expire_claims(session, now=now), staged(session)

    return run_committed(database_url, work)


def _expired(database_url: str, now: datetime | None = None) -> list[ExpiredClaim]:
    return _expire(database_url, now)[0]


def test_expired_claim_returns_the_study_to_the_worklist(
    short_lease: TestClient,
    db: sessionmaker[Session],
    database_url: str,
    staff: Staff,
    north_uid: str,
) -> None:
    expires_at = claim(short_lease, north_uid, staff["rad_north"])
    assert _expired(database_url, expires_at - timedelta(seconds=1)) == []

    [expired], events = _expire(database_url, expires_at + timedelta(seconds=1))

    assert (expired.study_uid, expired.username) == (north_uid, "rad_north")
    assert expired.returned_to_worklist
    assert claim_row(db, north_uid) is None
    assert study_status(db, north_uid) is StudyStatus.READY
    assert [(e.type, e.study_uid, e.data["reason"]) for e in events] == [
        (EventType.STUDY_RELEASED, north_uid, "expired")
    ]
    [row] = audit_rows(db, AuditAction.CLAIM_EXPIRED)
    assert (row.study_uid, row.detail["holder"]) == (north_uid, "rad_north")
    assert listed_claims(short_lease, staff["rad_north2"]) == {north_uid: None}
    next_case = short_lease.post("/api/v1/worklist/next", headers=staff["rad_north2"])
    assert next_case.json()["study"]["study_uid"] == north_uid


def test_expiry_follows_the_database_clock(
    client: TestClient,
    db: sessionmaker[Session],
    database_url: str,
    staff: Staff,
    north_uid: str,
) -> None:
    claim(client, north_uid, staff["rad_north"])
    assert _expired(database_url) == []

    age_claim(db, north_uid)
    assert [e.study_uid for e in _expired(database_url)] == [north_uid]


def test_lapsed_claim_disappears_from_the_worklist_before_the_job_runs(
    client: TestClient, db: sessionmaker[Session], staff: Staff, north_uid: str
) -> None:
    claim(client, north_uid, staff["rad_north"])
    assert listed_claims(client, staff["rad_north2"])[north_uid] is not None

    age_claim(db, north_uid)

    assert listed_claims(client, staff["rad_north2"]) == {north_uid: None}
    assert claim_row(db, north_uid) is not None  # still there: the job has not run


def test_renewal_before_expiry_keeps_the_claim(
    client: TestClient,
    db: sessionmaker[Session],
    database_url: str,
    staff: Staff,
    north_uid: str,
) -> None:
    claim(client, north_uid, staff["rad_north"])
    # Taken ten minutes ago: its lease (30 minutes) still runs.
    first_expiry = age_claim(db, north_uid, by=timedelta(minutes=10))

    renewed_expiry = claim(client, north_uid, staff["rad_north"])
    expired = _expired(database_url, first_expiry + timedelta(milliseconds=250))

    assert renewed_expiry >= first_expiry + timedelta(minutes=10)
    assert expired == []
    assert study_status(db, north_uid) is StudyStatus.IN_PROGRESS
    held = claim_row(db, north_uid)
    assert held is not None
    assert held[1] == "rad_north"


def test_expiry_leaves_a_study_that_is_no_longer_in_progress_alone(
    db: sessionmaker[Session], database_url: str, sites: dict[str, Site], staff: Staff
) -> None:
    with db() as session, session.begin():
        study = add_study(session, add_patient(session, sites[NORTH]))
        lapsed = add_claim(
            session,
            study,
            staff.ids["rad_north"],
            claimed_at=datetime.now(UTC) - timedelta(hours=1),
            expires_at=datetime.now(UTC) - timedelta(minutes=1),
        )
        study.status = StudyStatus.REPORTED
        uid, expires_at = study.study_uid, lapsed.expires_at

    [expired] = _expired(database_url)

    assert expired.expires_at == expires_at
    assert not expired.returned_to_worklist
    assert study_status(db, uid) is StudyStatus.REPORTED


def test_expiry_skips_a_study_locked_by_a_request_in_flight(
    short_lease: TestClient,
    db: sessionmaker[Session],
    database_url: str,
    staff: Staff,
    north_uid: str,
) -> None:
    expires_at = claim(short_lease, north_uid, staff["rad_north"])
    later = expires_at + timedelta(seconds=1)

    with db() as holder, holder.begin():
        holder.execute(
            text("SELECT id FROM studies WHERE study_uid = :uid FOR UPDATE"), {"uid": north_uid}
        )
        assert _expired(database_url, later) == []

    assert [e.study_uid for e in _expired(database_url, later)] == [north_uid]


def test_the_worker_runs_expiry_as_a_job(
    db: sessionmaker[Session], sites: dict[str, Site], staff: Staff, settings: Settings
) -> None:
    with db() as session, session.begin():
        study = add_study(session, add_patient(session, sites[NORTH]))
        add_claim(
            session,
            study,
            staff.ids["rad_north"],
            claimed_at=datetime.now(UTC) - timedelta(hours=1),
            expires_at=datetime.now(UTC) - timedelta(minutes=1),
        )

    done = run_jobs(settings, JOBS)

    assert done["expire_claims"] == 1
    assert study_status(db, study.study_uid) is StudyStatus.READY


def _renew(settings: Settings, study_id: int, user_id: int) -> datetime:
    async def go() -> datetime:
        engine = make_async_engine(settings.require_database_url())
        try:
            async with make_async_sessionmaker(engine)() as session, session.begin():
                claim = await renew_claim(
                    session, study_id=study_id, user_id=user_id, lease_seconds=600
                )
                return claim.expires_at
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_renew_claim_extends_the_holders_lease_and_refuses_anyone_else(
    short_lease: TestClient,
    db: sessionmaker[Session],
    staff: Staff,
    north_uid: str,
    settings: Settings,
) -> None:
    first_expiry = claim(short_lease, north_uid, staff["rad_north"])
    with db() as session:
        study_id = session.scalars(select(Study.id).where(Study.study_uid == north_uid)).one()

    renewed = _renew(settings, study_id, staff.ids["rad_north"])

    assert renewed >= first_expiry + timedelta(seconds=500)
    with db() as session:
        stored = session.scalars(select(Claim.expires_at).where(Claim.study_id == study_id)).one()
    assert stored == renewed
    with pytest.raises(ClaimNotHeld):
        _renew(settings, study_id, staff.ids["rad_north2"])
    assert [r.actor for r in audit_rows(db, AuditAction.CLAIM_RENEWED)] == ["rad_north"]
