"""API test helpers: factories that flush (tests commit), a live app client, tokens."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import TEST_PASSWORD_COST
from tests.factories import new_site, new_user
from worklist.app import create_app
from worklist.auth.passwords import hash_password
from worklist.auth.tokens import issue_access_token
from worklist.config import Settings
from worklist.enums import Priority, Role, StudyStatus
from worklist.models import AuditEvent, Patient, Series, Site, Study, User
from worklist.synthetic import UID_ROOT

PASSWORD = "correct-horse-battery"
T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
# /metrics answers loopback clients only (no token configured); TestClient's default is a name.
LOOPBACK_CLIENT = ("127.0.0.1", 50000)
NORTH = "NORTH"
SOUTH = "SOUTH"

_uids = itertools.count(1)


def new_uid() -> str:
    """A fresh, valid DICOM UID."""
    return f"{UID_ROOT}{next(_uids)}"


def add_site(session: Session, code: str) -> Site:
    """Register a trust with one PACS node."""
    return new_site(session, code)


def add_user(session: Session, username: str, role: Role, *site_codes: str) -> User:
    """Create a user with the shared test password."""
    password_hash = hash_password(PASSWORD, cost=TEST_PASSWORD_COST)
    return new_user(session, username, role, *site_codes, password_hash=password_hash)


def add_patient(
    session: Session,
    site: Site,
    *,
    local_id: str | None = None,
    name: str = "DOE^JANE",
    nhs_number: str | None = None,
    birth_date: date | None = date(1970, 1, 1),
    sex: str | None = "F",
) -> Patient:
    """Insert a patient of ``site``."""
    patient = Patient(
        site_id=site.id,
        local_id=local_id or f"L{next(_uids)}",
        name=name,
        nhs_number=nhs_number,
        birth_date=birth_date,
        sex=sex,
    )
    session.add(patient)
    session.flush()
    return patient


def add_study(
    session: Session,
    patient: Patient,
    *,
    status: StudyStatus = StudyStatus.READY,
    priority: Priority = Priority.ROUTINE,
    due_at: datetime | None = None,
    received_at: datetime = T0,
    **fields: Any,
) -> Study:
    """Insert a study of ``patient`` at the patient's site."""
    values: dict[str, Any] = {
        "study_uid": new_uid(),
        "accession_number": f"ACC{next(_uids)}",
        "description": "CT HEAD",
        "modalities": ["CT"],
        "study_datetime": received_at - timedelta(minutes=30),
        "series_count": 1,
        "instance_count": 10,
        "flags": [],
    }
    values.update(fields)
    study = Study(
        site_id=patient.site_id,
        patient_id=patient.id,
        status=status,
        priority=priority,
        due_at=due_at or received_at + timedelta(days=7),
        received_at=received_at,
        last_instance_at=received_at,
        **values,
    )
    session.add(study)
    session.flush()
    return study


def add_series(
    session: Session, study: Study, *, number: int | None, modality: str = "CT", **fields: Any
) -> Series:
    """Insert a series of ``study``."""
    series = Series(
        study_id=study.id, series_uid=new_uid(), number=number, modality=modality, **fields
    )
    session.add(series)
    session.flush()
    return series


def audit_rows(db: sessionmaker[Session], action: str) -> list[AuditEvent]:
    """The committed audit rows of one action, oldest first."""
    with db() as session:
        stmt = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list(session.scalars(stmt))


def token_headers(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    """Log in through the API and return the Authorization header."""
    response = client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def bearer(settings: Settings, user: User) -> dict[str, str]:
    """An Authorization header for ``user`` without a login (Argon2 is slow; auth tests log in)."""
    issued = issue_access_token(
        signing_key=settings.resolved_secret_key(),
        username=user.username,
        role=user.role,
        lifetime=timedelta(minutes=5),
    )
    return {"Authorization": f"Bearer {issued.access_token}"}


@pytest.fixture
def client(settings: Settings, db: sessionmaker[Session]) -> Iterator[TestClient]:
    """A running app (lifespan included) on a clean database."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def loopback_client(settings: Settings, db: sessionmaker[Session]) -> Iterator[TestClient]:
    """A running app on a clean database, called from 127.0.0.1 (as a local scraper is)."""
    with TestClient(create_app(settings), client=LOOPBACK_CLIENT) as test_client:
        yield test_client


@pytest.fixture
def sites(db: sessionmaker[Session]) -> dict[str, Site]:
    """Two trusts: NORTH and SOUTH."""
    with db() as session, session.begin():
        return {code: add_site(session, code) for code in (NORTH, SOUTH)}
