"""Double-reading test helpers: a network of radiologists, studies reported through the API,
rules set by a manager, and a deterministic peer-review draw."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import (
    NORTH,
    SOUTH,
    add_patient,
    add_series,
    add_site,
    add_study,
    bearer,
    client,
)
from tests.claims.conftest import add_account
from tests.events.conftest import LiveApi, live_api
from tests.reports.conftest import add_claim
from worklist.config import Settings
from worklist.doubleread.rules import DRAW_KEY
from worklist.enums import Role
from worklist.models import DoubleRead, Patient, Site, Study, Subspecialty, User

__all__ = ["LiveApi", "client", "live_api"]

EAST = "EAST"
FIRST = "dr.first"  # NORTH, employed by NORTH: writes the first reports
SECOND = "dr.second"  # NORTH, employed by NORTH
THIRD = "dr.third"  # NORTH, employed by NORTH
VISITOR = "dr.visitor"  # privileges at SOUTH only, employed by SOUTH
BOTH = "dr.both"  # NORTH and SOUTH, employed by SOUTH
MANAGER = "north.manager"
SOUTH_MANAGER = "south.manager"
ADMIN = "net.admin"
ALERTS = "north.alerts"
FIRST_REPORT = "Spiculate 14 mm mass, upper outer quadrant left breast. BI-RADS 5."

PEOPLE: dict[str, tuple[Role, tuple[str, ...], str | None]] = {
    FIRST: (Role.RADIOLOGIST, (NORTH,), NORTH),
    SECOND: (Role.RADIOLOGIST, (NORTH,), NORTH),
    THIRD: (Role.RADIOLOGIST, (NORTH,), NORTH),
    VISITOR: (Role.RADIOLOGIST, (SOUTH,), SOUTH),
    BOTH: (Role.RADIOLOGIST, (NORTH, SOUTH), SOUTH),
    MANAGER: (Role.MANAGER, (NORTH,), None),
    SOUTH_MANAGER: (Role.MANAGER, (SOUTH,), None),
    ADMIN: (Role.ADMIN, (), None),
    ALERTS: (Role.ALERT_CLIENT, (NORTH,), None),
}


def rules_url(code: str = NORTH) -> str:
    """A site's double-reading rules."""
    return f"/api/v1/sites/{code}/double-reading"


@dataclass
class Network:
    """NORTH, SOUTH and EAST, the cast of ``PEOPLE``, and an API client to act as any of them."""

    client: TestClient
    db: sessionmaker[Session]
    sites: dict[str, Site]
    ids: dict[str, int]
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def send(self, method: str, who: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request as ``who``."""
        response: httpx.Response = self.client.request(
            method, url, headers=self.headers[who], **kwargs
        )
        return response

    def set_rules(self, *rules: dict[str, Any], code: str = NORTH) -> None:
        """Replace ``code``'s rules as an admin."""
        response = self.send("PUT", ADMIN, rules_url(code), json=list(rules))
        assert response.status_code == 200, response.text

    def draw(self, value: float) -> None:
        """Make every later peer-review draw of the API return ``value``."""
        self.client.app.state.sessionmaker.configure(info={DRAW_KEY: lambda: value})  # type: ignore[attr-defined]

    def add_study(self, code: str = NORTH, *, patient_of: str | None = None, **fields: Any) -> str:
        """A ready study at ``code`` (of the patient of study ``patient_of``); its UID."""
        with self.db() as session, session.begin():
            if patient_of is not None:
                other = session.scalars(select(Study).where(Study.study_uid == patient_of)).one()
                patient = session.get_one(Patient, other.patient_id)
            else:
                site = session.scalars(select(Site).where(Site.code == code)).one()
                patient = add_patient(session, site)
            study = add_study(session, patient, **fields)
            add_series(session, study, number=1)
            return study.study_uid

    def report(self, study_uid: str, who: str = FIRST, text: str = FIRST_REPORT) -> None:
        """``who`` claims, drafts and signs the study's report."""
        with self.db() as session, session.begin():
            study = session.scalars(select(Study).where(Study.study_uid == study_uid)).one()
            add_claim(session, study, session.get_one(User, self.ids[who]))
        url = f"/api/v1/studies/{study_uid}/report"
        saved = self.send("PUT", who, url, json={"text": text})
        assert saved.status_code == 200, saved.text
        signed = self.send(
            "POST", who, f"{url}/finalise", json={"version": saved.json()["version"]}
        )
        assert signed.status_code == 200, signed.text

    def reads(self, study_uid: str | None = None) -> list[DoubleRead]:
        """The committed reads (of one study), oldest first."""
        with self.db() as session:
            stmt = select(DoubleRead).order_by(DoubleRead.id)
            if study_uid is not None:
                stmt = stmt.join(Study, Study.id == DoubleRead.study_id).where(
                    Study.study_uid == study_uid
                )
            return list(session.scalars(stmt))

    def read_of(self, study_uid: str) -> int:
        """The id of the study's one read."""
        reads = self.reads(study_uid)
        assert len(reads) == 1, reads
        return reads[0].id

    def claim(self, who: str, read_id: int) -> httpx.Response:
        """Claim a read as ``who``."""
        return self.send("POST", who, f"/api/v1/double-reads/{read_id}/claim")

    def submit(self, who: str, read_id: int, score: str, text: str = "") -> httpx.Response:
        """Submit a read as ``who``."""
        body = {"score": score, "text": text}
        return self.send("POST", who, f"/api/v1/double-reads/{read_id}/submit", json=body)

    def queue(self, who: str) -> list[dict[str, Any]]:
        """The reads ``who`` sees."""
        response = self.send("GET", who, "/api/v1/double-reads")
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()
        return items


def add_people(session: Session, sites: dict[str, Site]) -> dict[str, User]:
    """The cast of ``PEOPLE`` (no passwords: bearer tokens only)."""
    users = {}
    for name, (role, codes, home) in PEOPLE.items():
        user = add_account(session, name, role, *codes)
        user.home_site_id = sites[home].id if home else None
        users[name] = user
    session.flush()
    return users


def add_subspecialties(session: Session, *codes: str) -> None:
    """Make sure the vocabulary has ``codes`` (the migration seeds them; a reset may not)."""
    rows = [{"code": code, "name": code} for code in codes]
    session.execute(insert(Subspecialty).values(rows).on_conflict_do_nothing())


@pytest.fixture
def network(client: TestClient, db: sessionmaker[Session], settings: Settings) -> Iterator[Network]:
    """Three trusts and the cast; the peer-review draw is left random unless a test sets it."""
    with db() as session, session.begin():
        sites = {code: add_site(session, code) for code in (NORTH, SOUTH, EAST)}
        users = add_people(session, sites)
        add_subspecialties(session, "breast", "neuro")
    return Network(
        client=client,
        db=db,
        sites=sites,
        ids={name: user.id for name, user in users.items()},
        headers={name: bearer(settings, user) for name, user in users.items()},
    )


@pytest.fixture
def settings_redis(settings: Settings, db: sessionmaker[Session]) -> Iterator[redis.Redis]:
    """A client of the Redis database the API publishes its events to."""
    client = redis.Redis.from_url(settings.require_redis_url())
    yield client
    client.close()
