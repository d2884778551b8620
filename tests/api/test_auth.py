"""Login, throttling and bearer tokens."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, PASSWORD, add_user, audit_rows, token_headers
from worklist.app import create_app
from worklist.auth.tokens import issue_access_token
from worklist.config import Settings
from worklist.enums import AuditAction, Role
from worklist.models import Site, User

TOKEN_URL = "/api/v1/auth/token"
WORKLIST_URL = "/api/v1/worklist"


@pytest.fixture
def radiologist(db: sessionmaker[Session], sites: dict[str, Site]) -> str:
    """A radiologist at NORTH; returns the username."""
    with db() as session, session.begin():
        add_user(session, "rad", Role.RADIOLOGIST, NORTH)
    return "rad"


@pytest.fixture
def strict_client(settings: Settings, db: sessionmaker[Session]) -> Iterator[TestClient]:
    """An app that locks a username out after 3 failures."""
    strict = settings.model_copy(update={"login_max_failures": 3})
    with TestClient(create_app(strict)) as test_client:
        yield test_client


@pytest.fixture
def address_limited_client(settings: Settings, db: sessionmaker[Session]) -> Iterator[TestClient]:
    """An app that allows 4 login attempts per client address."""
    strict = settings.model_copy(update={"login_max_attempts_per_address": 4})
    with TestClient(create_app(strict)) as test_client:
        yield test_client


def test_login_returns_bearer_token_naming_user_and_role(
    client: TestClient, radiologist: str, settings: Settings
) -> None:
    response = client.post(TOKEN_URL, data={"username": radiologist, "password": PASSWORD})

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_minutes * 60
    claims = jwt.decode(body["access_token"], settings.resolved_secret_key(), algorithms=["HS256"])
    assert claims["sub"] == radiologist
    assert claims["role"] == "radiologist"
    assert response.headers["cache-control"] == "no-store"


def test_unknown_user_and_wrong_password_get_the_same_401(
    client: TestClient, radiologist: str
) -> None:
    wrong_password = client.post(TOKEN_URL, data={"username": radiologist, "password": "nope-x1"})
    unknown_user = client.post(TOKEN_URL, data={"username": "ghost", "password": PASSWORD})

    assert wrong_password.status_code == unknown_user.status_code == 401
    assert wrong_password.json() == unknown_user.json()
    assert wrong_password.headers["www-authenticate"] == "Bearer"
    assert unknown_user.headers["www-authenticate"] == "Bearer"


def test_inactive_user_cannot_log_in(
    client: TestClient, radiologist: str, db: sessionmaker[Session]
) -> None:
    with db() as session, session.begin():
        session.execute(update(User).where(User.username == radiologist).values(active=False))

    response = client.post(TOKEN_URL, data={"username": radiologist, "password": PASSWORD})

    assert response.status_code == 401


def test_logins_are_audited_without_the_password(
    client: TestClient, radiologist: str, db: sessionmaker[Session]
) -> None:
    client.post(TOKEN_URL, data={"username": "mallory", "password": "s3cret-guess"})
    token_headers(client, radiologist)

    failed = audit_rows(db, AuditAction.LOGIN_FAILED)
    succeeded = audit_rows(db, AuditAction.LOGIN)
    assert [(row.actor, row.address) for row in failed] == [("mallory", "testclient")]
    assert [row.actor for row in succeeded] == [radiologist]
    assert "s3cret-guess" not in repr([row.detail for row in failed])


def test_too_many_failures_for_a_user_answers_429_even_with_the_right_password(
    strict_client: TestClient, radiologist: str
) -> None:
    for _ in range(3):
        response = strict_client.post(
            TOKEN_URL, data={"username": radiologist, "password": "wrong-pass"}
        )
        assert response.status_code == 401

    response = strict_client.post(TOKEN_URL, data={"username": radiologist, "password": PASSWORD})

    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    assert "detail" in response.json()


def test_too_many_attempts_from_one_address_answers_429(
    address_limited_client: TestClient, radiologist: str
) -> None:
    for n in range(4):
        response = address_limited_client.post(
            TOKEN_URL, data={"username": f"user{n}", "password": "wrong-pass"}
        )
        assert response.status_code == 401

    response = address_limited_client.post(
        TOKEN_URL, data={"username": radiologist, "password": PASSWORD}
    )

    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0


def test_successful_login_clears_the_users_failures(
    strict_client: TestClient, radiologist: str
) -> None:
    for _ in range(2):
        strict_client.post(TOKEN_URL, data={"username": radiologist, "password": "wrong-pass"})
    token_headers(strict_client, radiologist)
    for _ in range(2):
        strict_client.post(TOKEN_URL, data={"username": radiologist, "password": "wrong-pass"})

    assert (
        strict_client.post(
            TOKEN_URL, data={"username": radiologist, "password": PASSWORD}
        ).status_code
        == 200
    )


def test_login_works_when_redis_is_unreachable(
    settings: Settings, db: sessionmaker[Session], radiologist: str
) -> None:
    no_redis = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(no_redis)) as client:
        response = client.post(TOKEN_URL, data={"username": radiologist, "password": PASSWORD})

    assert response.status_code == 200


def test_worklist_requires_a_token(client: TestClient, radiologist: str) -> None:
    response = client.get(WORKLIST_URL)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c"])
def test_worklist_rejects_a_malformed_token(
    client: TestClient, radiologist: str, token: str
) -> None:
    response = client.get(WORKLIST_URL, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401


def test_worklist_rejects_a_token_signed_with_another_key(
    client: TestClient, radiologist: str
) -> None:
    forged = issue_access_token(
        signing_key="x" * 48,
        username=radiologist,
        role=Role.ADMIN,
        lifetime=timedelta(minutes=5),
    )
    headers = {"Authorization": f"Bearer {forged.access_token}"}

    assert client.get(WORKLIST_URL, headers=headers).status_code == 401


def test_worklist_rejects_an_expired_token(
    client: TestClient, radiologist: str, settings: Settings
) -> None:
    expired = issue_access_token(
        signing_key=settings.resolved_secret_key(),
        username=radiologist,
        role=Role.RADIOLOGIST,
        lifetime=timedelta(minutes=5),
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    headers = {"Authorization": f"Bearer {expired.access_token}"}

    assert client.get(WORKLIST_URL, headers=headers).status_code == 401


def test_token_of_a_deactivated_user_is_rejected(
    client: TestClient, radiologist: str, db: sessionmaker[Session]
) -> None:
    headers = token_headers(client, radiologist)
    assert client.get(WORKLIST_URL, headers=headers).status_code == 200
    with db() as session, session.begin():
        session.execute(update(User).where(User.username == radiologist).values(active=False))

    assert client.get(WORKLIST_URL, headers=headers).status_code == 401
