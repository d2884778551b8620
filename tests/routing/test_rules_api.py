"""/api/v1/routing/rules: admins read and replace the ordered list; a change re-routes the
unreported studies no manager routed by hand; audited; everyone else 403."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, add_patient, add_study, add_user, audit_rows, bearer
from worklist.config import Settings
from worklist.enums import AuditAction, Role, StudyStatus
from worklist.models import Order, Site, Study, Subspecialty

URL = "/api/v1/routing/rules"
RULES: list[dict[str, Any]] = [
    {"subspecialty": "paediatric", "max_age_years": 16},
    {"subspecialty": "neuro", "modality": "ct", "body_part": "head"},
    {"subspecialty": "neuro", "modality": "MR", "procedure_pattern": "brain|head"},
    {"subspecialty": "chest", "procedure_pattern": r"\bchest\b"},
]


@pytest.fixture
def people(
    db: sessionmaker[Session], sites: dict[str, Site], settings: Settings
) -> dict[str, dict[str, str]]:
    """Bearer headers of an admin, a NORTH manager and radiologist."""
    with db() as session, session.begin():
        users = {
            "admin": add_user(session, "admin", Role.ADMIN),
            "manager": add_user(session, "manager", Role.MANAGER, NORTH),
            "rad": add_user(session, "rad", Role.RADIOLOGIST, NORTH),
        }
    return {name: bearer(settings, user) for name, user in users.items()}


def put(client: TestClient, headers: dict[str, str], rules: list[dict[str, Any]]) -> Any:
    return client.put(URL, json={"rules": rules}, headers=headers)


def routing_of(db: sessionmaker[Session]) -> dict[str, tuple[str | None, int | None]]:
    with db() as session:
        rows = session.execute(
            select(Study.description, Study.subspecialty, Study.subspecialty_rule)
        )
        return {row[0]: (row[1], row[2]) for row in rows}


def test_an_admin_replaces_the_list_and_reads_it_back_in_order(
    client: TestClient, db: sessionmaker[Session], people: dict[str, dict[str, str]]
) -> None:
    assert client.get(URL, headers=people["admin"]).json() == {"rules": []}

    response = put(client, people["admin"], RULES)

    assert response.status_code == 200, response.text
    stored = client.get(URL, headers=people["admin"]).json()["rules"]
    assert [rule["position"] for rule in stored] == [0, 1, 2, 3]
    # Modality and body part are DICOM code strings: stored in capitals.
    assert stored[1] == {
        "position": 1, "subspecialty": "neuro", "modality": "CT", "body_part": "HEAD",
        "procedure_pattern": None, "max_age_years": None,
    }  # fmt: skip
    assert response.json()["rules"] == stored
    [row] = audit_rows(db, AuditAction.ROUTING_CHANGED)
    assert row.actor == "admin"
    assert (row.detail["from"], len(row.detail["to"]), row.detail["rerouted"]) == ([], 4, 0)


@pytest.mark.parametrize("who", ["manager", "rad"])
def test_only_admins_read_or_change_the_rules(
    client: TestClient, people: dict[str, dict[str, str]], who: str
) -> None:
    assert client.get(URL, headers=people[who]).status_code == 403
    assert put(client, people[who], RULES).status_code == 403
    # Refused before the body is looked at.
    assert client.put(URL, json={"rules": "nonsense"}, headers=people[who]).status_code == 403
    assert client.get(URL).status_code == 401


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ({"subspecialty": "dermatology"}, "dermatology"),
        ({"subspecialty": "neuro", "procedure_pattern": "(unclosed"}, "procedure_pattern"),
        ({"subspecialty": "neuro", "max_age_years": 0}, None),
        ({"subspecialty": "neuro", "colour": "blue"}, None),
        ({"subspecialty": "Neuro"}, None),
        ({"modality": "CT"}, None),
    ],
)
def test_an_invalid_rule_answers_422_and_keeps_the_list(
    client: TestClient,
    people: dict[str, dict[str, str]],
    rule: dict[str, Any],
    fragment: str | None,
) -> None:
    put(client, people["admin"], RULES[:1])

    response = put(client, people["admin"], [RULES[1], rule])

    assert response.status_code == 422, response.text
    if fragment is not None:
        assert fragment in response.json()["detail"]
    assert len(client.get(URL, headers=people["admin"]).json()["rules"]) == 1


def test_a_retired_subspecialty_cannot_be_given(
    client: TestClient, db: sessionmaker[Session], people: dict[str, dict[str, str]]
) -> None:
    with db() as session, session.begin():
        session.execute(
            update(Subspecialty).where(Subspecialty.code == "cardiac").values(active=False)
        )

    assert put(client, people["admin"], [{"subspecialty": "cardiac"}]).status_code == 422


def test_a_change_reroutes_unreported_studies_but_not_hand_set_or_reported_ones(
    client: TestClient,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    people: dict[str, dict[str, str]],
) -> None:
    with db() as session, session.begin():
        adult = add_patient(session, sites[NORTH], birth_date=date(1970, 1, 1))
        child = add_patient(session, sites[SOUTH], birth_date=date(2025, 1, 1))
        add_study(session, adult, description="head ct", body_part="HEAD")
        add_study(session, adult, description="mr brain", modalities=["MR"])
        add_study(session, child, description="child head", body_part="HEAD")
        add_study(session, adult, description="knee", body_part="KNEE")
        add_study(session, adult, description="by hand", body_part="HEAD",
                  subspecialty="msk", subspecialty_rule=None)  # fmt: skip
        add_study(session, adult, description="reported", body_part="HEAD",
                  status=StudyStatus.REPORTED)  # fmt: skip
        ordered = add_study(session, adult, description="xr", modalities=["CR"])
        order = Order(site_id=ordered.site_id, accession_number="ACC-X", source="hl7",
                      procedure_code="XCCHE", procedure_name="XR Chest")  # fmt: skip
        session.add(order)
        session.flush()
        ordered.order_id = order.id

    response = put(client, people["admin"], RULES)

    assert response.json()["rerouted"] == 4
    assert routing_of(db) == {
        "head ct": ("neuro", 1),
        "mr brain": ("neuro", 2),
        "child head": ("paediatric", 0),
        "knee": (None, None),
        "by hand": ("msk", None),
        "reported": (None, None),
        "xr": ("chest", 3),
    }
    # The worklist item says which rule routed it.
    items = client.get("/api/v1/worklist", headers=people["admin"]).json()["items"]
    by_description = {item["description"]: item for item in items}
    assert by_description["head ct"]["subspecialty"] == "neuro"
    assert by_description["head ct"]["subspecialty_rule"] == 1
    assert by_description["by hand"]["subspecialty_rule"] is None

    # Dropping the rules unroutes what the rules routed, and only that.
    assert put(client, people["admin"], []).json()["rerouted"] == 4
    assert routing_of(db)["by hand"] == ("msk", None)
    assert routing_of(db)["head ct"] == (None, None)


def test_the_list_may_also_be_put_bare_as_design_shows_it(
    client: TestClient, people: dict[str, dict[str, str]]
) -> None:
    response = client.put(URL, json=RULES[:2], headers=people["admin"])

    assert response.status_code == 200, response.text
    stored = client.get(URL, headers=people["admin"]).json()["rules"]
    assert [(rule["position"], rule["subspecialty"]) for rule in stored] == [
        (0, "paediatric"),
        (1, "neuro"),
    ]
    assert (
        client.put(URL, json=[{"subspecialty": "nope"}], headers=people["admin"]).status_code == 422
    )
