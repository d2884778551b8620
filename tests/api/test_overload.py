"""Past capacity the API sheds load: 503 with Retry-After after a bounded wait, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, add_patient, add_site, add_study, add_user, bearer
from tests.claims.conftest import add_claim
from worklist.api.errors import (
    AT_CAPACITY,
    DATABASE_UNAVAILABLE,
    RETRY_AFTER_AT_CAPACITY,
    RETRY_AFTER_DATABASE_DOWN,
)
from worklist.app import create_app
from worklist.config import Settings
from worklist.enums import Role

CLOSED_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"


@pytest.fixture
def headers(settings: Settings, db: sessionmaker[Session]) -> dict[str, str]:
    """A radiologist's bearer header."""
    with db() as session, session.begin():
        add_site(session, NORTH)
        user = add_user(session, "rad", Role.RADIOLOGIST, NORTH)
    return bearer(settings, user)


@pytest.fixture
def small_pool(settings: Settings) -> Iterator[TestClient]:
    """An API whose pool holds one connection (no overflow), waiting 50 ms at most."""
    tight = settings.model_copy(update={"api_db_pool_size": 1, "api_db_pool_timeout_seconds": 0.05})
    with TestClient(create_app(tight)) as client:
        yield client


def test_a_request_that_finds_no_free_connection_is_shed_with_503_and_retry_after(
    small_pool: TestClient, headers: dict[str, str]
) -> None:
    app = small_pool.app
    assert small_pool.get("/api/v1/worklist", headers=headers).status_code == 200

    async def hold_every_connection() -> list[AsyncConnection]:
        engine = app.state.engine  # type: ignore[attr-defined]
        return [await engine.connect()]

    held = small_pool.portal.call(hold_every_connection)  # type: ignore[union-attr]
    try:
        shed = small_pool.get("/api/v1/worklist", headers=headers)
    finally:
        for connection in held:
            small_pool.portal.call(connection.close)  # type: ignore[union-attr]

    assert shed.status_code == 503
    assert shed.headers["retry-after"] == str(RETRY_AFTER_AT_CAPACITY)
    assert shed.json() == {"detail": AT_CAPACITY}
    # Once a connection is free again the API answers as before.
    assert small_pool.get("/api/v1/worklist", headers=headers).status_code == 200


def test_an_unreachable_database_is_503_with_retry_after_not_500(
    settings: Settings, headers: dict[str, str]
) -> None:
    no_db = settings.model_copy(update={"database_url": CLOSED_DATABASE})
    with TestClient(create_app(no_db)) as client:
        response = client.get("/api/v1/worklist", headers=headers)

    assert response.status_code == 503
    assert response.headers["retry-after"] == str(RETRY_AFTER_DATABASE_DOWN)
    assert response.json() == {"detail": DATABASE_UNAVAILABLE}


def test_a_connection_the_database_dropped_costs_one_503_then_the_pool_recovers(
    settings: Settings, headers: dict[str, str], db: sessionmaker[Session]
) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/worklist", headers=headers).status_code == 200
        with db() as session, session.begin():
            dropped = session.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = 'worklist-api'"
                )
            ).scalar_one()
        assert dropped >= 1

        first = client.get("/api/v1/worklist", headers=headers)
        then = client.get("/api/v1/worklist", headers=headers)

    assert first.status_code == 503
    assert first.json() == {"detail": DATABASE_UNAVAILABLE}
    assert then.status_code == 200


def test_alerts_are_raised_and_acknowledged_on_the_reserved_pool_when_the_worklist_is_shed(
    small_pool: TestClient, settings: Settings, db: sessionmaker[Session]
) -> None:
    """Worklist load never sheds a critical result: its endpoints have their own connections."""
    now = datetime.now(UTC)
    with db() as session, session.begin():
        site = add_site(session, NORTH)
        radiologist = add_user(session, "rad", Role.RADIOLOGIST, NORTH)
        desk = add_user(session, "desk", Role.ALERT_CLIENT, NORTH)
        study = add_study(session, add_patient(session, site))
        add_claim(
            session, study, radiologist.id, claimed_at=now, expires_at=now + timedelta(hours=1)
        )
        study_uid = study.study_uid
    rad_headers, desk_headers = bearer(settings, radiologist), bearer(settings, desk)
    app = small_pool.app

    async def hold_the_shared_pool() -> AsyncConnection:
        return await app.state.engine.connect()  # type: ignore[attr-defined,no-any-return]

    held = small_pool.portal.call(hold_the_shared_pool)  # type: ignore[union-attr]
    try:
        assert small_pool.get("/api/v1/worklist", headers=rad_headers).status_code == 503
        raised = small_pool.post(
            f"/api/v1/studies/{study_uid}/alerts",
            headers=rad_headers,
            json={"category": "critical", "finding": "Tension pneumothorax."},
        )
        assert raised.status_code == 201, raised.text
        acknowledged = small_pool.post(
            f"/api/v1/alerts/{raised.json()['id']}/acknowledge",
            headers=desk_headers,
            json={"acknowledged_by": "Dr On Call"},
        )
        assert acknowledged.status_code == 200, acknowledged.text
        assert acknowledged.json()["status"] == "acknowledged"
    finally:
        small_pool.portal.call(held.close)  # type: ignore[union-attr]
