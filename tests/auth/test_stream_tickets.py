"""Stream tickets: issued for a bearer token, they open the SSE streams and nothing else."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, add_user, bearer, client, sites
from worklist.auth import service as auth_service
from worklist.auth.tickets import (
    STREAM_TICKET_AUDIENCE,
    decode_stream_ticket,
    issue_stream_ticket,
)
from worklist.config import Settings
from worklist.db import make_async_engine, make_async_sessionmaker
from worklist.enums import Role
from worklist.errors import AuthenticationFailed
from worklist.models import Site, User

__all__ = ["client", "sites"]

TICKET_URL = "/api/v1/auth/stream-ticket"
STREAMS = ["/api/v1/events", "/api/v1/alerts/stream"]


@pytest.fixture
def staff(db: sessionmaker[Session], sites: dict[str, Site]) -> dict[str, User]:
    """A NORTH radiologist and a NORTH alert client."""
    with db() as session, session.begin():
        return {
            "rad": add_user(session, "rad", Role.RADIOLOGIST, NORTH),
            "alerts": add_user(session, "alerts", Role.ALERT_CLIENT, NORTH),
        }


def _ticket(client: TestClient, settings: Settings, user: User) -> str:
    response = client.post(TICKET_URL, headers=bearer(settings, user))
    assert response.status_code == 200, response.text
    ticket: str = response.json()["ticket"]
    return ticket


def _ticket_for(settings: Settings, user: User, **when: datetime) -> str:
    now = when.get("now", datetime.now(UTC))
    return issue_stream_ticket(
        signing_key=settings.resolved_secret_key(),
        username=user.username,
        role=user.role,
        session_expires_at=when.get("session_expires_at", now + timedelta(minutes=5)),
        now=now,
    ).access_token


def test_a_bearer_token_gets_a_short_lived_ticket_that_is_not_cached(
    client: TestClient, settings: Settings, staff: dict[str, User]
) -> None:
    response = client.post(TICKET_URL, headers=bearer(settings, staff["rad"]))

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"ticket", "expires_in"}
    assert 0 < body["expires_in"] <= 60
    assert response.headers["Cache-Control"] == "no-store"
    claims = decode_stream_ticket(signing_key=settings.resolved_secret_key(), ticket=body["ticket"])
    assert (claims.username, claims.role) == ("rad", Role.RADIOLOGIST)
    assert client.post(TICKET_URL).status_code == 401


def test_a_ticket_never_outlives_the_access_token_it_was_issued_for(settings: Settings) -> None:
    now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    issued = issue_stream_ticket(
        signing_key=settings.resolved_secret_key(),
        username="rad",
        role=Role.RADIOLOGIST,
        session_expires_at=now + timedelta(seconds=10),
        now=now,
    )
    assert issued.expires_in == 10
    with pytest.raises(ValueError, match="60 seconds"):
        issue_stream_ticket(
            signing_key=settings.resolved_secret_key(),
            username="rad",
            role=Role.RADIOLOGIST,
            session_expires_at=now + timedelta(hours=1),
            lifetime=timedelta(seconds=61),
            now=now,
        )


@pytest.mark.parametrize("url", ["/api/v1/worklist", "/api/v1/alerts", "/dicomweb/studies"])
def test_a_ticket_is_refused_as_a_bearer_token(
    client: TestClient, settings: Settings, staff: dict[str, User], url: str
) -> None:
    ticket = _ticket(client, settings, staff["rad"])

    response = client.get(url, headers={"Authorization": f"Bearer {ticket}"})

    assert response.status_code == 401
    assert client.post(TICKET_URL, headers={"Authorization": f"Bearer {ticket}"}).status_code == 401


@pytest.mark.parametrize("url", STREAMS)
def test_an_expired_ticket_is_refused(
    client: TestClient, settings: Settings, staff: dict[str, User], url: str
) -> None:
    user = staff["rad" if url == STREAMS[0] else "alerts"]
    issued_at = datetime.now(UTC) - timedelta(minutes=2)
    ticket = _ticket_for(settings, user, now=issued_at)

    assert client.get(url, params={"ticket": ticket}).status_code == 401


def _tampered(ticket: str) -> str:
    header, payload, signature = ticket.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize("url", STREAMS)
@pytest.mark.parametrize("kind", ["tampered", "signed_with_token_key", "access_token", "garbage"])
def test_a_forged_or_wrong_kind_of_ticket_is_refused(
    client: TestClient, settings: Settings, staff: dict[str, User], url: str, kind: str
) -> None:
    user = staff["rad" if url == STREAMS[0] else "alerts"]
    key = settings.resolved_secret_key()
    now = datetime.now(UTC)
    ticket = {
        "tampered": lambda: _tampered(_ticket(client, settings, user)),
        # Right audience and claims, but the access tokens' key rather than the tickets'.
        "signed_with_token_key": lambda: jwt.encode(
            {
                "sub": user.username,
                "role": user.role.value,
                "aud": STREAM_TICKET_AUDIENCE,
                "exp": now + timedelta(seconds=30),
                "ses": int((now + timedelta(minutes=5)).timestamp()),
            },
            key,
            algorithm="HS256",
        ),
        "access_token": lambda: bearer(settings, user)["Authorization"].removeprefix("Bearer "),
        "garbage": lambda: "not-a-ticket",
    }[kind]()

    assert client.get(url, params={"ticket": ticket}).status_code == 401


def test_an_open_ticket_stream_ends_with_the_session_it_was_issued_for(
    settings: Settings, database_url: str, staff: dict[str, User]
) -> None:
    now = datetime.now(UTC)
    ticket = _ticket_for(settings, staff["rad"], now=now, session_expires_at=now + timedelta(5))
    credential = auth_service.stream_credential(
        signing_key=settings.resolved_secret_key(), token=None, ticket=ticket
    )

    async def check(at: datetime) -> str:
        engine = make_async_engine(database_url, pool_size=1)
        try:
            async with make_async_sessionmaker(engine)() as session:
                user = await auth_service.user_from_stream_credential(
                    session=session,
                    signing_key=settings.resolved_secret_key(),
                    credential=credential,
                    now=at,
                )
                return user.username
        finally:
            await engine.dispose()

    # Long after the ticket itself expired, the stream it opened still passes its checks...
    assert asyncio.run(check(now + timedelta(days=1))) == "rad"
    # ...until the access token's lifetime is over.
    with pytest.raises(AuthenticationFailed):
        asyncio.run(check(now + timedelta(days=5)))
