"""Account fixtures: three trusts, their managers, radiologists employed by one and
visiting another, an alert client and a network admin; tokens minted per user."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import PASSWORD, add_site, bearer, client
from tests.conftest import TEST_PASSWORD_COST
from tests.factories import new_user
from worklist.auth.passwords import hash_password
from worklist.config import Settings
from worklist.enums import Role
from worklist.models import Site, User

__all__ = ["client"]

NORTH, SOUTH, EAST = "NORTH", "SOUTH", "EAST"
ADMIN = "net.admin"
NORTH_MANAGER = "n.manager"
SOUTH_MANAGER = "s.manager"
NORTH_RAD = "dr.north"  # employed by NORTH, privileges at NORTH only: NORTH's own account
VISITOR = "dr.visitor"  # employed by SOUTH, privileges at SOUTH and NORTH
SOUTH_RAD = "dr.south"  # employed by SOUTH, privileges at SOUTH only
NORTH_RESULTS = "north.results"
USERS_URL = "/api/v1/users"

# username: (role, sites, home site)
PEOPLE: dict[str, tuple[Role, tuple[str, ...], str | None]] = {
    ADMIN: (Role.ADMIN, (), None),
    NORTH_MANAGER: (Role.MANAGER, (NORTH,), NORTH),
    SOUTH_MANAGER: (Role.MANAGER, (SOUTH,), SOUTH),
    NORTH_RAD: (Role.RADIOLOGIST, (NORTH,), NORTH),
    VISITOR: (Role.RADIOLOGIST, (SOUTH, NORTH), SOUTH),
    SOUTH_RAD: (Role.RADIOLOGIST, (SOUTH,), SOUTH),
    NORTH_RESULTS: (Role.ALERT_CLIENT, (NORTH,), None),
}


def user_url(username: str, suffix: str = "") -> str:
    """The URL of one account."""
    return f"{USERS_URL}/{username}{suffix}"


@functools.cache
def password_hash() -> str:
    """The shared test password's hash, computed once (Argon2 is slow by design)."""
    return hash_password(PASSWORD, cost=TEST_PASSWORD_COST)


@dataclass
class Network:
    """The trusts and accounts, and a way to call the API as any of them."""

    client: TestClient
    settings: Settings
    sites: dict[str, Site]
    users: dict[str, User]
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def send(self, method: str, who: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request as ``who`` (a token minted for them)."""
        response: httpx.Response = self.client.request(
            method, url, headers=self.headers[who], **kwargs
        )
        return response


@pytest.fixture
def network(client: TestClient, db: sessionmaker[Session], settings: Settings) -> Network:
    """Three trusts and the PEOPLE, all with the shared test password."""
    with db() as session, session.begin():
        sites = {code: add_site(session, code) for code in (NORTH, SOUTH, EAST)}
        users = {
            username: new_user(
                session,
                username,
                role,
                *codes,
                password_hash=password_hash(),
                home_site=sites[home] if home else None,
            )
            for username, (role, codes, home) in PEOPLE.items()
        }
    return Network(
        client=client,
        settings=settings,
        sites=sites,
        users=users,
        headers={name: bearer(settings, user) for name, user in users.items()},
    )
