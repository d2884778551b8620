"""Second opinion fixtures: two trusts, a study at NORTH its claim holder asks about, and
radiologists of both trusts with and without the subspecialty asked for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, add_patient, add_study, bearer, client, sites
from tests.claims.conftest import add_account, add_claim, add_report
from worklist.config import Settings
from worklist.enums import ReportStatus, Role
from worklist.models import SecondOpinion, Site, Study, Subspecialty, User

__all__ = ["client", "sites"]

# username: role, sites, subspecialties
PEOPLE: dict[str, tuple[Role, tuple[str, ...], tuple[str, ...]]] = {
    "asker": (Role.RADIOLOGIST, (NORTH,), ()),
    "author": (Role.RADIOLOGIST, (NORTH,), ()),
    "colleague": (Role.RADIOLOGIST, (NORTH,), ()),
    "neuro_south": (Role.RADIOLOGIST, (SOUTH,), ("neuro",)),
    "chest_south": (Role.RADIOLOGIST, (SOUTH,), ("chest",)),
    "manager_north": (Role.MANAGER, (NORTH,), ()),
    "manager_south": (Role.MANAGER, (SOUTH,), ()),
    "admin": (Role.ADMIN, (), ()),
    "alert_north": (Role.ALERT_CLIENT, (NORTH,), ()),
}
QUESTION = "? subtle left MCA territory infarct: please review the DWI"


@dataclass
class Network:
    """Bearer headers and ids by username; the NORTH study ``asker`` holds the claim on,
    and the NORTH study ``author`` signed the report of."""

    headers: dict[str, dict[str, str]]
    ids: dict[str, int]
    study_uid: str
    reported_uid: str
    settings: Settings

    def __getitem__(self, username: str) -> dict[str, str]:
        return self.headers[username]


def add_people(
    session: Session, people: dict[str, tuple[Role, tuple[str, ...], tuple[str, ...]]]
) -> dict[str, User]:
    """Accounts (bearer tokens only) with their sites and subspecialties."""
    users = {}
    for name, (role, codes, subspecialties) in people.items():
        user = add_account(session, name, role, *codes)
        user.subspecialties = list(subspecialties)
        users[name] = user
    session.flush()
    return users


def add_subspecialties(session: Session, *codes: str) -> None:
    """Codes of the vocabulary (the migration's defaults are emptied with every table)."""
    session.execute(
        insert(Subspecialty)
        .values([{"code": code, "name": code.title()} for code in codes])
        .on_conflict_do_nothing()
    )


@pytest.fixture
def network(db: sessionmaker[Session], sites: dict[str, Site], settings: Settings) -> Network:
    """The people of ``PEOPLE``; a claimed NORTH study and a reported NORTH study."""
    now = datetime.now(UTC)
    with db() as session, session.begin():
        add_subspecialties(session, "neuro", "chest")
        users = add_people(session, PEOPLE)
        patient = add_patient(session, sites[NORTH])
        study = add_study(session, patient, description="MR HEAD", modalities=["MR"])
        add_claim(
            session,
            study,
            users["asker"].id,
            claimed_at=now,
            expires_at=now + timedelta(hours=1),
        )
        reported = add_study(session, patient, description="CT HEAD")
        add_report(session, reported, users["author"].id, ReportStatus.FINAL)
    return Network(
        headers={name: bearer(settings, user) for name, user in users.items()},
        ids={name: user.id for name, user in users.items()},
        study_uid=study.study_uid,
        reported_uid=reported.study_uid,
        settings=settings,
    )


def ask(
    http: TestClient | httpx.Client,
    headers: dict[str, str],
    study_uid: str,
    **fields: Any,
) -> httpx.Response:
    """POST a second opinion request (``question`` and ``urgency`` defaulted)."""
    body = {"question": QUESTION, "urgency": "routine", **fields}
    return http.post(f"/api/v1/studies/{study_uid}/second-opinions", json=body, headers=headers)


def asked(
    http: TestClient | httpx.Client, headers: dict[str, str], study_uid: str, **fields: Any
) -> int:
    """Ask, expect 201, return the request's id."""
    response = ask(http, headers, study_uid, **fields)
    assert response.status_code == 201, response.text
    opinion_id: int = response.json()["id"]
    return opinion_id


def opinion_row(db: sessionmaker[Session], opinion_id: int) -> SecondOpinion:
    """The committed request."""
    with db() as session:
        return session.scalars(select(SecondOpinion).where(SecondOpinion.id == opinion_id)).one()


def study_flags(db: sessionmaker[Session], study_uid: str) -> list[str]:
    """The committed flags of a study."""
    with db() as session:
        return list(session.scalars(select(Study.flags).where(Study.study_uid == study_uid)).one())
