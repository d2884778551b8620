"""Permission is checked before input: a caller who may not use a route never gets a 422."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, add_patient, add_study, bearer
from worklist.config import Settings
from worklist.enums import AlertCategory, Role
from worklist.models import Alert, Site, User


@dataclass
class World:
    """Users by name, NORTH's study and an alert on it raised by ``rad``."""

    headers: dict[str, dict[str, str]]
    study_uid: str
    alert_id: str


def _user(session: Session, username: str, role: Role, sites: list[Site]) -> User:
    user = User(username=username, password_hash="!", role=role, sites=sites)
    session.add(user)
    session.flush()
    return user


@pytest.fixture
def world(db: sessionmaker[Session], sites: dict[str, Site], settings: Settings) -> World:
    """One user per role at NORTH, a manager at SOUTH, a NORTH study with an alert."""
    people = {
        "rad": (Role.RADIOLOGIST, (NORTH,)),
        "rad_south": (Role.RADIOLOGIST, (SOUTH,)),
        "manager": (Role.MANAGER, (NORTH,)),
        "manager_south": (Role.MANAGER, (SOUTH,)),
        "admin": (Role.ADMIN, ()),
        "alerts": (Role.ALERT_CLIENT, (NORTH,)),
    }
    with db() as session, session.begin():
        # Tokens are minted directly, so no password hashing is needed (Argon2 is slow).
        users = {
            name: _user(session, name, role, [sites[code] for code in codes])
            for name, (role, codes) in people.items()
        }
        study = add_study(session, add_patient(session, sites[NORTH]))
        alert = Alert(
            study_id=study.id,
            site_id=study.site_id,
            category=AlertCategory.URGENT,
            finding="Acute appendicitis.",
            raised_by_id=users["rad"].id,
            ack_due_at=datetime.now(UTC) + timedelta(hours=4),
        )
        session.add(alert)
        session.flush()
        return World(
            headers={name: bearer(settings, user) for name, user in users.items()},
            study_uid=study.study_uid,
            alert_id=str(alert.id),
        )


Call = Callable[[TestClient, World, dict[str, str]], int]


def _call(method: str, path: str, **kwargs: object) -> Call:
    def call(client: TestClient, world: World, headers: dict[str, str]) -> int:
        url = path.format(uid=world.study_uid, alert=world.alert_id, code=NORTH)
        return client.request(method, url, headers=headers, **kwargs).status_code  # type: ignore[arg-type]

    return call


# Each body (or query) is invalid: only callers allowed to use the route may learn that.
INVALID = {
    "PUT webhook": _call("PUT", "/api/v1/sites/{code}/webhook", json={"url": 7}),
    "PATCH study": _call("PATCH", "/api/v1/studies/{uid}", json={"priority": "whenever"}),
    "PUT report": _call("PUT", "/api/v1/studies/{uid}/report", json={"text": 7}),
    "POST finalise": _call("POST", "/api/v1/studies/{uid}/report/finalise", json={"version": 0}),
    "POST alert": _call("POST", "/api/v1/studies/{uid}/alerts", json={"category": "meh"}),
    "POST acknowledge": _call("POST", "/api/v1/alerts/{alert}/acknowledge", json={}),
    "GET worklist": _call("GET", "/api/v1/worklist?limit=0"),
    "POST worklist/next": _call("POST", "/api/v1/worklist/next?priority=whenever"),
    "GET audit": _call("GET", "/api/v1/audit?since=yesterday"),
}

EXPECTED = [
    ("PUT webhook", "rad", 403),
    ("PUT webhook", "alerts", 403),
    ("PUT webhook", "manager_south", 404),  # another trust's site is not there
    ("PUT webhook", "manager", 422),
    ("PUT webhook", "admin", 422),
    ("PATCH study", "rad", 403),
    ("PATCH study", "rad_south", 404),  # a study the caller cannot see is absent
    ("PATCH study", "alerts", 404),
    ("PATCH study", "manager", 422),
    ("PUT report", "manager", 403),
    ("PUT report", "admin", 403),
    ("PUT report", "manager_south", 404),
    ("PUT report", "rad", 422),
    ("POST finalise", "admin", 403),
    ("POST finalise", "rad", 422),
    ("POST alert", "admin", 403),
    ("POST alert", "rad_south", 404),
    ("POST alert", "rad", 422),
    ("POST acknowledge", "rad_south", 404),
    ("POST acknowledge", "admin", 403),  # sees every alert, receives none
    ("POST acknowledge", "rad", 403),  # follows the alert they raised
    ("POST acknowledge", "manager_south", 404),
    ("POST acknowledge", "alerts", 422),
    ("GET worklist", "alerts", 403),
    ("GET worklist", "rad", 422),
    ("POST worklist/next", "manager", 403),
    ("POST worklist/next", "rad", 422),
    ("GET audit", "rad", 403),
    ("GET audit", "admin", 422),
]


@pytest.mark.parametrize(("endpoint", "who", "expected"), EXPECTED)
def test_refused_callers_are_refused_whatever_they_send(
    client: TestClient, world: World, endpoint: str, who: str, expected: int
) -> None:
    assert INVALID[endpoint](client, world, world.headers[who]) == expected


@pytest.mark.parametrize("endpoint", sorted(INVALID))
def test_an_invalid_request_without_a_token_is_401(
    client: TestClient, world: World, endpoint: str
) -> None:
    assert INVALID[endpoint](client, world, {}) == 401


def test_an_unknown_alert_is_404_before_its_body_is_read(client: TestClient, world: World) -> None:
    response = client.post(
        f"/api/v1/alerts/{uuid.uuid4()}/acknowledge", json={}, headers=world.headers["alerts"]
    )

    assert response.status_code == 404
