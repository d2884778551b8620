"""Alert test helpers: three trusts, their staff, a study of trust A claimed from trust B,
the API served over a real socket (for the alert stream), and the webhook dispatcher."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import add_patient, add_site, add_study, bearer, client
from tests.claims.conftest import add_account, add_claim
from tests.conftest import COMMON_SETTINGS, SECRET_KEY
from tests.events.conftest import SseReader, quick_streams
from tests.receiver import WebhookReceiver
from worklist.app import create_app
from worklist.config import Settings
from worklist.enums import Role
from worklist.models import (
    Alert,
    AlertBreach,
    AlertStreamEntry,
    AuditEvent,
    Delivery,
    OutboxMessage,
    Site,
    Study,
    User,
)
from worklist.outbox.dispatcher import run_dispatcher
from worklist.sites.service import new_webhook_secret

# The API tests' TestClient fixture, used here too.
__all__ = ["client"]

TRUST_A, TRUST_B, TRUST_C = "TRUST_A", "TRUST_B", "TRUST_C"
NHS_NUMBER = "9434765919"  # passes the Modulus 11 check
FINDING = "Acute right subdural haematoma with 6 mm midline shift."
READ_TIMEOUT_SECONDS = 10.0

# username: (role, trusts)
STAFF: dict[str, tuple[Role, tuple[str, ...]]] = {
    "rad_b": (Role.RADIOLOGIST, (TRUST_B, TRUST_A)),  # trust B's, with privileges at A
    "rad_a": (Role.RADIOLOGIST, (TRUST_A,)),
    "rad_c": (Role.RADIOLOGIST, (TRUST_C,)),
    "alert_a": (Role.ALERT_CLIENT, (TRUST_A,)),
    "manager_a": (Role.MANAGER, (TRUST_A,)),
    "alert_c": (Role.ALERT_CLIENT, (TRUST_C,)),
    "manager_c": (Role.MANAGER, (TRUST_C,)),
    "admin": (Role.ADMIN, ()),
}


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    """Settings of the test database and Redis, with quick retries and stream polls."""
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path / "var",
        secret_key=SECRET_KEY,
        gateway_port=0,
        api_port=0,
        alert_stream_poll_seconds=0.2,
        webhook_timeout_seconds=1.0,
        webhook_retry_base_seconds=0.05,
        webhook_retry_max_seconds=0.3,
        worker_interval_seconds=0.2,
        webhook_allow_private=True,  # the receiver listens on loopback
        **COMMON_SETTINGS,
    )


@dataclass
class Network:
    """Trusts A (webhook to the test receiver), B and C; their staff; study A claimed by rad_b."""

    sites: dict[str, Site]
    users: dict[str, User]
    headers: dict[str, dict[str, str]]
    study_uid: str
    secret: str

    def __getitem__(self, username: str) -> dict[str, str]:
        return self.headers[username]


def add_study_of(session: Session, site: Site, **fields: Any) -> Study:
    """A ready study of a new patient of ``site``."""
    patient = add_patient(session, site, name="PATIENT^ALPHA", nhs_number=NHS_NUMBER)
    return add_study(session, patient, **fields)


def claim_for(session: Session, study: Study, user: User) -> None:
    """``user`` holds the claim on ``study`` for the next half hour."""
    now = datetime.now(UTC)
    add_claim(session, study, user.id, claimed_at=now, expires_at=now + timedelta(minutes=30))


@pytest.fixture
def network(
    db: sessionmaker[Session], settings: Settings, webhook_receiver: WebhookReceiver
) -> Network:
    """Three trusts and their staff; trust A's webhook is the receiver, which knows its secret."""
    secret = new_webhook_secret()
    with db() as session, session.begin():
        sites = {code: add_site(session, code) for code in (TRUST_A, TRUST_B, TRUST_C)}
        sites[TRUST_A].webhook_url = webhook_receiver.url
        sites[TRUST_A].webhook_secret = secret
        users = {
            name: add_account(session, name, role, *codes) for name, (role, codes) in STAFF.items()
        }
        study = add_study_of(session, sites[TRUST_A])
        claim_for(session, study, users["rad_b"])
        study_uid = study.study_uid
    webhook_receiver.secrets = [secret]
    return Network(
        sites=sites,
        users=users,
        headers={name: bearer(settings, user) for name, user in users.items()},
        study_uid=study_uid,
        secret=secret,
    )


def alert_body(category: str = "critical", finding: str = FINDING, **extra: Any) -> dict[str, Any]:
    """A request body for ``POST .../alerts``."""
    return {"category": category, "finding": finding, **extra}


@dataclass
class LiveApi:
    """The API served over a real socket; ``http`` is a client of it."""

    app: FastAPI
    base_url: str
    http: httpx.Client

    def raise_alert(self, headers: dict[str, str], study_uid: str, **body: Any) -> dict[str, Any]:
        """POST an alert and return it (asserting 201)."""
        response = self.http.post(
            f"/api/v1/studies/{study_uid}/alerts", json=alert_body(**body), headers=headers
        )
        assert response.status_code == 201, response.text
        alert: dict[str, Any] = response.json()
        return alert

    @contextmanager
    def sse(
        self,
        headers: dict[str, str],
        *,
        last_event_id: str | None = None,
        params: dict[str, str] | None = None,
    ) -> Iterator[SseReader]:
        """Open ``GET /api/v1/alerts/stream``; its start is fixed once this yields."""
        all_headers = dict(headers)
        if last_event_id is not None:
            all_headers["Last-Event-ID"] = last_event_id
        with (
            httpx.Client(base_url=self.base_url, timeout=READ_TIMEOUT_SECONDS) as client,
            client.stream(
                "GET", "/api/v1/alerts/stream", headers=all_headers, params=params
            ) as response,
        ):
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            yield SseReader(response)


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve_api(settings: Settings) -> Iterator[LiveApi]:
    """create_app(settings) under uvicorn in a thread, on a free port, with quick streams."""
    app = create_app(settings)
    quick_streams(app)
    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), what="uvicorn start")
    assert thread.is_alive(), "uvicorn exited"
    host, port = sock.getsockname()
    base_url = f"http://{host}:{port}"
    try:
        with httpx.Client(base_url=base_url, timeout=READ_TIMEOUT_SECONDS) as http:
            yield LiveApi(app=app, base_url=base_url, http=http)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def live_api(settings: Settings, db: sessionmaker[Session]) -> Iterator[LiveApi]:
    """The app with the test settings, served by uvicorn."""
    with serve_api(settings) as api:
        yield api


@contextmanager
def running_dispatcher(settings: Settings) -> Iterator[None]:
    """The webhook dispatcher in a thread, as the worker runs it; stopped after."""
    stop = threading.Event()
    thread = threading.Thread(target=run_dispatcher, args=(settings, stop), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive(), "dispatcher did not stop"


def wait_until(predicate: Callable[[], bool], *, timeout: float = 15.0, what: str) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def messages(db: sessionmaker[Session], alert_id: str | None = None) -> list[OutboxMessage]:
    """Committed outbox messages (of one alert), oldest first."""
    with db() as session:
        stmt = select(OutboxMessage).order_by(OutboxMessage.id)
        if alert_id is not None:
            stmt = stmt.where(OutboxMessage.alert_id == uuid.UUID(alert_id))
        return list(session.scalars(stmt))


def deliveries(db: sessionmaker[Session], alert_id: str | None = None) -> list[Delivery]:
    """Committed deliveries (of one alert's messages), in message order."""
    with db() as session:
        stmt = (
            select(Delivery)
            .join(OutboxMessage, OutboxMessage.id == Delivery.message_id)
            .order_by(Delivery.message_id, Delivery.channel)
        )
        if alert_id is not None:
            stmt = stmt.where(OutboxMessage.alert_id == uuid.UUID(alert_id))
        return list(session.scalars(stmt))


def count_rows(db: sessionmaker[Session]) -> dict[str, int]:
    """How many alerts, breaches, messages and deliveries are committed."""
    with db() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Alert, AlertBreach, OutboxMessage, Delivery)
        }


def audit_actions(db: sessionmaker[Session], prefix: str = "alert.") -> list[AuditEvent]:
    """Committed audit rows whose action starts with ``prefix``, oldest first."""
    with db() as session:
        stmt = (
            select(AuditEvent).where(AuditEvent.action.startswith(prefix)).order_by(AuditEvent.id)
        )
        return list(session.scalars(stmt))


def stream_position(db: sessionmaker[Session], message_id: int) -> str:
    """The alert stream's event id (``alert_stream`` position) of an outbox message."""
    with db() as session:
        entry = session.scalars(
            select(AlertStreamEntry).where(AlertStreamEntry.message_id == message_id)
        ).one()
        return str(entry.id)
