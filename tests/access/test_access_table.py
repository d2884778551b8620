"""Every endpoint x every role x own site / other site: the status each cell must answer.

State of every cell: two trusts, NORTH (the callers' own) and SOUTH (the other). Each has
one study, claimed by ``holder`` (a radiologist at both) with a draft report, version 1,
and one radiologist of its own (``{code}.rad``, employed there, privileges only there).
A study or account the caller may not see answers 404, never 403.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, add_patient, add_study, bearer
from tests.claims.conftest import add_claim, add_report
from worklist.app import create_app
from worklist.config import Settings
from worklist.enums import ReportStatus, Role
from worklist.models import ReportVersion, Site, User

OWN, OTHER = "own", "other"


@dataclass
class World:
    """The callers and the two studies of a cell."""

    client: TestClient
    users: dict[str, User]
    studies: dict[str, str]
    settings: Settings


Call = Callable[[World, str, dict[str, str]], int]


def _request(method: str, path: str, **kwargs: object) -> Call:
    def call(world: World, site: str, headers: dict[str, str]) -> int:
        uid = world.studies[site]
        code = NORTH if site == OWN else SOUTH
        url = path.format(uid=uid, code=code, rad=_site_radiologist(code))
        response = world.client.request(method, url, headers=headers, **kwargs)  # type: ignore[arg-type]
        return response.status_code

    return call


def _site_radiologist(code: str) -> str:
    return f"{code.lower()}.rad"


ENDPOINTS: dict[str, Call] = {
    "GET worklist": _request("GET", "/api/v1/worklist?site={code}"),
    "POST worklist/next": _request("POST", "/api/v1/worklist/next?site={code}"),
    "GET study": _request("GET", "/api/v1/studies/{uid}"),
    "PATCH study": _request("PATCH", "/api/v1/studies/{uid}", json={"priority": "stat"}),
    "POST claim": _request("POST", "/api/v1/studies/{uid}/claim"),
    "DELETE claim": _request("DELETE", "/api/v1/studies/{uid}/claim"),
    "GET report": _request("GET", "/api/v1/studies/{uid}/report"),
    "PUT report": _request("PUT", "/api/v1/studies/{uid}/report", json={"text": "Edited."}),
    "POST finalise": _request("POST", "/api/v1/studies/{uid}/report/finalise", json={"version": 1}),
    "POST addenda": _request("POST", "/api/v1/studies/{uid}/report/addenda", json={"text": "Add."}),
    "GET audit": _request("GET", "/api/v1/audit?study_uid={uid}"),
    "GET users": _request("GET", "/api/v1/users?site={code}"),
    "GET allocation": _request("GET", "/api/v1/sites/{code}/allocation"),
    "PATCH allocation": _request("PATCH", "/api/v1/sites/{code}/allocation", json={"cap": 4}),
    "GET user": _request("GET", "/api/v1/users/{rad}"),
    "PATCH user": _request("PATCH", "/api/v1/users/{rad}", json={"name": "Dr Renamed"}),
    "POST user password": _request(
        "POST", "/api/v1/users/{rad}/password", json={"password": "a-new-password"}
    ),
}

ROLES = ("holder", "radiologist", "manager", "admin", "alert_client", "order_client")

# (own, other) per endpoint and role.
EXPECTED: dict[str, dict[str, tuple[int, int]]] = {
    "GET worklist": {
        "holder": (200, 200),
        "radiologist": (200, 200),
        "manager": (200, 200),
        "admin": (200, 200),
        "alert_client": (403, 403),
    },
    "POST worklist/next": {  # every study is claimed: nothing to hand out
        "holder": (204, 204),
        "radiologist": (204, 204),
        "manager": (403, 403),
        "admin": (403, 403),
        "alert_client": (403, 403),
    },
    "GET study": {
        "holder": (200, 200),
        "radiologist": (200, 404),
        "manager": (200, 404),
        "admin": (200, 200),
        "alert_client": (404, 404),
    },
    "PATCH study": {
        "holder": (403, 403),
        "radiologist": (403, 404),
        "manager": (200, 404),
        "admin": (200, 200),
        "alert_client": (404, 404),
    },
    "POST claim": {
        "holder": (200, 200),
        "radiologist": (409, 404),
        "manager": (403, 404),
        "admin": (403, 403),
        "alert_client": (404, 404),
    },
    "DELETE claim": {
        "holder": (204, 204),
        "radiologist": (403, 404),
        "manager": (204, 404),
        "admin": (204, 204),
        "alert_client": (404, 404),
    },
    "GET report": {
        "holder": (200, 200),
        "radiologist": (200, 404),
        "manager": (200, 404),
        "admin": (200, 200),
        "alert_client": (404, 404),
    },
    "PUT report": {
        "holder": (200, 200),
        "radiologist": (403, 404),
        "manager": (403, 404),
        "admin": (403, 403),
        "alert_client": (404, 404),
    },
    "POST finalise": {
        "holder": (200, 200),
        "radiologist": (403, 404),
        "manager": (403, 404),
        "admin": (403, 403),
        "alert_client": (404, 404),
    },
    "POST addenda": {  # the report is a draft: addenda only go on final reports
        "holder": (409, 409),
        "radiologist": (409, 404),
        "manager": (409, 404),
        "admin": (409, 409),
        "alert_client": (404, 404),
    },
    "GET audit": {
        "holder": (403, 403),
        "radiologist": (403, 403),
        "manager": (200, 200),
        "admin": (200, 200),
        "alert_client": (403, 403),
    },
    "GET users": {  # a manager filtering on another site gets an empty list of its own scope
        "holder": (403, 403),
        "radiologist": (403, 403),
        "manager": (200, 200),
        "admin": (200, 200),
        "alert_client": (403, 403),
    },
    "GET allocation": {  # a radiologist reads the settings of the sites they report for
        "holder": (200, 200),
        "radiologist": (200, 404),
        "manager": (200, 404),
        "admin": (200, 200),
        "alert_client": (404, 404),
    },
    "PATCH allocation": {
        "holder": (403, 403),
        "radiologist": (403, 404),
        "manager": (200, 404),
        "admin": (200, 200),
        "alert_client": (404, 404),
    },
    "GET user": {
        "holder": (403, 403),
        "radiologist": (403, 403),
        "manager": (200, 404),
        "admin": (200, 200),
        "alert_client": (403, 403),
    },
    "PATCH user": {
        "holder": (403, 403),
        "radiologist": (403, 403),
        "manager": (200, 404),
        "admin": (200, 200),
        "alert_client": (403, 403),
    },
    "POST user password": {
        "holder": (403, 403),
        "radiologist": (403, 403),
        "manager": (204, 404),
        "admin": (204, 204),
        "alert_client": (403, 403),
    },
}

# An order client (a RIS placing its trust's orders) reaches none of these, as an alert
# client reaches none: its only endpoints are the FHIR ServiceRequest ones.
for cells in EXPECTED.values():
    cells["order_client"] = cells["alert_client"]

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
    from tests.conftest import COMMON_SETTINGS, SECRET_KEY

    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path_factory.mktemp("access"),
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
    from tests.api.conftest import add_site

    now = datetime.now(UTC)
    with db() as session, session.begin():
        sites: dict[str, Site] = {code: add_site(session, code) for code in (NORTH, SOUTH)}
        north, south = sites[NORTH], sites[SOUTH]
        users = {
            "holder": _user(session, "holder", Role.RADIOLOGIST, [north, south]),
            "radiologist": _user(session, "radiologist", Role.RADIOLOGIST, [north]),
            "manager": _user(session, "manager", Role.MANAGER, [north]),
            "admin": _user(session, "admin", Role.ADMIN, []),
            "alert_client": _user(session, "alert_client", Role.ALERT_CLIENT, [north]),
            "order_client": _user(session, "order_client", Role.ORDER_CLIENT, [north]),
        }
        for site_row in (north, south):
            own = _user(session, _site_radiologist(site_row.code), Role.RADIOLOGIST, [site_row])
            own.home_site = site_row
        studies = {}
        for key, code in ((OWN, NORTH), (OTHER, SOUTH)):
            study = add_study(session, add_patient(session, sites[code]))
            add_claim(
                session,
                study,
                users["holder"].id,
                claimed_at=now,
                expires_at=now + timedelta(minutes=30),
            )
            report = add_report(session, study, users["holder"].id, ReportStatus.DRAFT)
            session.add(
                ReportVersion(
                    report_id=report.id,
                    version=1,
                    status=ReportStatus.DRAFT,
                    text=report.text,
                    saved_by_id=users["holder"].id,
                )
            )
            studies[key] = study.study_uid
    return World(client=client, users=users, studies=studies, settings=app_settings)


@pytest.mark.parametrize(("endpoint", "role", "site", "expected"), CELLS)
def test_access_cell(world: World, endpoint: str, role: str, site: str, expected: int) -> None:
    headers = bearer(world.settings, world.users[role])
    if endpoint == "PUT report":
        headers["If-Match"] = '"1"'
    assert ENDPOINTS[endpoint](world, site, headers) == expected
