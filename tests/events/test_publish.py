"""Publishing: only after the transaction commits, best effort, never failing the request."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, add_patient, add_study, add_user, bearer
from tests.conftest import run_jobs
from tests.events.conftest import stream_entries, unused_redis_url
from worklist.api import deps
from worklist.api.deps import SessionDep
from worklist.app import create_app
from worklist.config import Settings
from worklist.enums import Role, StudyStatus
from worklist.errors import Conflict
from worklist.events import EventType, WorklistEvent, stage
from worklist.events.bus import decode
from worklist.models import AuditEvent, Site, Study
from worklist.worker import JOBS

MARKER_ACTION = "test.marker"


def _app_with_staging_route(settings: Settings, site_id: int) -> FastAPI:
    """The real app plus a route that writes a row, stages an event, and may then fail."""
    app = create_app(settings)

    @app.post("/test/change")
    async def change(session: SessionDep, fail: bool = False) -> dict[str, str]:
        session.add(AuditEvent(actor="t", actor_kind="system", action=MARKER_ACTION))
        stage(session, WorklistEvent(EventType.STUDY_CLAIMED, site_id, "1.2.3", {"n": 1}))
        if fail:
            raise Conflict("refused after staging")
        return {"status": "ok"}

    return app


@pytest.fixture
def staging_client(
    settings: Settings, sites: dict[str, Site], db: sessionmaker[Session]
) -> Iterator[TestClient]:
    """A running app with ``POST /test/change``."""
    with TestClient(_app_with_staging_route(settings, sites[NORTH].id)) as client:
        yield client


def _marker_rows(db: sessionmaker[Session]) -> int:
    with db() as session:
        return len(
            session.scalars(select(AuditEvent).where(AuditEvent.action == MARKER_ACTION)).all()
        )


def test_a_failing_request_publishes_nothing(
    staging_client: TestClient, db: sessionmaker[Session], redis_client: redis.Redis
) -> None:
    response = staging_client.post("/test/change", params={"fail": "true"})
    assert response.status_code == 409
    assert _marker_rows(db) == 0
    assert stream_entries(redis_client) == []


def test_a_successful_request_publishes_its_events_after_the_commit(
    staging_client: TestClient,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    committed_when_published: list[int] = []
    real_publish = deps.publish_staged

    async def spy(client: Any, session: AsyncSession) -> None:
        committed_when_published.append(_marker_rows(db))  # seen from another connection
        await real_publish(client, session)

    monkeypatch.setattr(deps, "publish_staged", spy)
    assert staging_client.post("/test/change").status_code == 200
    assert committed_when_published == [1]
    ((entry_id, fields),) = stream_entries(redis_client)
    event = decode(entry_id, fields)
    assert event is not None
    assert (event.type, event.site_id, event.study_uid, event.data) == (
        "study.claimed",
        sites[NORTH].id,
        "1.2.3",
        {"n": 1},
    )
    assert datetime.fromisoformat(event.at) > datetime.now(UTC) - timedelta(minutes=1)


def test_with_redis_unreachable_changes_still_succeed_and_the_worklist_is_served(
    settings: Settings,
    sites: dict[str, Site],
    db: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with db() as session, session.begin():
        user = add_user(session, "dr.north", Role.RADIOLOGIST, NORTH)
        add_study(session, add_patient(session, sites[NORTH]))
    offline = settings.model_copy(update={"redis_url": unused_redis_url()})
    headers = bearer(offline, user)
    with (
        TestClient(_app_with_staging_route(offline, sites[NORTH].id)) as client,
        caplog.at_level(logging.WARNING, logger="worklist.events.bus"),
    ):
        worklist = client.get("/api/v1/worklist", headers=headers)
        assert worklist.status_code == 200
        assert len(worklist.json()["items"]) == 1
        assert client.post("/test/change").status_code == 200
        events = client.get("/api/v1/events", headers=headers)
        assert events.status_code == 503
        assert "Redis" in events.json()["detail"]
    assert _marker_rows(db) == 1
    assert "events not published" in caplog.text


def test_the_worker_commits_its_jobs_even_when_redis_is_unreachable(
    settings: Settings, sites: dict[str, Site], db: sessionmaker[Session]
) -> None:
    with db() as session, session.begin():
        study = add_study(
            session,
            add_patient(session, sites[NORTH]),
            status=StudyStatus.RECEIVING,
            received_at=datetime.now(UTC) - timedelta(hours=1),
        )
    done = run_jobs(settings, JOBS, redis_url=unused_redis_url())
    assert done["promote_quiet_studies"] == 1
    with db() as session:
        status = session.scalar(select(Study.status).where(Study.id == study.id))
    assert status is StudyStatus.READY
