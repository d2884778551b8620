"""/api/v1/subspecialties: every worklist user lists the vocabulary, admins manage it;
users' subspecialties are checked against it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, add_user, audit_rows, bearer
from worklist.config import Settings
from worklist.enums import AuditAction, Role
from worklist.models import RoutingRule, Site

URL = "/api/v1/subspecialties"
DEFAULTS = {
    "neuro", "head_neck", "chest", "cardiac", "abdomen", "gu", "msk", "breast", "paediatric",
    "vascular_ir", "nuclear_medicine", "general",
}  # fmt: skip


@pytest.fixture
def people(
    db: sessionmaker[Session], sites: dict[str, Site], settings: Settings
) -> dict[str, dict[str, str]]:
    """Bearer headers of an admin, a NORTH manager, radiologist and alert client."""
    with db() as session, session.begin():
        users = {
            "admin": add_user(session, "admin", Role.ADMIN),
            "manager": add_user(session, "manager", Role.MANAGER, NORTH),
            "rad": add_user(session, "rad", Role.RADIOLOGIST, NORTH),
            "alerts": add_user(session, "alerts", Role.ALERT_CLIENT, NORTH),
        }
    return {name: bearer(settings, user) for name, user in users.items()}


def codes(client: TestClient, headers: dict[str, str]) -> dict[str, bool]:
    response = client.get(URL, headers=headers)
    assert response.status_code == 200, response.text
    return {row["code"]: row["active"] for row in response.json()["subspecialties"]}


@pytest.mark.parametrize("who", ["admin", "manager", "rad"])
def test_the_seeded_vocabulary_is_listed_to_every_worklist_user(
    client: TestClient, people: dict[str, dict[str, str]], who: str
) -> None:
    assert set(codes(client, people[who])) == DEFAULTS


def test_alert_clients_and_anonymous_callers_cannot_list(
    client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    assert client.get(URL, headers=people["alerts"]).status_code == 403
    assert client.get(URL).status_code == 401


def test_an_admin_adds_a_code_audited(
    client: TestClient, db: sessionmaker[Session], people: dict[str, dict[str, str]]
) -> None:
    response = client.post(
        URL, json={"code": "interventional_neuro", "name": " Interventional neuro "},
        headers=people["admin"],
    )  # fmt: skip

    assert response.status_code == 201, response.text
    assert response.json() == {
        "code": "interventional_neuro",
        "name": "Interventional neuro",
        "active": True,
    }
    assert codes(client, people["rad"])["interventional_neuro"] is True
    [row] = audit_rows(db, AuditAction.SUBSPECIALTY_ADDED)
    assert (row.actor, row.detail) == (
        "admin",
        {"code": "interventional_neuro", "name": "Interventional neuro"},
    )


@pytest.mark.parametrize("who", ["manager", "rad", "alerts"])
def test_only_admins_add_codes(
    client: TestClient, people: dict[str, dict[str, str]], who: str
) -> None:
    response = client.post(URL, json={"code": "dermatology", "name": "Skin"}, headers=people[who])

    assert response.status_code == 403
    assert "dermatology" not in codes(client, people["admin"])


@pytest.mark.parametrize(
    "body",
    [
        {"code": "Neuro2", "name": "Capitals"},
        {"code": "neuro-2", "name": "Dash"},
        {"code": "", "name": "Empty"},
        {"code": "x" * 33, "name": "Too long"},
        {"code": "ok", "name": "   "},
        {"code": "ok"},
        {"code": "ok", "name": "Ok", "active": False},
    ],
)
def test_invalid_codes_and_names_answer_422(
    client: TestClient, people: dict[str, dict[str, str]], body: object
) -> None:
    assert client.post(URL, json=body, headers=people["admin"]).status_code == 422


def test_a_code_that_exists_answers_409(
    client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    response = client.post(URL, json={"code": "neuro", "name": "Again"}, headers=people["admin"])

    assert response.status_code == 409
    assert "neuro" in response.json()["detail"]


def test_a_retired_code_is_listed_only_to_admins_and_no_longer_given_to_users(
    client: TestClient, db: sessionmaker[Session], people: dict[str, dict[str, str]]
) -> None:
    response = client.patch(f"{URL}/cardiac", json={"active": False}, headers=people["admin"])

    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    assert codes(client, people["admin"])["cardiac"] is False
    assert "cardiac" not in codes(client, people["rad"])
    refused = client.patch(
        "/api/v1/users/rad", json={"subspecialties": ["cardiac"]}, headers=people["admin"]
    )
    assert refused.status_code == 422
    assert "cardiac" in refused.json()["detail"]
    [row] = audit_rows(db, AuditAction.SUBSPECIALTY_CHANGED)
    assert row.detail == {"code": "cardiac", "active": {"from": True, "to": False}}


def test_an_added_code_can_be_given_to_a_radiologist(
    client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    client.post(URL, json={"code": "cardiac_ct", "name": "Cardiac CT"}, headers=people["admin"])

    response = client.patch(
        "/api/v1/users/rad", json={"subspecialties": ["cardiac_ct", "neuro"]},
        headers=people["admin"],
    )  # fmt: skip

    assert response.status_code == 200, response.text
    assert response.json()["subspecialties"] == ["cardiac_ct", "neuro"]


def test_a_code_a_routing_rule_gives_cannot_be_retired(
    client: TestClient, db: sessionmaker[Session], people: dict[str, dict[str, str]]
) -> None:
    with db() as session, session.begin():
        session.add(RoutingRule(position=0, subspecialty="breast", modality="MG"))

    response = client.patch(f"{URL}/breast", json={"active": False}, headers=people["admin"])

    assert response.status_code == 409
    assert codes(client, people["admin"])["breast"] is True


def test_renaming_is_for_admins_and_an_unknown_code_is_404(
    client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    assert (
        client.patch(f"{URL}/gu", json={"name": "Uro"}, headers=people["manager"]).status_code
        == 403
    )
    assert (
        client.patch(f"{URL}/nope", json={"name": "X"}, headers=people["admin"]).status_code == 404
    )
    renamed = client.patch(f"{URL}/gu", json={"name": "Urology"}, headers=people["admin"])
    assert renamed.json() == {"code": "gu", "name": "Urology", "active": True}
