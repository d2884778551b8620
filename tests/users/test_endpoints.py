"""``/api/v1/users``: listing, reading and changing accounts, as admins and managers."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import audit_rows
from tests.users.conftest import (
    ADMIN,
    EAST,
    NORTH,
    NORTH_MANAGER,
    NORTH_RAD,
    NORTH_RESULTS,
    SOUTH,
    SOUTH_MANAGER,
    SOUTH_RAD,
    USERS_URL,
    VISITOR,
    Network,
    user_url,
)
from worklist.enums import AuditAction


def usernames(network: Network, who: str, query: str = "") -> list[str]:
    """The usernames ``who`` lists."""
    response = network.send("GET", who, USERS_URL + query)
    assert response.status_code == 200, response.text
    return [user["username"] for user in response.json()["users"]]


def test_an_admin_lists_every_account_and_never_a_password_hash(network: Network) -> None:
    response = network.send("GET", ADMIN, USERS_URL)

    assert response.status_code == 200
    users = response.json()["users"]
    assert [u["username"] for u in users] == sorted(network.users)
    assert "password" not in response.text
    assert "argon2" not in response.text
    visitor = next(u for u in users if u["username"] == VISITOR)
    assert visitor == {
        "username": VISITOR,
        "role": "radiologist",
        "disabled": False,
        "name": None,
        "registration": None,
        "home_site": SOUTH,
        "sites": [NORTH, SOUTH],
        "subspecialties": [],
        "created_at": visitor["created_at"],
    }


def test_the_list_filters_on_role_site_and_disabled(network: Network) -> None:
    network.send("PATCH", ADMIN, user_url(SOUTH_RAD), json={"disabled": True})

    assert usernames(network, ADMIN, "?role=manager") == [NORTH_MANAGER, SOUTH_MANAGER]
    assert usernames(network, ADMIN, f"?site={NORTH}&role=radiologist") == [NORTH_RAD, VISITOR]
    assert usernames(network, ADMIN, "?disabled=true") == [SOUTH_RAD]
    assert network.send("GET", ADMIN, f"{USERS_URL}?site=NOWHERE").status_code == 422


def test_a_manager_lists_the_accounts_holding_privileges_at_or_employed_by_their_site(
    network: Network,
) -> None:
    assert usernames(network, NORTH_MANAGER) == [NORTH_RAD, VISITOR, NORTH_MANAGER, NORTH_RESULTS]
    assert usernames(network, SOUTH_MANAGER) == [SOUTH_RAD, VISITOR, SOUTH_MANAGER]
    assert usernames(network, NORTH_MANAGER, f"?site={SOUTH}") == [VISITOR]


@pytest.mark.parametrize("method", ["GET", "PATCH", "POST"])
def test_an_account_outside_a_managers_site_answers_404_like_an_unknown_one(
    network: Network, method: str
) -> None:
    kwargs = {
        "GET": ("", {}),
        "PATCH": ("", {"json": {"name": "Dr Renamed"}}),
        "POST": ("/password", {"json": {"password": "a-new-password"}}),
    }
    suffix, body = kwargs[method]

    outside = network.send(method, SOUTH_MANAGER, user_url(NORTH_RAD, suffix), **body)
    unknown = network.send(method, SOUTH_MANAGER, user_url("nobody", suffix), **body)
    admin_outside = network.send(method, SOUTH_MANAGER, user_url(ADMIN, suffix), **body)

    assert outside.status_code == unknown.status_code == admin_outside.status_code == 404
    assert outside.json() == unknown.json() == admin_outside.json()


@pytest.mark.parametrize("who", [NORTH_RAD, NORTH_RESULTS])
def test_radiologists_and_alert_clients_may_not_manage_accounts(network: Network, who: str) -> None:
    assert network.send("GET", who, USERS_URL).status_code == 403
    assert network.send("GET", who, user_url(who)).status_code == 403
    assert network.send("GET", who, user_url("nobody")).status_code == 403
    patch = network.send("PATCH", who, user_url(who), json={"sites": [NORTH, SOUTH]})
    assert patch.status_code == 403
    # Input is validated before permission: an invalid body is a 422 for anyone.
    invalid = network.send("PATCH", who, user_url(who), json={"registration": "bad"})
    assert invalid.status_code == 422


def test_an_admin_changes_profile_and_privileges_and_each_change_is_audited(
    network: Network, db: sessionmaker[Session]
) -> None:
    response = network.send(
        "PATCH",
        ADMIN,
        user_url(SOUTH_RAD),
        json={
            "name": "  Dr Sam  South ",
            "registration": "gmc 123-4567",
            "home_site": EAST,
            "subspecialties": ["neuro", "chest", "neuro"],
            "sites": [SOUTH, NORTH],
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Dr Sam South"
    assert body["registration"] == "GMC1234567"
    assert body["home_site"] == EAST
    assert body["subspecialties"] == ["neuro", "chest"]
    assert body["sites"] == [NORTH, SOUTH]
    assert network.send("GET", ADMIN, user_url(SOUTH_RAD)).json() == body
    [granted] = audit_rows(db, AuditAction.USER_PRIVILEGE_GRANTED)
    assert (granted.actor, granted.address, granted.site_id) == (
        ADMIN,
        "testclient",
        network.sites[NORTH].id,
    )
    assert granted.detail == {"username": SOUTH_RAD, "site": NORTH}
    [profile] = audit_rows(db, AuditAction.USER_PROFILE_CHANGED)
    assert profile.detail["changes"] == {
        "name": {"from": None, "to": "Dr Sam South"},
        "registration": {"from": None, "to": "GMC1234567"},
        "home_site": {"from": SOUTH, "to": EAST},
        "subspecialties": {"from": [], "to": ["neuro", "chest"]},
    }


def test_null_clears_a_text_field_and_an_unchanged_value_is_not_audited(
    network: Network, db: sessionmaker[Session]
) -> None:
    network.send("PATCH", ADMIN, user_url(SOUTH_RAD), json={"name": "Dr S"})

    cleared = network.send("PATCH", ADMIN, user_url(SOUTH_RAD), json={"name": None})
    again = network.send("PATCH", ADMIN, user_url(SOUTH_RAD), json={"name": None, "sites": [SOUTH]})

    assert cleared.json()["name"] is None
    assert again.status_code == 200
    assert len(audit_rows(db, AuditAction.USER_PROFILE_CHANGED)) == 2
    assert audit_rows(db, AuditAction.USER_PRIVILEGE_GRANTED) == []


def test_a_role_change_must_meet_the_roles_site_rules(
    network: Network, db: sessionmaker[Session]
) -> None:
    refused = network.send("PATCH", ADMIN, user_url(SOUTH_RAD), json={"role": "admin"})
    promoted = network.send(
        "PATCH", ADMIN, user_url(SOUTH_RAD), json={"role": "admin", "sites": []}
    )

    assert refused.status_code == 422
    assert "network-wide" in refused.json()["detail"]
    assert promoted.status_code == 200
    assert (promoted.json()["role"], promoted.json()["sites"]) == ("admin", [])
    [row] = audit_rows(db, AuditAction.USER_ROLE_CHANGED)
    assert row.detail == {"username": SOUTH_RAD, "from": "radiologist", "to": "admin"}
    # The token names the old role: refused from the next request.
    assert network.send("GET", SOUTH_RAD, "/api/v1/worklist").status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"subspecialties": ["dermatology"]},
        {"registration": "GMC123"},
        {"registration": "not a number"},
        {"sites": ["NOWHERE"]},
        {"home_site": "NOWHERE"},
        {"disabled": None},
        {"role": "superuser"},
        {"password_hash": "x"},
        {"name": "x" * 201},
    ],
)
def test_invalid_changes_answer_422_and_change_nothing(network: Network, body: object) -> None:
    before = network.send("GET", ADMIN, user_url(SOUTH_RAD)).json()

    response = network.send("PATCH", ADMIN, user_url(SOUTH_RAD), json=body)

    assert response.status_code == 422, response.text
    assert network.send("GET", ADMIN, user_url(SOUTH_RAD)).json() == before


def test_an_admin_cannot_disable_their_own_account(network: Network) -> None:
    response = network.send("PATCH", ADMIN, user_url(ADMIN), json={"disabled": True})

    assert response.status_code == 409
    assert network.send("GET", ADMIN, USERS_URL).status_code == 200


def test_a_manager_grants_and_revokes_only_their_own_sites_privilege(
    network: Network, db: sessionmaker[Session]
) -> None:
    other_site = network.send(
        "PATCH", NORTH_MANAGER, user_url(NORTH_RAD), json={"sites": [NORTH, SOUTH]}
    )
    revoked = network.send("PATCH", NORTH_MANAGER, user_url(VISITOR), json={"sites": [SOUTH]})

    assert other_site.status_code == 403
    assert revoked.status_code == 200
    assert revoked.json()["sites"] == [SOUTH]
    [row] = audit_rows(db, AuditAction.USER_PRIVILEGE_REVOKED)
    assert (row.actor, row.site_id, row.detail["site"]) == (
        NORTH_MANAGER,
        network.sites[NORTH].id,
        NORTH,
    )
    # No longer holding NORTH's privilege nor employed there: out of the manager's scope.
    assert network.send("GET", NORTH_MANAGER, user_url(VISITOR)).status_code == 404


def test_a_manager_administers_their_own_sites_accounts_but_not_visitors(
    network: Network,
) -> None:
    visitor = network.send("PATCH", NORTH_MANAGER, user_url(VISITOR), json={"disabled": True})
    visitor_name = network.send("PATCH", NORTH_MANAGER, user_url(VISITOR), json={"name": "V"})
    own = network.send(
        "PATCH",
        NORTH_MANAGER,
        user_url(NORTH_RAD),
        json={"disabled": True, "name": "Dr N", "subspecialties": ["msk"]},
    )
    results = network.send("PATCH", NORTH_MANAGER, user_url(NORTH_RESULTS), json={"disabled": True})

    assert (visitor.status_code, visitor_name.status_code) == (403, 403)
    assert own.status_code == 200
    assert (own.json()["disabled"], own.json()["name"]) == (True, "Dr N")
    assert results.status_code == 200


@pytest.mark.parametrize(
    ("target", "body"),
    [
        (NORTH_RAD, {"role": "manager"}),
        (NORTH_RAD, {"home_site": EAST}),
        (NORTH_RESULTS, {"sites": [NORTH, SOUTH]}),
        (NORTH_MANAGER, {"disabled": True}),
    ],
)
def test_a_manager_may_not_change_roles_home_sites_or_other_managers(
    network: Network, target: str, body: dict[str, object]
) -> None:
    response = network.send("PATCH", NORTH_MANAGER, user_url(target), json=body)

    assert response.status_code == 403, response.text
