"""/healthz, /readyz and /metrics."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import (
    LOOPBACK_CLIENT,
    NORTH,
    SOUTH,
    add_patient,
    add_study,
    add_user,
    bearer,
)
from worklist.app import create_app
from worklist.config import Settings
from worklist.enums import Priority, Role, StudyStatus
from worklist.models import Site

CLOSED_REDIS = "redis://127.0.0.1:1/0"
CLOSED_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"


def test_healthz_is_ok(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ok_when_database_and_redis_answer(client: TestClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_is_503_naming_redis_when_redis_is_unreachable(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    with TestClient(create_app(settings.model_copy(update={"redis_url": CLOSED_REDIS}))) as client:
        response = client.get("/readyz")
        health = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "redis": "failed"}
    assert health.status_code == 200


def test_readyz_is_503_naming_the_database_when_it_is_unreachable(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    no_db = settings.model_copy(update={"database_url": CLOSED_DATABASE})
    with TestClient(create_app(no_db), client=LOOPBACK_CLIENT) as client:
        response = client.get("/readyz")
        metrics = client.get("/metrics")

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "failed", "redis": "ok"}
    assert metrics.status_code == 200


def test_metrics_report_backlog_by_site_priority_and_status(
    loopback_client: TestClient, db: sessionmaker[Session], sites: dict[str, Site]
) -> None:
    with db() as session, session.begin():
        north = add_patient(session, sites[NORTH])
        south = add_patient(session, sites[SOUTH])
        add_study(session, north, priority=Priority.STAT)
        add_study(session, north, priority=Priority.STAT)
        add_study(session, north, status=StudyStatus.RECEIVING)
        add_study(session, south, status=StudyStatus.IN_PROGRESS, priority=Priority.URGENT)
        add_study(session, south, status=StudyStatus.REPORTED)
        add_study(session, south, status=StudyStatus.CANCELLED)  # off the worklist: no backlog

    response = loopback_client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    backlog = {
        (s.labels["site"], s.labels["priority"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(response.text)
        if family.name == "worklist_backlog_studies"
        for s in family.samples
    }
    assert backlog == {
        (NORTH, "stat", "ready"): 2,
        (NORTH, "routine", "receiving"): 1,
        (SOUTH, "urgent", "in_progress"): 1,
    }


def test_metrics_record_api_latency_by_route_template(
    loopback_client: TestClient,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    settings: Settings,
) -> None:
    with db() as session, session.begin():
        admin = add_user(session, "admin", Role.ADMIN)
        study = add_study(session, add_patient(session, sites[NORTH]))
    headers = bearer(settings, admin)
    loopback_client.get(f"/api/v1/studies/{study.study_uid}", headers=headers)
    loopback_client.get("/no/such/path")

    text = loopback_client.get("/metrics").text

    assert 'route="/api/v1/studies/{study_uid}"' in text
    assert study.study_uid not in text
    assert 'route="<unmatched>"' in text
    assert "worklist_api_request_seconds_bucket" in text


def test_openapi_documents_the_api_and_docs_are_served(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()

    assert {"/api/v1/auth/token", "/api/v1/worklist", "/api/v1/studies/{study_uid}"} <= set(
        schema["paths"]
    )
    assert client.get("/docs").status_code == 200
