"""An order that comes before its images: the gateway matches the new study to it.

Orders are applied as the listeners apply them (``apply_order`` in a committed
transaction); the images go through the real gateway from a pynetdicom SCU.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway.server import Gateway
from tests.api.conftest import audit_rows, bearer, client
from tests.dicomweb.conftest import ADMIN, DR_A, gateway, sites, users
from tests.orders.support import (
    ORDER_OUT,
    apply,
    bare_order,
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
from worklist.models import User
from worklist.orders.content import OrderControl

__all__ = ["client", "gateway", "sites", "users"]

WORKLIST = "/api/v1/worklist"
ALL_STATUSES = [status.value for status in StudyStatus]


def test_images_after_their_order_take_its_priority_due_time_and_context(
    gateway: Gateway,
    client: TestClient,
    db: sessionmaker[Session],
    settings: Settings,
    users: dict[str, User],
    tmp_path: Path,
) -> None:
    applied = apply(settings, site_id(db, "RXA"), new_order("ACC-ORD-1"))
    assert applied.result.created
    assert applied.result.study_uids == ()
    admin = bearer(settings, users[ADMIN])
    # An order with no images is not on the worklist, whatever the status filter.
    assert client.get(WORKLIST, params={"status": ALL_STATUSES}, headers=admin).json() == {
        "items": [],
        "next_cursor": None,
    }

    pushed = push_study(gateway.port, study_spec("ACC-ORD-1"), tmp_path)
    uid = pushed.spec.study_uid

    study = study_row(db, uid)
    assert study.order_id == applied.result.order_id
    assert study.priority is Priority.URGENT  # the DICOM header said nothing: routine
    assert study.due_at == study.received_at + settings.turnaround_targets["urgent"]
    assert study.status is StudyStatus.RECEIVING
    [matched] = audit_rows(db, AuditAction.ORDER_MATCHED)
    assert (matched.study_uid, matched.actor_kind, matched.detail) == (
        uid,
        "node",
        {"order_id": applied.result.order_id},
    )
    detail = client.get(f"/api/v1/studies/{uid}", headers=bearer(settings, users[DR_A]))
    assert detail.status_code == 200, detail.text
    assert detail.json()["order"] == ORDER_OUT
    assert StudyFlag.NO_ORDER not in detail.json()["flags"]
    assert detail.json()["priority"] == "urgent"


def test_images_of_an_order_cancelled_before_they_came_are_kept_off_the_worklist(
    gateway: Gateway,
    client: TestClient,
    db: sessionmaker[Session],
    settings: Settings,
    users: dict[str, User],
    tmp_path: Path,
) -> None:
    rxa = site_id(db, "RXA")
    apply(settings, rxa, new_order("ACC-ORD-2"))
    cancelled = apply(settings, rxa, bare_order("ACC-ORD-2", OrderControl.CANCEL))
    assert cancelled.result.study_uids == ()

    pushed = push_study(gateway.port, study_spec("ACC-ORD-2"), tmp_path)
    uid = pushed.spec.study_uid

    assert study_row(db, uid).status is StudyStatus.CANCELLED
    assert stored_instances(db, uid) == len(pushed.files) == 4
    assert sorted(p.name for p in settings.dicom_dir.rglob("*.dcm")) == sorted(
        f"{sop}.dcm" for sop in pushed.files
    )
    # The worker never makes it ready, however quiet its images are.
    assert promote(settings, db, uid) == 0
    assert study_row(db, uid).status is StudyStatus.CANCELLED
    radiologist = bearer(settings, users[DR_A])
    assert client.get(WORKLIST, headers=radiologist).json()["items"] == []
    listed = client.get(WORKLIST, params={"status": "cancelled"}, headers=radiologist).json()
    [item] = listed["items"]
    assert (item["study_uid"], item["status"], item["order"]) == (uid, "cancelled", ORDER_OUT)
