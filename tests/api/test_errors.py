"""Error bodies never echo the request: 422 keeps FastAPI's list shape, 500 is bare."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, add_patient, add_study, add_user, bearer
from worklist.api.deps import SessionDep
from worklist.api.errors import MAX_LOC_PART_CHARS, MAX_REPORTED_ERRORS
from worklist.app import create_app
from worklist.config import Settings
from worklist.enums import Role
from worklist.models import Site

MARKER = "PATIENT-MARKER-8c41"


def test_a_422_lists_loc_msg_and_type_only_and_never_the_input(
    client: TestClient, settings: Settings, db: sessionmaker[Session], sites: dict[str, Site]
) -> None:
    with db() as session, session.begin():
        rad = add_user(session, "rad", Role.RADIOLOGIST, NORTH)
        uid = add_study(session, add_patient(session, sites[NORTH])).study_uid

    response = client.post(
        f"/api/v1/studies/{uid}/alerts",
        json={"category": MARKER, "finding": MARKER + "\x00"},
        headers=bearer(settings, rad),
    )

    assert response.status_code == 422
    assert MARKER not in response.text
    detail = response.json()["detail"]
    assert {tuple(sorted(error)) for error in detail} == {("loc", "msg", "type")}
    assert sorted(error["loc"][-1] for error in detail) == ["category", "finding"]


def test_a_body_of_many_long_unknown_keys_gets_a_short_422(
    client: TestClient, settings: Settings, db: sessionmaker[Session], sites: dict[str, Site]
) -> None:
    with db() as session, session.begin():
        rad = add_user(session, "rad", Role.RADIOLOGIST, NORTH)
        uid = add_study(session, add_patient(session, sites[NORTH])).study_uid
    body = {f"{MARKER}{'k' * 200}{n}": n for n in range(200)}

    response = client.post(
        f"/api/v1/studies/{uid}/alerts", json=body, headers=bearer(settings, rad)
    )

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert len(detail) == MAX_REPORTED_ERRORS
    assert all(len(part) <= MAX_LOC_PART_CHARS for e in detail for part in e["loc"])
    assert len(response.content) < 10_000


def test_malformed_json_is_a_422_without_the_parser_context(
    client: TestClient, settings: Settings, db: sessionmaker[Session], sites: dict[str, Site]
) -> None:
    with db() as session, session.begin():
        rad = add_user(session, "rad", Role.RADIOLOGIST, NORTH)
        uid = add_study(session, add_patient(session, sites[NORTH])).study_uid

    response = client.put(
        f"/api/v1/studies/{uid}/report",
        content=b'{"text": "' + MARKER.encode() + b'"',
        headers={**bearer(settings, rad), "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert MARKER not in response.text
    [error] = response.json()["detail"]
    assert error["type"] == "json_invalid"
    assert set(error) == {"loc", "msg", "type"}


def test_an_unexpected_error_is_a_bare_500_without_its_message(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    app = create_app(settings)

    async def failing(session: SessionDep) -> None:
        # The database's own message quotes the value: "invalid input syntax ... MARKER".
        await session.execute(text("SELECT CAST(:value AS integer)"), {"value": MARKER})

    app.add_api_route("/test/failing", failing)
    with TestClient(app) as test_client:
        response = test_client.get("/test/failing")

    assert response.status_code == 500
    assert json.loads(response.content) == {"detail": "internal server error"}
