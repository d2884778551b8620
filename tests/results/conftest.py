"""Results to the RIS: trust A's study with its order, a RIS target at the test RIS, and
one step of the HL7 results dispatcher at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import LOOPBACK_CLIENT
from tests.fhir.conftest import ACCESSION, LOCAL_ID, ORIGIN, Result, make_result
from tests.results.receiver import MllpReceiver, ris
from worklist.app import create_app
from worklist.config import Settings
from worklist.db import normalise_url
from worklist.enums import DeliveryChannel, OrderSource, PatientSource
from worklist.models import Delivery, DeliveryAttempt, OutboxMessage, Site, Study
from worklist.models.orders import Order
from worklist.outbox.dispatcher import Dispatcher
from worklist.results.channel import Hl7Channel

__all__ = ["ris"]

PLACER = "PL-778899"
FILLER = "FL-112233"
PROCEDURE_CODE = "CHEAD"
PROCEDURE_NAME = "CT Head"
RIS_AUTHORITY = "RXA_PAS"
REQUESTED_AT = datetime(2030, 1, 7, 7, 45, tzinfo=UTC)


@dataclass(frozen=True)
class Hl7Row:
    """An hl7 delivery as stored, with its message's id and type."""

    webhook_id: str
    type: str
    status: str
    attempts: int
    last_error: str | None


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Short backoff and poll; the RIS timeout far above a quick ACK's latency."""
    return settings.model_copy(
        update={
            "ris_timeout_seconds": 5.0,
            "webhook_retry_base_seconds": 0.05,
            "webhook_retry_max_seconds": 0.4,
            "worker_interval_seconds": 0.2,
        }
    )


@pytest.fixture
def client(settings: Settings, db: sessionmaker[Session]) -> Iterator[TestClient]:
    """The app, called from loopback (so ``/metrics`` answers too)."""
    with TestClient(create_app(settings), client=LOOPBACK_CLIENT) as test_client:
        yield test_client


def point_at(db: sessionmaker[Session], port: int, code: str = ORIGIN) -> None:
    """Set the site's RIS target to 127.0.0.1:``port``."""
    with db() as session, session.begin():
        site = session.scalars(select(Site).where(Site.code == code)).one()
        site.ris_host, site.ris_port = "127.0.0.1", port


def add_order(db: sessionmaker[Session], study_uid: str, **fields: object) -> None:
    """Give the study an order from trust A's RIS (as ``apply_order`` stores one)."""
    with db() as session, session.begin():
        study = session.scalars(select(Study).where(Study.study_uid == study_uid)).one()
        values: dict[str, object] = {
            "site_id": study.site_id,
            "accession_number": ACCESSION,
            "placer_order_number": PLACER,
            "filler_order_number": FILLER,
            "source": OrderSource.HL7.value,
            "patient_identifiers": [
                {"id": LOCAL_ID, "authority": RIS_AUTHORITY, "type": "MR"},
            ],
            "patient_local_id": LOCAL_ID,
            "procedure_code": PROCEDURE_CODE,
            "procedure_coding_system": "NICIP",
            "procedure_name": PROCEDURE_NAME,
            "patient_source": PatientSource.EMERGENCY.value,
            "requested_at": REQUESTED_AT,
            **fields,
        }
        order = Order(**values)
        session.add(order)
        session.flush()
        study.order_id = order.id


@pytest.fixture
def result(
    client: TestClient, db: sessionmaker[Session], settings: Settings, ris: MllpReceiver
) -> Result:
    """Trust A's claimed study with an order; A's results go to the test RIS (no webhook)."""
    made = make_result(client, db, settings, None)
    point_at(db, ris.port)
    add_order(db, made.study_uid)
    return made


def dispatch_once(settings: Settings) -> int:
    """One step of the HL7 results dispatcher, as the worker takes it: claim what is due,
    send it all and record the outcomes; how many were sent."""

    async def step() -> int:
        engine = create_async_engine(normalise_url(settings.require_database_url()))
        try:
            sessions = async_sessionmaker(engine, expire_on_commit=False)
            return await Dispatcher(settings, sessions, Hl7Channel(settings)).dispatch_once()
        finally:
            await engine.dispose()

    return asyncio.run(step())


def hl7_deliveries(db: sessionmaker[Session]) -> list[Hl7Row]:
    """Every hl7 delivery, oldest first."""
    with db() as session:
        rows = session.execute(
            select(
                OutboxMessage.webhook_id,
                OutboxMessage.type,
                Delivery.status,
                Delivery.attempts,
                Delivery.last_error,
            )
            .join(Delivery, Delivery.message_id == OutboxMessage.id)
            .where(Delivery.channel == DeliveryChannel.HL7)
            .order_by(Delivery.id)
        ).all()
    return [Hl7Row(r[0], r[1], str(r[2]), r[3], r[4]) for r in rows]


def hl7_attempts(db: sessionmaker[Session]) -> list[DeliveryAttempt]:
    """Every attempt of an hl7 delivery, in recording order."""
    with db() as session:
        return list(
            session.scalars(
                select(DeliveryAttempt)
                .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
                .where(Delivery.channel == DeliveryChannel.HL7)
                .order_by(DeliveryAttempt.id)
            )
        )


def make_due(db: sessionmaker[Session]) -> None:
    """Move every pending hl7 delivery's next try into the past, as if its backoff passed."""
    with db() as session, session.begin():
        session.execute(
            text(
                "UPDATE deliveries SET next_attempt_at = now() - interval '1 second'"
                " WHERE channel = 'hl7' AND status = 'pending'"
            )
        )
