"""A `worklist worker` killed with SIGKILL mid-delivery loses no result: a new one sends the
rest, and what was in flight goes again under the same MSH-10 (at-least-once)."""

from __future__ import annotations

import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.fhir.conftest import Result, messages
from tests.outbox.conftest import wait_until
from tests.outbox.test_crash import Workers, worker_sessions
from tests.results.conftest import hl7_deliveries, point_at
from tests.results.receiver import Answer, MllpReceiver
from tests.results.validation import assert_valid_oru
from worklist.config import Settings
from worklist.enums import DeliveryChannel
from worklist.models import Delivery, OutboxMessage, Site
from worklist.outbox import new_webhook_id
from worklist.results.oru import control_id

PER_SITE = 15


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    """Worker processes whose RIS timeout (2 s) makes a lease 9 s."""
    started = Workers(settings, tmp_path)
    started.env["WORKLIST_RIS_TIMEOUT_SECONDS"] = "2"
    try:
        yield started
    finally:
        started.kill_all()


def enqueue_results(db: sessionmaker[Session], body: str, count: int) -> list[str]:
    """``count`` more results (copies of a real one) for every site; their webhook ids."""
    ids = []
    with db() as session, session.begin():
        for site in session.scalars(select(Site).order_by(Site.code)):
            for _ in range(count):
                message = OutboxMessage(
                    webhook_id=new_webhook_id(),
                    site_id=site.id,
                    type="report.finalised",
                    body=body,
                )
                session.add(message)
                session.add(Delivery(message=message, site_id=site.id, channel=DeliveryChannel.HL7))
                ids.append(message.webhook_id)
    return ids


def delivered(db: sessionmaker[Session]) -> set[str]:
    """Webhook ids of the hl7 deliveries recorded delivered."""
    return {row.webhook_id for row in hl7_deliveries(db) if row.status == "delivered"}


def test_kill_9_mid_delivery_then_restart_delivers_every_result(
    result: Result, db: sessionmaker[Session], workers: Workers, ris: MllpReceiver
) -> None:
    for code in ("TRUSTA", "TRUSTB", "TRUSTC"):
        point_at(db, ris.port, code)
    result.sign()
    [signed] = messages(db)
    ids = [signed.webhook_id, *enqueue_results(db, signed.body, PER_SITE)]
    arrived: Counter[str] = Counter()
    lock = threading.Lock()

    def slow(text: str) -> Answer:
        with lock:
            arrived[text.split("\r", 1)[0].split("|")[9]] += 1
        return Answer("AA", delay=0.4)

    ris.behaviour = slow

    first = workers.start()
    wait_until(lambda: sum(arrived.values()) >= 6, timeout=30, what="deliveries under way")
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    # A COMMIT the worker sent just before dying still lands: read once its sessions are gone.
    wait_until(lambda: not worker_sessions(db), timeout=30, what="the dead worker's sessions end")

    by_control_id = {control_id(w): w for w in ids}
    done = delivered(db)
    with lock:
        unrecorded = {c for c in arrived if by_control_id[c] not in done}
    assert unrecorded, "the worker was not killed in the middle of a delivery"

    second = workers.start()
    wait_until(lambda: delivered(db) == set(ids), timeout=60, what="every result delivered")
    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0

    acknowledged = Counter(r.control_id for r in ris.acknowledged("AA"))
    assert set(acknowledged) == set(by_control_id)
    # At-least-once: what was in flight went out again, under the same control id.
    with lock:
        assert all(arrived[c] >= 2 for c in unrecorded)
    for received in ris.messages()[:3]:
        assert_valid_oru(received.text)
