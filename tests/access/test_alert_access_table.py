"""The alert endpoints x every role x own site / other site: the status each cell must answer.

State of every cell: two trusts, NORTH (the callers' own) and SOUTH (the other). Each has
one study claimed by ``holder`` (a radiologist at both), who raised one open alert on it.
An alert the caller may not see answers 404, never 403; the alert stream, an endless
response, is covered by ``tests/alerts/test_stream.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, add_patient, add_site, add_study, bearer
from tests.claims.conftest import add_claim
from tests.conftest import COMMON_SETTINGS, SECRET_KEY
from worklist.app import create_app
from worklist.config import Settings
from worklist.enums import AlertCategory, Role
from worklist.models import Alert, Site, User

OWN, OTHER = "own", "other"
ROLES = ("holder", "radiologist", "manager", "admin", "alert_client")


@dataclass
class World:
    """The callers, and per site the study and its alert."""

    client: TestClient
    users: dict[str, User]
    studies: dict[str, str]
    alerts: dict[str, str]
    settings: Settings


Call = Callable[[World, str, dict[str, str]], int]


def _request(method: str, path: str, **kwargs: object) -> Call:
    def call(world: World, site: str, headers: dict[str, str]) -> int:
        url = path.format(uid=world.studies[site], alert=world.alerts[site])
        response = world.client.request(method, url, headers=headers, **kwargs)  # type: ignore[arg-type]
        status: int = response.status_code
        return status

    return call


ENDPOINTS: dict[str, Call] = {
    "POST alert": _request(
        "POST",
        "/api/v1/studies/{uid}/alerts",
        json={"category": "critical", "finding": "Tension pneumothorax."},
    ),
    "GET alert": _request("GET", "/api/v1/alerts/{alert}"),
    "POST acknowledge": _request(
        "POST", "/api/v1/alerts/{alert}/acknowledge", json={"acknowledged_by": "Dr On Call"}
    ),
}

# (own, other) per endpoint and role.
EXPECTED: dict[str, dict[str, tuple[int, int]]] = {
    "POST alert": {
        "holder": (201, 201),
        "radiologist": (403, 404),  # sees NORTH's study, holds no claim on it
        "manager": (403, 404),
        "admin": (403, 403),
        "alert_client": (404, 404),  # no worklist
    },
    "GET alert": {
        "holder": (200, 200),  # the raiser follows their alerts
        "radiologist": (404, 404),
        "manager": (200, 404),
        "admin": (200, 200),
        "alert_client": (200, 404),
    },
    "POST acknowledge": {
        "holder": (403, 403),
        "radiologist": (404, 404),
        "manager": (200, 404),
        "admin": (403, 403),
        "alert_client": (200, 404),
    },
}

CELLS = [
    (endpoint, role, site, EXPECTED[endpoint][role][0 if site == OWN else 1])
    for endpoint in ENDPOINTS
    for role in ROLES
    for site in (OWN, OTHER)
]


@pytest.fixture(scope="module")
def app_settings(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Settings of the one app every cell calls."""
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path_factory.mktemp("alert-access"),
        secret_key=SECRET_KEY,
        **COMMON_SETTINGS,
    )


@pytest.fixture(scope="module")
def client(app_settings: Settings) -> Iterator[TestClient]:
    """One running app for every cell (each cell gets a clean database)."""
    with TestClient(create_app(app_settings)) as test_client:
        yield test_client


def _user(session: Session, username: str, role: Role, sites: list[Site]) -> User:
    # Tokens are minted directly, so no password hashing is needed (Argon2 is slow).
    user = User(username=username, password_hash="!", role=role, sites=sites)
    session.add(user)
    session.flush()
    return user


@pytest.fixture
def world(db: sessionmaker[Session], app_settings: Settings, client: TestClient) -> World:
    """Fresh state for one cell."""
    now = datetime.now(UTC)
    with db() as session, session.begin():
        sites = {code: add_site(session, code) for code in (NORTH, SOUTH)}
        north, south = sites[NORTH], sites[SOUTH]
        users = {
            "holder": _user(session, "holder", Role.RADIOLOGIST, [north, south]),
            "radiologist": _user(session, "radiologist", Role.RADIOLOGIST, [north]),
            "manager": _user(session, "manager", Role.MANAGER, [north]),
            "admin": _user(session, "admin", Role.ADMIN, []),
            "alert_client": _user(session, "alert_client", Role.ALERT_CLIENT, [north]),
        }
        studies, alerts = {}, {}
        for key, code in ((OWN, NORTH), (OTHER, SOUTH)):
            study = add_study(session, add_patient(session, sites[code]))
            add_claim(
                session,
                study,
                users["holder"].id,
                claimed_at=now,
                expires_at=now + timedelta(minutes=30),
            )
            alert = Alert(
                study_id=study.id,
                site_id=study.site_id,
                category=AlertCategory.URGENT,
                finding="Acute appendicitis.",
                raised_by_id=users["holder"].id,
                ack_due_at=now + timedelta(hours=4),
            )
            session.add(alert)
            session.flush()
            studies[key], alerts[key] = study.study_uid, str(alert.id)
    return World(client=client, users=users, studies=studies, alerts=alerts, settings=app_settings)


@pytest.mark.parametrize(("endpoint", "role", "site", "expected"), CELLS)
def test_alert_access_cell(
    world: World, endpoint: str, role: str, site: str, expected: int
) -> None:
    headers = bearer(world.settings, world.users[role])
    assert ENDPOINTS[endpoint](world, site, headers) == expected
