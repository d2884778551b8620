"""Account changes take effect on the account's next request, whatever token it holds."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import PASSWORD, add_patient, add_study, audit_rows, token_headers
from tests.users.conftest import (
    ADMIN,
    NORTH,
    NORTH_MANAGER,
    NORTH_RAD,
    SOUTH,
    VISITOR,
    Network,
    user_url,
)
from worklist.enums import AuditAction

TOKEN_URL = "/api/v1/auth/token"
WORKLIST_URL = "/api/v1/worklist"
NEW_PASSWORD = "a-brand-new-password"


def login_status(client: TestClient, username: str, password: str = PASSWORD) -> int:
    """The status of a login attempt."""
    return client.post(TOKEN_URL, data={"username": username, "password": password}).status_code


def test_a_disabled_account_is_refused_on_its_next_request_and_cannot_log_in(
    network: Network, db: sessionmaker[Session]
) -> None:
    logged_in = token_headers(network.client, NORTH_RAD)
    assert network.client.get(WORKLIST_URL, headers=logged_in).status_code == 200

    response = network.send("PATCH", NORTH_MANAGER, user_url(NORTH_RAD), json={"disabled": True})

    assert response.status_code == 200
    assert response.json()["disabled"] is True
    assert network.client.get(WORKLIST_URL, headers=logged_in).status_code == 401
    assert network.send("GET", NORTH_RAD, WORKLIST_URL).status_code == 401
    assert login_status(network.client, NORTH_RAD) == 401
    [row] = audit_rows(db, AuditAction.USER_DISABLED)
    assert (row.actor, row.address, row.site_id, row.detail) == (
        NORTH_MANAGER,
        "testclient",
        network.sites[NORTH].id,
        {"username": NORTH_RAD},
    )


def test_a_re_enabled_account_logs_in_again_but_its_old_tokens_stay_refused(
    network: Network, db: sessionmaker[Session]
) -> None:
    old = token_headers(network.client, NORTH_RAD)
    network.send("PATCH", ADMIN, user_url(NORTH_RAD), json={"disabled": True})

    response = network.send("PATCH", ADMIN, user_url(NORTH_RAD), json={"disabled": False})

    assert response.status_code == 200
    assert response.json()["disabled"] is False
    assert network.client.get(WORKLIST_URL, headers=old).status_code == 401
    fresh = token_headers(network.client, NORTH_RAD)
    assert network.client.get(WORKLIST_URL, headers=fresh).status_code == 200
    assert [row.actor for row in audit_rows(db, AuditAction.USER_ENABLED)] == [ADMIN]


def test_a_password_reset_replaces_the_password_and_revokes_issued_tokens(
    network: Network, db: sessionmaker[Session]
) -> None:
    old = token_headers(network.client, NORTH_RAD)

    response = network.send(
        "POST", NORTH_MANAGER, user_url(NORTH_RAD, "/password"), json={"password": NEW_PASSWORD}
    )

    assert response.status_code == 204
    assert login_status(network.client, NORTH_RAD) == 401
    assert network.client.get(WORKLIST_URL, headers=old).status_code == 401
    fresh = token_headers(network.client, NORTH_RAD, NEW_PASSWORD)
    assert network.client.get(WORKLIST_URL, headers=fresh).status_code == 200
    [row] = audit_rows(db, AuditAction.USER_PASSWORD_RESET)
    assert (row.actor, row.detail) == (NORTH_MANAGER, {"username": NORTH_RAD})
    assert NEW_PASSWORD not in repr(row.detail)


def test_a_too_short_password_is_refused_and_the_old_one_still_works(network: Network) -> None:
    response = network.send(
        "POST", ADMIN, user_url(NORTH_RAD, "/password"), json={"password": "short"}
    )

    assert response.status_code == 422
    assert "at least 8" in response.json()["detail"]
    assert login_status(network.client, NORTH_RAD) == 200


def test_a_manager_may_not_reset_a_visiting_radiologists_password(network: Network) -> None:
    response = network.send(
        "POST", NORTH_MANAGER, user_url(VISITOR, "/password"), json={"password": NEW_PASSWORD}
    )

    assert response.status_code == 403
    assert login_status(network.client, VISITOR) == 200


def test_revoking_and_granting_a_privilege_changes_visibility_on_the_next_request(
    network: Network, db: sessionmaker[Session]
) -> None:
    with db() as session, session.begin():
        study = add_study(session, add_patient(session, network.sites[NORTH])).study_uid
    study_url = f"/api/v1/studies/{study}"
    assert network.send("GET", VISITOR, study_url).status_code == 200

    revoked = network.send("PATCH", NORTH_MANAGER, user_url(VISITOR), json={"sites": [SOUTH]})

    assert revoked.status_code == 200
    assert network.send("GET", VISITOR, study_url).status_code == 404
    listing = network.send("GET", VISITOR, f"{WORKLIST_URL}?site={NORTH}").json()
    assert listing["items"] == []

    granted = network.send("PATCH", ADMIN, user_url(VISITOR), json={"sites": [SOUTH, NORTH]})

    assert granted.status_code == 200
    assert network.send("GET", VISITOR, study_url).status_code == 200
    assert len(audit_rows(db, AuditAction.USER_PRIVILEGE_REVOKED)) == 1
    assert len(audit_rows(db, AuditAction.USER_PRIVILEGE_GRANTED)) == 1
