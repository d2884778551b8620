"""The background worker: quiet studies become ready; the loop survives database outages;
the webhook dispatcher runs beside the jobs."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from itertools import count, pairwise

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import run_committed
from tests.factories import add_outbox_message
from tests.receiver import WebhookReceiver
from worklist import worker as worker_module
from worklist.config import Settings
from worklist.enums import OutboxEventType, Priority, StudyStatus
from worklist.models import Patient, Site, Study
from worklist.sites.service import new_webhook_secret
from worklist.synthetic import new_uid
from worklist.worker import Job, promote_quiet_studies, run_worker

NOW = datetime(2030, 3, 4, 12, 0, tzinfo=UTC)
_accessions = count(1)


def add_study(session: Session, *, status: StudyStatus, last_instance_at: datetime) -> str:
    """A study of a fresh patient at the only site (created on first use)."""
    site = session.scalar(select(Site).where(Site.code == "RXA"))
    if site is None:
        site = Site(code="RXA", name="RXA Trust")
        session.add(site)
        session.flush()
    patient = Patient(site_id=site.id, local_id=f"P{next(_accessions)}", name="DOE^JANE")
    session.add(patient)
    session.flush()
    study = Study(
        study_uid=new_uid(),
        site_id=site.id,
        patient_id=patient.id,
        priority=Priority.ROUTINE,
        due_at=last_instance_at + timedelta(days=7),
        status=status,
        received_at=last_instance_at - timedelta(minutes=5),
        last_instance_at=last_instance_at,
    )
    session.add(study)
    session.flush()
    return study.study_uid


def statuses(db: sessionmaker[Session]) -> dict[str, StudyStatus]:
    with db() as session:
        return dict(session.execute(select(Study.study_uid, Study.status)).all())


def promoted_total() -> float:
    return REGISTRY.get_sample_value("worklist_studies_ready_total") or 0.0


def _promote(database_url: str, *, stable_seconds: float, now: datetime | None = None) -> int:
    return run_committed(
        database_url,
        lambda session: promote_quiet_studies(session, stable_seconds=stable_seconds, now=now),
    )


def test_promotion_waits_for_stable_seconds_of_quiet(
    db: sessionmaker[Session], database_url: str
) -> None:
    with db() as session, session.begin():
        quiet = add_study(
            session, status=StudyStatus.RECEIVING, last_instance_at=NOW - timedelta(seconds=31)
        )
        busy = add_study(
            session, status=StudyStatus.RECEIVING, last_instance_at=NOW - timedelta(seconds=29)
        )
        claimed = add_study(
            session, status=StudyStatus.IN_PROGRESS, last_instance_at=NOW - timedelta(hours=1)
        )
        reported = add_study(
            session, status=StudyStatus.REPORTED, last_instance_at=NOW - timedelta(hours=1)
        )
    before = promoted_total()

    first = _promote(database_url, stable_seconds=30, now=NOW)

    assert first == 1
    assert statuses(db) == {
        quiet: StudyStatus.READY,
        busy: StudyStatus.RECEIVING,
        claimed: StudyStatus.IN_PROGRESS,
        reported: StudyStatus.REPORTED,
    }
    assert promoted_total() == before + 1

    later = _promote(database_url, stable_seconds=30, now=NOW + timedelta(seconds=2))

    assert later == 1
    assert statuses(db)[busy] == StudyStatus.READY
    assert promoted_total() == before + 2


def test_promotion_uses_the_database_clock_by_default(
    db: sessionmaker[Session], database_url: str
) -> None:
    with db() as session, session.begin():
        db_now = session.scalar(select(func.now()))
        assert db_now is not None
        old = add_study(
            session, status=StudyStatus.RECEIVING, last_instance_at=db_now - timedelta(minutes=5)
        )
        fresh = add_study(
            session, status=StudyStatus.RECEIVING, last_instance_at=db_now + timedelta(seconds=5)
        )

    promoted = _promote(database_url, stable_seconds=60)

    assert promoted == 1
    assert statuses(db) == {old: StudyStatus.READY, fresh: StudyStatus.RECEIVING}


def test_run_worker_promotes_in_the_background_and_stops_on_request(
    db: sessionmaker[Session], settings: Settings
) -> None:
    with db() as session, session.begin():
        uid = add_study(
            session,
            status=StudyStatus.RECEIVING,
            last_instance_at=datetime.now(UTC) - timedelta(seconds=5),
        )
    stop = threading.Event()
    fast = settings.model_copy(
        update={"study_stable_seconds": 1.0, "worker_interval_seconds": 0.05}
    )
    thread = threading.Thread(target=run_worker, args=(fast, stop), kwargs={"dispatch": False})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while statuses(db)[uid] != StudyStatus.READY and time.monotonic() < deadline:
            time.sleep(0.05)
        assert statuses(db)[uid] == StudyStatus.READY
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_run_worker_backs_off_and_recovers_after_database_errors(
    db: sessionmaker[Session], settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[float] = []
    recovered = threading.Event()

    async def flaky(session: AsyncSession, _: Settings) -> int:
        calls.append(time.monotonic())
        if len(calls) <= 3:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        await session.execute(select(1))
        recovered.set()
        return 0

    stop = threading.Event()
    fast = settings.model_copy(update={"worker_interval_seconds": 0.02})
    thread = threading.Thread(
        target=run_worker,
        args=(fast, stop),
        kwargs={"jobs": [Job("flaky", flaky)], "dispatch": False},
    )
    with caplog.at_level(logging.INFO, logger="worklist.worker"):
        thread.start()
        try:
            assert recovered.wait(10)
        finally:
            stop.set()
            thread.join(5)
    assert not thread.is_alive()
    gaps = [b - a for a, b in pairwise(calls)]
    assert gaps[0] >= 0.04
    assert gaps[2] >= 0.16
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("database unavailable, backing off") == 3
    assert "database reachable again" in messages


def test_run_worker_keeps_running_while_the_database_is_unreachable(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = settings.model_copy(
        update={
            "database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none",
            "worker_interval_seconds": 0.01,
        }
    )
    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker, args=(unreachable, stop), kwargs={"dispatch": False}
    )

    def warnings() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == "database unavailable, backing off"]

    with caplog.at_level(logging.WARNING, logger="worklist.worker"):
        thread.start()
        # Failed, backed off and tried again (and again): it keeps running.
        deadline = time.monotonic() + 10
        while len(warnings()) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        alive = thread.is_alive()
        stop.set()
        thread.join(5)
    assert len(warnings()) >= 3
    assert alive
    assert not thread.is_alive()
    assert all("error" in r.__dict__ for r in warnings())


def _dispatcher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "webhook-dispatcher"]


def test_run_worker_delivers_webhooks_beside_the_jobs_and_stops_them_together(
    db: sessionmaker[Session], settings: Settings, webhook_receiver: WebhookReceiver
) -> None:
    secret = new_webhook_secret()
    webhook_receiver.secrets = [secret]
    with db() as session, session.begin():
        site = Site(code="HOOK", name="Hook Trust", webhook_url=webhook_receiver.url)
        site.webhook_secret = secret
        session.add(site)
        session.flush()
        message = add_outbox_message(
            session, site, event_type=OutboxEventType.REPORT_FINALISED, data={"x": 1}
        )
    stop = threading.Event()
    fast = settings.model_copy(update={"worker_interval_seconds": 0.05})
    thread = threading.Thread(target=run_worker, args=(fast, stop), kwargs={"jobs": []})
    thread.start()
    try:
        [request] = webhook_receiver.wait_accepted(1)
        assert request.webhook_id == message.webhook_id
        assert _dispatcher_threads()
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
    assert not _dispatcher_threads()


def test_run_worker_restarts_a_dispatcher_that_exited(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    runs: list[threading.Event] = []
    second_run = threading.Event()

    def short_lived_then_steady(_: Settings, stop: threading.Event) -> None:
        runs.append(stop)
        if len(runs) == 2:
            second_run.set()
            stop.wait()

    monkeypatch.setattr(worker_module, "run_dispatcher", short_lived_then_steady)
    stop = threading.Event()
    fast = settings.model_copy(update={"worker_interval_seconds": 0.02})
    thread = threading.Thread(target=run_worker, args=(fast, stop), kwargs={"jobs": []})
    with caplog.at_level(logging.ERROR, logger="worklist.worker"):
        thread.start()
        try:
            assert second_run.wait(10)
        finally:
            stop.set()
            thread.join(10)
    assert not thread.is_alive()
    assert len(runs) == 2
    assert runs[1].is_set(), "the restarted dispatcher was not told to stop"
    assert "webhook dispatcher exited unexpectedly, restarting it" in caplog.messages
