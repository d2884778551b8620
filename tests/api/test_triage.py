"""PATCH /api/v1/studies/{uid}: managers and admins set the priority; due_at follows."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import (
    NORTH,
    SOUTH,
    T0,
    add_patient,
    add_study,
    add_user,
    audit_rows,
    bearer,
)
from worklist.app import create_app
from worklist.config import Settings
from worklist.enums import AuditAction, Priority, Role
from worklist.models import Site, Study

ROLES = {
    "manager_north": (Role.MANAGER, (NORTH,)),
    "manager_south": (Role.MANAGER, (SOUTH,)),
    "admin": (Role.ADMIN, ()),
    "rad_north": (Role.RADIOLOGIST, (NORTH,)),
    "alert_north": (Role.ALERT_CLIENT, (NORTH,)),
}


@pytest.fixture
def people(
    db: sessionmaker[Session], sites: dict[str, Site], settings: Settings
) -> dict[str, dict[str, str]]:
    """Bearer headers by username, one user per role of interest."""
    with db() as session, session.begin():
        users = {
            name: add_user(session, name, role, *codes) for name, (role, codes) in ROLES.items()
        }
    return {name: bearer(settings, user) for name, user in users.items()}


@pytest.fixture
def routine_uid(db: sessionmaker[Session], sites: dict[str, Site]) -> str:
    """A routine NORTH study received at T0."""
    with db() as session, session.begin():
        study = add_study(
            session, add_patient(session, sites[NORTH]), received_at=T0, due_at=T0 + timedelta(7)
        )
        return study.study_uid


@pytest.mark.parametrize("username", ["manager_north", "admin"])
def test_triage_sets_priority_and_recomputes_due_at_from_arrival(
    client: TestClient,
    db: sessionmaker[Session],
    people: dict[str, dict[str, str]],
    routine_uid: str,
    username: str,
) -> None:
    response = client.patch(
        f"/api/v1/studies/{routine_uid}", json={"priority": "stat"}, headers=people[username]
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["study_uid"], body["priority"]) == (routine_uid, "stat")
    assert datetime.fromisoformat(body["due_at"]) == T0 + timedelta(hours=1)
    with db() as session:
        stored = session.scalars(select(Study).where(Study.study_uid == routine_uid)).one()
    assert (stored.priority, stored.due_at) == (Priority.STAT, T0 + timedelta(hours=1))
    [row] = audit_rows(db, AuditAction.STUDY_TRIAGED)
    assert row.actor == username
    assert (row.detail["old_priority"], row.detail["new_priority"]) == ("routine", "stat")


def test_triage_reorders_the_worklist(
    client: TestClient,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    people: dict[str, dict[str, str]],
) -> None:
    with db() as session, session.begin():
        patient = add_patient(session, sites[NORTH])
        first = add_study(session, patient, received_at=T0, due_at=T0 + timedelta(hours=20))
        second = add_study(
            session,
            patient,
            received_at=T0 + timedelta(hours=1),
            due_at=T0 + timedelta(days=7, hours=1),
        )

    def order() -> list[str]:
        response = client.get("/api/v1/worklist", headers=people["manager_north"])
        return [item["study_uid"] for item in response.json()["items"]]

    assert order() == [first.study_uid, second.study_uid]
    client.patch(
        f"/api/v1/studies/{second.study_uid}",
        json={"priority": "urgent"},
        headers=people["manager_north"],
    )
    assert order() == [second.study_uid, first.study_uid]


def test_triage_uses_the_configured_turnaround_targets(
    settings: Settings, people: dict[str, dict[str, str]], routine_uid: str
) -> None:
    targets = "stat=30m,urgent=2h,inpatient=12h,cancer_pathway=48h,routine=14d"
    app = create_app(
        Settings.model_validate({**settings.model_dump(), "turnaround_targets": targets})
    )
    with TestClient(app) as client:
        response = client.patch(
            f"/api/v1/studies/{routine_uid}",
            json={"priority": "cancer_pathway"},
            headers=people["admin"],
        )

    assert response.status_code == 200, response.text
    assert datetime.fromisoformat(response.json()["due_at"]) == T0 + timedelta(hours=48)


def test_radiologist_who_sees_the_study_gets_403(
    client: TestClient, people: dict[str, dict[str, str]], routine_uid: str
) -> None:
    response = client.patch(
        f"/api/v1/studies/{routine_uid}", json={"priority": "stat"}, headers=people["rad_north"]
    )

    assert response.status_code == 403
    assert "manager" in response.json()["detail"]


@pytest.mark.parametrize("username", ["manager_south", "alert_north"])
def test_callers_who_cannot_see_the_study_get_404(
    client: TestClient, people: dict[str, dict[str, str]], routine_uid: str, username: str
) -> None:
    response = client.patch(
        f"/api/v1/studies/{routine_uid}", json={"priority": "stat"}, headers=people[username]
    )

    assert response.status_code == 404


@pytest.mark.parametrize("body", [{"priority": "whenever"}, {}, {"priority": "stat", "x": 1}])
def test_invalid_body_is_422(
    client: TestClient, people: dict[str, dict[str, str]], routine_uid: str, body: object
) -> None:
    response = client.patch(f"/api/v1/studies/{routine_uid}", json=body, headers=people["admin"])

    assert response.status_code == 422
