"""GET/PATCH /api/v1/sites/{code}/allocation: who reads and changes it, validation, audit."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, audit_rows
from tests.claims.conftest import Staff
from worklist.enums import AuditAction
from worklist.models import Site

DEFAULTS = {
    "cap": 3,
    "next_only_routine": False,
    "general_reader": "always",
    "general_after_share": 0.5,
}


def url(code: str = NORTH) -> str:
    return f"/api/v1/sites/{code}/allocation"


def test_a_new_site_has_the_default_settings(client: TestClient, staff: Staff) -> None:
    response = client.get(url(), headers=staff["manager_north"])

    assert response.status_code == 200, response.text
    assert response.json() == {"site": NORTH, **DEFAULTS}


@pytest.mark.parametrize(
    ("username", "get_status", "patch_status"),
    [
        ("rad_north", 200, 403),
        ("rad_both", 200, 403),
        ("rad_south", 404, 404),
        ("manager_north", 200, 200),
        ("manager_south", 404, 404),
        ("admin", 200, 200),
        ("alert_north", 404, 404),
    ],
)
def test_who_reads_and_who_changes_a_sites_allocation(
    client: TestClient, staff: Staff, username: str, get_status: int, patch_status: int
) -> None:
    got = client.get(url(), headers=staff[username])
    patched = client.patch(url(), headers=staff[username], json={"cap": 5})

    assert (got.status_code, patched.status_code) == (get_status, patch_status), patched.text


def test_an_unknown_site_is_404_even_for_admins(client: TestClient, staff: Staff) -> None:
    assert client.get(url("NOWHERE"), headers=staff["admin"]).status_code == 404
    assert client.patch(url("NOWHERE"), headers=staff["admin"], json={}).status_code == 404


def test_patch_changes_only_the_fields_given_and_is_audited(
    client: TestClient, db: sessionmaker[Session], staff: Staff
) -> None:
    response = client.patch(
        url(),
        headers=staff["manager_north"],
        json={"next_only_routine": True, "general_reader": "after_share"},
    )

    assert response.status_code == 200, response.text
    expected = {**DEFAULTS, "next_only_routine": True, "general_reader": "after_share"}
    assert response.json() == {"site": NORTH, **expected}
    assert client.get(url(), headers=staff["rad_north"]).json() == response.json()
    assert client.get(url(SOUTH), headers=staff["rad_south"]).json() == {"site": SOUTH, **DEFAULTS}
    [row] = audit_rows(db, AuditAction.ALLOCATION_CHANGED)
    assert row.actor == "manager_north"
    assert row.detail == {"code": NORTH, "before": DEFAULTS, "after": expected}
    with db() as session:
        site = session.scalars(select(Site).where(Site.code == NORTH)).one()
    assert (site.next_only_routine, site.general_reader) == (True, "after_share")


def test_a_patch_that_changes_nothing_writes_no_audit_row(
    client: TestClient, db: sessionmaker[Session], staff: Staff
) -> None:
    response = client.patch(url(), headers=staff["admin"], json={"cap": 3})

    assert response.status_code == 200, response.text
    assert audit_rows(db, AuditAction.ALLOCATION_CHANGED) == []


@pytest.mark.parametrize(
    "body",
    [
        {"cap": -1},
        {"cap": 2.5},
        {"cap": "3"},
        {"cap": True},
        {"general_after_share": 1.5},
        {"general_after_share": -0.1},
        {"general_reader": "sometimes"},
        {"next_only_routine": "yes"},
        {"colour": "blue"},
    ],
)
def test_invalid_settings_answer_422(
    client: TestClient, db: sessionmaker[Session], staff: Staff, body: dict[str, Any]
) -> None:
    response = client.patch(url(), headers=staff["admin"], json=body)

    assert response.status_code == 422, response.text
    assert client.get(url(), headers=staff["admin"]).json() == {"site": NORTH, **DEFAULTS}
