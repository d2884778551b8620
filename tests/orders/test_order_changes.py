"""Changes to an order (XO) keep what they do not say; concurrent new orders make one row."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import (
    NORTH,
    add_patient,
    add_study,
    add_user,
    audit_rows,
    bearer,
    client,
    sites,
)
from tests.conftest import run_committed
from tests.orders.support import ORDER_OUT, RIS, apply, new_order, order_rows, study_row
from worklist.config import Settings
from worklist.enums import AuditAction, OrderSource, PatientSource, Priority, Role
from worklist.models import Site
from worklist.orders.content import OrderContent, OrderControl
from worklist.orders.service import AppliedOrder, apply_order

__all__ = ["client", "sites"]

LOCK_WAIT_TIMEOUT_SECONDS = 15.0
TESTS_APPLICATION_NAME = "worklist-tests"


def test_a_change_updates_what_it_carries_and_keeps_the_rest(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], settings: Settings
) -> None:
    with db() as session, session.begin():
        study = add_study(session, add_patient(session, sites[NORTH]), accession_number="A-XO")
        headers = bearer(settings, add_user(session, "admin", Role.ADMIN))
    apply(settings, sites[NORTH].id, new_order("A-XO"))

    change = OrderContent(
        control=OrderControl.CHANGE,
        accession_number="A-XO",
        procedure_code="XCHNE",
        procedure_name="CT Head and Neck",
        priority=Priority.STAT,
    )
    changed = apply(settings, sites[NORTH].id, change)

    assert changed.result.created is False
    [order] = order_rows(db)
    assert (order.last_control, order.status, order.ris_priority) == ("XO", "active", "A")
    assert order.procedure_coding_system == "NICIP"
    row = study_row(db, study.study_uid)
    assert row.priority is Priority.STAT
    assert row.due_at == row.received_at + settings.turnaround_targets["stat"]
    shown = client.get(f"/api/v1/studies/{study.study_uid}", headers=headers).json()["order"]
    assert shown == {**ORDER_OUT, "procedure_code": "XCHNE", "procedure_name": "CT Head and Neck"}
    assert [r.detail["control"] for r in audit_rows(db, AuditAction.ORDER_CHANGED)] == ["XO"]
    # A status message (SC) changes nothing the radiologist sees either.
    status = OrderContent(control=OrderControl.STATUS, accession_number="A-XO", ris_status="IP")
    apply(settings, sites[NORTH].id, status)
    assert (
        client.get(f"/api/v1/studies/{study.study_uid}", headers=headers).json()["order"] == shown
    )
    assert order_rows(db)[0].ris_status == "IP"


def _lock_waiters(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = :app AND wait_event_type = 'Lock'"
                ),
                {"app": TESTS_APPLICATION_NAME},
            ).scalar_one()
        )


def test_two_concurrent_new_orders_for_one_accession_make_one_order(
    db: sessionmaker[Session], sites: dict[str, Site], settings: Settings, engine: Engine
) -> None:
    with db() as session, session.begin():
        study = add_study(session, add_patient(session, sites[NORTH]), accession_number="A-RACE")
    site_id, url = sites[NORTH].id, settings.require_database_url()
    inserted, release = threading.Event(), threading.Event()

    async def first(session: AsyncSession) -> AppliedOrder:
        # Holds its new, uncommitted order row until the second sender is blocked on it.
        applied = await apply_order(
            session,
            site_id=site_id,
            content=new_order("A-RACE"),
            source=OrderSource.HL7,
            actor=RIS,
            turnaround_targets=settings.turnaround_targets,
        )
        inserted.set()
        await asyncio.to_thread(release.wait, LOCK_WAIT_TIMEOUT_SECONDS)
        return applied

    with ThreadPoolExecutor(2) as pool:
        winner = pool.submit(run_committed, url, first)
        assert inserted.wait(LOCK_WAIT_TIMEOUT_SECONDS), "the first order was not applied"
        second = new_order("A-RACE", patient_source=PatientSource.GP)
        loser = pool.submit(apply, settings, site_id, second)
        deadline = time.monotonic() + LOCK_WAIT_TIMEOUT_SECONDS
        while _lock_waiters(engine) < 1:
            assert time.monotonic() < deadline, "the second order never waited on the first"
            assert not loser.done(), loser.result()
            time.sleep(0.01)
        release.set()
        won, lost = winner.result(timeout=30), loser.result(timeout=30).result

    assert (won.created, lost.created) == (True, False)
    assert won.order_id == lost.order_id
    [order] = order_rows(db)
    assert order.patient_source == "gp"  # the second applied on top of the first
    assert study_row(db, study.study_uid).order_id == order.id
    assert len(audit_rows(db, AuditAction.ORDER_RECEIVED)) == 1
    assert len(audit_rows(db, AuditAction.ORDER_CHANGED)) == 1
    assert len(audit_rows(db, AuditAction.ORDER_MATCHED)) == 1
