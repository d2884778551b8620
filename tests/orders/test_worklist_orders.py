"""What the radiologist sees of an order: ``order`` and the ``no_order`` flag on every
worklist item (list, next, triage, detail, prior detail), the ``patient_source`` filter,
and the visibility rule unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
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
    client,
    sites,
)
from tests.orders.support import ORDER_OUT, apply, new_order
from worklist.config import Settings
from worklist.enums import AuditAction, PatientSource, Role, StudyFlag
from worklist.models import Site

__all__ = ["client", "sites"]

WORKLIST = "/api/v1/worklist"


@dataclass(frozen=True)
class Ward:
    """NORTH studies by the setting their order came from (``none``: no order), and who looks."""

    uids: dict[str, str]
    headers: dict[str, dict[str, str]]


@pytest.fixture
def ward(db: sessionmaker[Session], sites: dict[str, Site], settings: Settings) -> Ward:
    """One patient's four NORTH studies, most urgent first: emergency, gp, outpatient, none.

    The users: rad_north, rad_south (no privilege at NORTH), manager_north, admin.
    """
    settings_of = {"emergency": 1, "gp": 2, "outpatient": 3, "none": 4}
    with db() as session, session.begin():
        patient = add_patient(session, sites[NORTH])
        uids = {
            source: add_study(
                session,
                patient,
                accession_number=f"A-{source}",
                due_at=T0 + timedelta(hours=hours),
            ).study_uid
            for source, hours in settings_of.items()
        }
        people = {
            "rad_north": add_user(session, "rad_north", Role.RADIOLOGIST, NORTH),
            "rad_south": add_user(session, "rad_south", Role.RADIOLOGIST, SOUTH),
            "manager_north": add_user(session, "manager_north", Role.MANAGER, NORTH),
            "admin": add_user(session, "admin", Role.ADMIN),
        }
    for source in ("emergency", "gp", "outpatient"):
        content = new_order(f"A-{source}", patient_source=PatientSource(source), priority=None)
        apply(settings, sites[NORTH].id, content)
    return Ward(uids, {name: bearer(settings, user) for name, user in people.items()})


def _items(client: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = client.get(WORKLIST, params=params, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _order_of(source: str) -> dict[str, Any]:
    return {**ORDER_OUT, "patient_source": source}


def test_a_study_without_an_order_is_flagged_no_order_and_one_with_shows_it(
    client: TestClient, ward: Ward
) -> None:
    items = {i["study_uid"]: i for i in _items(client, ward.headers["rad_north"])}

    without = items[ward.uids["none"]]
    assert (without["order"], without["flags"]) == (None, [StudyFlag.NO_ORDER])
    emergency = items[ward.uids["emergency"]]
    assert (emergency["order"], emergency["flags"]) == (_order_of("emergency"), [])
    detail = client.get(f"/api/v1/studies/{ward.uids['none']}", headers=ward.headers["admin"])
    assert (detail.json()["order"], detail.json()["flags"]) == (None, ["no_order"])


def test_the_worklist_filters_by_patient_source(
    client: TestClient, ward: Ward, db: sessionmaker[Session]
) -> None:
    headers = ward.headers["rad_north"]
    uids = ward.uids

    def listed(*sources: str) -> list[str]:
        return [i["study_uid"] for i in _items(client, headers, patient_source=list(sources))]

    assert listed("emergency") == [uids["emergency"]]
    assert listed("gp", "outpatient") == [uids["gp"], uids["outpatient"]]
    assert listed("inpatient", "other") == []
    assert listed() == [uids["emergency"], uids["gp"], uids["outpatient"], uids["none"]]
    bad = client.get(WORKLIST, params={"patient_source": "ward"}, headers=headers)
    assert bad.status_code == 422
    assert audit_rows(db, AuditAction.WORKLIST_LIST)[0].detail["filters"]["patient_source"] == [
        "emergency"
    ]


def test_next_takes_the_patient_source_filter(client: TestClient, ward: Ward) -> None:
    response = client.post(
        f"{WORKLIST}/next", params={"patient_source": "gp"}, headers=ward.headers["rad_north"]
    )

    assert response.status_code == 200, response.text
    assert response.json()["study"]["study_uid"] == ward.uids["gp"]
    assert response.json()["study"]["order"] == _order_of("gp")


def test_every_view_of_a_study_shows_the_same_order(client: TestClient, ward: Ward) -> None:
    uid, via = ward.uids["emergency"], ward.uids["none"]
    expected = _order_of("emergency")
    radiologist, manager = ward.headers["rad_north"], ward.headers["manager_north"]

    listed = {i["study_uid"]: i for i in _items(client, radiologist)}[uid]
    detail = client.get(f"/api/v1/studies/{uid}", headers=radiologist).json()
    prior = client.get(f"/api/v1/studies/{via}/priors/{uid}", headers=radiologist).json()
    triaged = client.patch(f"/api/v1/studies/{uid}", json={"priority": "stat"}, headers=manager)
    claimed = client.post(f"{WORKLIST}/next", headers=radiologist).json()["study"]

    assert triaged.status_code == 200, triaged.text
    assert claimed["study_uid"] == uid
    views = [listed, detail, prior, triaged.json(), claimed]
    assert [view["order"] for view in views] == [expected] * 5
    assert [view["flags"] for view in views] == [[]] * 5


def test_a_radiologist_without_privilege_at_the_site_sees_nothing_of_the_order(
    client: TestClient, ward: Ward
) -> None:
    headers = ward.headers["rad_south"]

    assert _items(client, headers) == []
    assert _items(client, headers, patient_source=["emergency", "gp"]) == []
    for uid in ward.uids.values():
        assert client.get(f"/api/v1/studies/{uid}", headers=headers).status_code == 404
    assert client.post(f"{WORKLIST}/next", headers=headers).status_code == 204
