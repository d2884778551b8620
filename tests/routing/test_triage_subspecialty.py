"""PATCH /api/v1/studies/{uid} with ``subspecialty``: a manager of the site or an admin
routes a study by hand (rule null, kept when the rules change); null hands it back to
the rules. Audited, announced as study.updated."""

from __future__ import annotations

import json

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, add_patient, add_study, add_user, audit_rows, bearer
from worklist.config import Settings
from worklist.enums import AuditAction, Role
from worklist.events.bus import STREAM_KEY
from worklist.models import RoutingRule, Site, Study

ROLES = {
    "manager_north": (Role.MANAGER, (NORTH,)),
    "manager_south": (Role.MANAGER, (SOUTH,)),
    "admin": (Role.ADMIN, ()),
    "rad_north": (Role.RADIOLOGIST, (NORTH,)),
}


@pytest.fixture
def people(
    db: sessionmaker[Session], sites: dict[str, Site], settings: Settings
) -> dict[str, dict[str, str]]:
    """Bearer headers by username."""
    with db() as session, session.begin():
        users = {
            name: add_user(session, name, role, *codes) for name, (role, codes) in ROLES.items()
        }
    return {name: bearer(settings, user) for name, user in users.items()}


@pytest.fixture
def head_ct(db: sessionmaker[Session], sites: dict[str, Site]) -> str:
    """A ready NORTH head CT routed neuro by rule 0."""
    with db() as session, session.begin():
        session.add(RoutingRule(position=0, subspecialty="neuro", body_part="HEAD"))
        study = add_study(
            session,
            add_patient(session, sites[NORTH]),
            body_part="HEAD",
            subspecialty="neuro",
            subspecialty_rule=0,
        )
        return study.study_uid


def stored(db: sessionmaker[Session], uid: str) -> tuple[str | None, int | None]:
    with db() as session:
        study = session.scalars(select(Study).where(Study.study_uid == uid)).one()
        return study.subspecialty, study.subspecialty_rule


@pytest.mark.parametrize("username", ["manager_north", "admin"])
def test_a_manager_or_admin_sets_the_subspecialty_by_hand(
    client: TestClient,
    db: sessionmaker[Session],
    people: dict[str, dict[str, str]],
    head_ct: str,
    redis_url: str,
    username: str,
) -> None:
    response = client.patch(
        f"/api/v1/studies/{head_ct}", json={"subspecialty": "head_neck"}, headers=people[username]
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["subspecialty"], body["subspecialty_rule"]) == ("head_neck", None)
    assert body["priority"] == "routine"
    assert stored(db, head_ct) == ("head_neck", None)
    [row] = audit_rows(db, AuditAction.STUDY_TRIAGED)
    assert row.detail == {
        "old_subspecialty": "neuro",
        "old_subspecialty_rule": 0,
        "new_subspecialty": "head_neck",
        "new_subspecialty_rule": None,
    }
    client_redis = redis.Redis.from_url(redis_url)
    [entry] = client_redis.xrange(STREAM_KEY)
    client_redis.close()
    assert entry[1][b"type"] == b"study.updated"
    assert json.loads(entry[1][b"data"]) == {"subspecialty": "head_neck", "subspecialty_rule": None}


def test_a_hand_set_subspecialty_survives_a_rule_change_until_set_back_to_null(
    client: TestClient, db: sessionmaker[Session], people: dict[str, dict[str, str]], head_ct: str
) -> None:
    admin = people["admin"]
    client.patch(f"/api/v1/studies/{head_ct}", json={"subspecialty": "msk"}, headers=admin)

    client.put(
        "/api/v1/routing/rules", json={"rules": [{"subspecialty": "general"}]}, headers=admin
    )
    assert stored(db, head_ct) == ("msk", None)

    response = client.patch(
        f"/api/v1/studies/{head_ct}", json={"subspecialty": None}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert (response.json()["subspecialty"], response.json()["subspecialty_rule"]) == ("general", 0)
    assert stored(db, head_ct) == ("general", 0)


def test_priority_and_subspecialty_change_together(
    client: TestClient, db: sessionmaker[Session], people: dict[str, dict[str, str]], head_ct: str
) -> None:
    response = client.patch(
        f"/api/v1/studies/{head_ct}",
        json={"priority": "urgent", "subspecialty": "chest"},
        headers=people["manager_north"],
    )

    assert (response.json()["priority"], response.json()["subspecialty"]) == ("urgent", "chest")
    [row] = audit_rows(db, AuditAction.STUDY_TRIAGED)
    assert (row.detail["new_priority"], row.detail["new_subspecialty"]) == ("urgent", "chest")


@pytest.mark.parametrize(
    ("username", "body", "status"),
    [
        ("rad_north", {"subspecialty": "msk"}, 403),
        ("manager_south", {"subspecialty": "msk"}, 404),
        ("admin", {"subspecialty": "dermatology"}, 422),
        ("admin", {"subspecialty": "x" * 33}, 422),
        ("admin", {"priority": None}, 422),
    ],
)
def test_refusals_change_nothing(
    client: TestClient,
    db: sessionmaker[Session],
    people: dict[str, dict[str, str]],
    head_ct: str,
    username: str,
    body: dict[str, object],
    status: int,
) -> None:
    response = client.patch(f"/api/v1/studies/{head_ct}", json=body, headers=people[username])

    assert response.status_code == status, response.text
    assert stored(db, head_ct) == ("neuro", 0)
