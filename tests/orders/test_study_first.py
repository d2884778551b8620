"""A study indexed before its order: the order overrides it, a cancel takes it off the
worklist (claim released, audited), new images keep it cancelled, a new order reinstates it."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway.server import Gateway
from tests.api.conftest import audit_rows, bearer, client
from tests.dicomweb.conftest import DR_A, Pushed, gateway, sites, users
from tests.orders.support import (
    apply,
    bare_order,
    make_ready,
    new_order,
    promote,
    push_study,
    site_id,
    stored_instances,
    study_row,
    study_spec,
)
from worklist.config import Settings
from worklist.enums import AuditAction, Priority, StudyFlag, StudyStatus
from worklist.events import EventType
from worklist.models import Claim, User
from worklist.orders.content import OrderControl
from worklist.orders.service import RELEASE_REASON_CANCELLED

__all__ = ["client", "gateway", "sites", "users"]

ACCESSION = "ACC-SF-1"
WORKLIST = "/api/v1/worklist"


@pytest.fixture
def claimed(
    gateway: Gateway,
    client: TestClient,
    db: sessionmaker[Session],
    settings: Settings,
    users: dict[str, User],
    tmp_path: Path,
) -> Pushed:
    """An RXA study with no order yet, pushed through the gateway and claimed by dr.a."""
    pushed = push_study(gateway.port, study_spec(ACCESSION), tmp_path / "first")
    make_ready(db, pushed.spec.study_uid)
    claim = client.post(
        f"/api/v1/studies/{pushed.spec.study_uid}/claim", headers=bearer(settings, users[DR_A])
    )
    assert claim.status_code == 200, claim.text
    return pushed


def _uids(client: TestClient, headers: dict[str, str], **params: str) -> list[str]:
    response = client.get(WORKLIST, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [item["study_uid"] for item in response.json()["items"]]


def test_an_order_for_an_indexed_study_overrides_its_priority_and_due_time(
    claimed: Pushed,
    client: TestClient,
    db: sessionmaker[Session],
    settings: Settings,
    users: dict[str, User],
) -> None:
    uid = claimed.spec.study_uid
    headers = bearer(settings, users[DR_A])
    before = client.get(f"/api/v1/studies/{uid}", headers=headers).json()
    assert (before["order"], before["priority"]) == (None, "routine")
    assert StudyFlag.NO_ORDER in before["flags"]

    applied = apply(settings, site_id(db, "RXA"), new_order(ACCESSION, priority=Priority.STAT))

    assert applied.result.study_uids == (uid,)
    study = study_row(db, uid)
    assert study.order_id == applied.result.order_id
    assert study.priority is Priority.STAT
    assert study.due_at == study.received_at + settings.turnaround_targets["stat"]
    assert study.status is StudyStatus.IN_PROGRESS  # the radiologist keeps it
    [updated] = applied.of_type(EventType.STUDY_UPDATED)
    assert (updated.study_uid, updated.data) == (
        uid,
        {"priority": "stat", "due_at": study.due_at.isoformat()},
    )
    [matched] = audit_rows(db, AuditAction.ORDER_MATCHED)
    assert (matched.study_uid, matched.detail) == (uid, {"order_id": applied.result.order_id})
    after = client.get(f"/api/v1/studies/{uid}", headers=headers).json()
    assert after["order"]["placer_order_number"] == "PL-1"
    assert after["priority"] == "stat"
    assert StudyFlag.NO_ORDER not in after["flags"]


def test_a_cancel_takes_the_study_off_the_worklist_and_releases_its_claim(
    claimed: Pushed,
    client: TestClient,
    db: sessionmaker[Session],
    settings: Settings,
    users: dict[str, User],
) -> None:
    uid = claimed.spec.study_uid
    rxa = site_id(db, "RXA")
    apply(settings, rxa, new_order(ACCESSION))

    cancelled = apply(settings, rxa, bare_order(ACCESSION, OrderControl.CANCEL))

    assert study_row(db, uid).status is StudyStatus.CANCELLED
    with db() as session:
        assert session.scalars(select(Claim)).all() == []
    [released] = cancelled.of_type(EventType.STUDY_RELEASED)
    assert (released.study_uid, released.data) == (
        uid,
        {"reason": RELEASE_REASON_CANCELLED, "username": DR_A},
    )
    [updated] = cancelled.of_type(EventType.STUDY_UPDATED)
    assert updated.data == {"status": "cancelled"}
    [audited] = audit_rows(db, AuditAction.STUDY_CANCELLED)
    assert (audited.study_uid, audited.actor, audited.detail["old_status"]) == (
        uid,
        "RXA_RIS",
        "in_progress",
    )
    assert [row.detail["control"] for row in audit_rows(db, AuditAction.ORDER_CANCELLED)] == ["CA"]
    headers = bearer(settings, users[DR_A])
    assert uid not in _uids(client, headers)
    assert _uids(client, headers, status="cancelled") == [uid]
    refused = client.post(f"/api/v1/studies/{uid}/claim", headers=headers)
    assert refused.status_code == 409, refused.text
    assert client.post(f"{WORKLIST}/next", headers=headers).status_code == 204
    assert study_row(db, uid).status is StudyStatus.CANCELLED


def test_images_after_a_cancel_are_stored_and_a_new_order_reinstates_the_study(
    claimed: Pushed,
    gateway: Gateway,
    client: TestClient,
    db: sessionmaker[Session],
    settings: Settings,
    users: dict[str, User],
    tmp_path: Path,
) -> None:
    uid = claimed.spec.study_uid
    rxa = site_id(db, "RXA")
    apply(settings, rxa, new_order(ACCESSION))
    apply(settings, rxa, bare_order(ACCESSION, OrderControl.DISCONTINUE))

    more = push_study(
        gateway.port, study_spec(ACCESSION, series=1, study_uid=uid), tmp_path / "more"
    )

    assert stored_instances(db, uid) == len(claimed.files) + len(more.files) == 6
    assert study_row(db, uid).status is StudyStatus.CANCELLED
    assert promote(settings, db, uid) == 0

    reinstated = apply(settings, rxa, new_order(ACCESSION))

    assert reinstated.result.study_uids == (uid,)
    assert study_row(db, uid).status is StudyStatus.RECEIVING
    [updated] = reinstated.of_type(EventType.STUDY_UPDATED)
    assert updated.data == {"status": "receiving"}
    [audited] = audit_rows(db, AuditAction.STUDY_REINSTATED)
    assert (audited.study_uid, audited.detail["old_status"]) == (uid, "cancelled")
    assert promote(settings, db, uid) == 1
    assert study_row(db, uid).status is StudyStatus.READY
    assert _uids(client, bearer(settings, users[DR_A])) == [uid]
