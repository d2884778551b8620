"""Cross-trust visibility: who sees which studies; hidden studies are 404, never 403."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, add_patient, add_study, add_user, bearer
from worklist.config import Settings
from worklist.enums import Role
from worklist.models import Site

WORKLIST = "/api/v1/worklist"


@dataclass
class Network:
    """One study at each trust."""

    north_uid: str
    south_uid: str


@pytest.fixture
def network(db: sessionmaker[Session], sites: dict[str, Site]) -> Network:
    """A study at NORTH and one at SOUTH."""
    with db() as session, session.begin():
        north = add_study(session, add_patient(session, sites[NORTH]))
        south = add_study(session, add_patient(session, sites[SOUTH]))
    return Network(north_uid=north.study_uid, south_uid=south.study_uid)


def _headers(
    settings: Settings, db: sessionmaker[Session], role: Role, *site_codes: str
) -> dict[str, str]:
    with db() as session, session.begin():
        user = add_user(session, "caller", role, *site_codes)
    return bearer(settings, user)


def _listed(client: TestClient, headers: dict[str, str]) -> set[str]:
    response = client.get(WORKLIST, params={"limit": 200}, headers=headers)
    assert response.status_code == 200, response.text
    return {item["study_uid"] for item in response.json()["items"]}


def test_radiologist_sees_only_sites_with_privileges(
    client: TestClient, db: sessionmaker[Session], network: Network, settings: Settings
) -> None:
    headers = _headers(settings, db, Role.RADIOLOGIST, NORTH)

    assert _listed(client, headers) == {network.north_uid}
    assert client.get(f"/api/v1/studies/{network.north_uid}", headers=headers).status_code == 200


def test_radiologist_gets_404_not_403_on_another_trusts_study(
    client: TestClient, db: sessionmaker[Session], network: Network, settings: Settings
) -> None:
    headers = _headers(settings, db, Role.RADIOLOGIST, NORTH)

    hidden = client.get(f"/api/v1/studies/{network.south_uid}", headers=headers)
    missing = client.get("/api/v1/studies/1.2.3.4.5", headers=headers)

    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()


def test_radiologist_cannot_reach_hidden_studies_through_filters(
    client: TestClient, db: sessionmaker[Session], network: Network, settings: Settings
) -> None:
    headers = _headers(settings, db, Role.RADIOLOGIST, NORTH)

    response = client.get(WORKLIST, params={"site": SOUTH, "q": "DOE"}, headers=headers)

    assert response.json()["items"] == []


def test_radiologist_with_privileges_at_both_trusts_sees_both(
    client: TestClient, db: sessionmaker[Session], network: Network, settings: Settings
) -> None:
    headers = _headers(settings, db, Role.RADIOLOGIST, NORTH, SOUTH)

    assert _listed(client, headers) == {network.north_uid, network.south_uid}


def test_admin_sees_every_trust(
    client: TestClient, db: sessionmaker[Session], network: Network, settings: Settings
) -> None:
    headers = _headers(settings, db, Role.ADMIN)

    assert _listed(client, headers) == {network.north_uid, network.south_uid}
    assert client.get(f"/api/v1/studies/{network.south_uid}", headers=headers).status_code == 200


def test_manager_sees_own_site_only(
    client: TestClient, db: sessionmaker[Session], network: Network, settings: Settings
) -> None:
    headers = _headers(settings, db, Role.MANAGER, SOUTH)

    assert _listed(client, headers) == {network.south_uid}
    assert client.get(f"/api/v1/studies/{network.north_uid}", headers=headers).status_code == 404


def test_alert_client_gets_403_on_worklist_and_404_on_studies(
    client: TestClient, db: sessionmaker[Session], network: Network, settings: Settings
) -> None:
    headers = _headers(settings, db, Role.ALERT_CLIENT, NORTH)

    assert client.get(WORKLIST, headers=headers).status_code == 403
    own_site = client.get(f"/api/v1/studies/{network.north_uid}", headers=headers)
    assert own_site.status_code == 404
