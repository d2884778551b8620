"""Webhook management fixtures: NORTH has an endpoint, SOUTH has none; their staff."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, add_site, add_user, bearer, client
from tests.factories import add_outbox_message
from worklist.config import Settings
from worklist.enums import Role
from worklist.models import AuditEvent, Site
from worklist.outbox.dispatcher import run_dispatcher
from worklist.sites.service import new_webhook_secret

__all__ = ["client"]

NORTH_MANAGER = "north.manager"
SOUTH_MANAGER = "south.manager"
ADMIN = "net.admin"
RADIOLOGIST = "dr.north"
ALERTS = "north.alerts"
NORTH_URL = "https://results.north.example/hooks"


@dataclass
class Staff:
    """Callers of the webhook endpoints, and NORTH's current secret."""

    client: TestClient
    north_secret: str
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def call(self, method: str, who: str, code: str, suffix: str = "", **kw: Any) -> httpx.Response:
        """One request to ``/api/v1/sites/{code}/webhook{suffix}`` as ``who``."""
        url = f"/api/v1/sites/{code}/webhook{suffix}"
        response: httpx.Response = self.client.request(method, url, headers=self.headers[who], **kw)
        return response


@pytest.fixture
def staff(client: TestClient, db: sessionmaker[Session], settings: Settings) -> Staff:
    """NORTH (endpoint configured), SOUTH (none), and a manager of each, an admin and others."""
    secret = new_webhook_secret()
    with db() as session, session.begin():
        north = add_site(session, NORTH)
        north.webhook_url = NORTH_URL
        north.webhook_secret = secret
        add_site(session, SOUTH)
        users = {
            NORTH_MANAGER: add_user(session, NORTH_MANAGER, Role.MANAGER, NORTH),
            SOUTH_MANAGER: add_user(session, SOUTH_MANAGER, Role.MANAGER, SOUTH),
            ADMIN: add_user(session, ADMIN, Role.ADMIN),
            RADIOLOGIST: add_user(session, RADIOLOGIST, Role.RADIOLOGIST, NORTH),
            ALERTS: add_user(session, ALERTS, Role.ALERT_CLIENT, NORTH),
        }
    return Staff(
        client=client,
        north_secret=secret,
        headers={name: bearer(settings, user) for name, user in users.items()},
    )


def site_row(db: sessionmaker[Session], code: str) -> Site:
    """The committed site."""
    with db() as session:
        return session.scalars(select(Site).where(Site.code == code)).one()


def update_site(db: sessionmaker[Session], code: str, **values: Any) -> None:
    """Commit ``values`` on the site (as the dispatcher does after a 410)."""
    with db() as session, session.begin():
        site = session.scalars(select(Site).where(Site.code == code)).one()
        for name, value in values.items():
            setattr(site, name, value)


def webhook_audit(db: sessionmaker[Session]) -> list[AuditEvent]:
    """Committed webhook.* audit rows, oldest first."""
    with db() as session:
        stmt = select(AuditEvent).where(AuditEvent.action.like("webhook.%")).order_by(AuditEvent.id)
        return list(session.scalars(stmt))


def audit_text(db: sessionmaker[Session]) -> str:
    """Every committed audit row as text (to look for leaked secrets)."""
    with db() as session:
        rows = session.scalars(select(AuditEvent)).all()
        return json.dumps([[r.actor, r.action, r.detail] for r in rows])


def enqueue_for(db: sessionmaker[Session], code: str, count: int = 1) -> list[str]:
    """Commit ``count`` alert.raised messages for the site; their webhook ids."""
    ids = []
    with db() as session, session.begin():
        site = session.scalars(select(Site).where(Site.code == code)).one()
        for n in range(count):
            message = add_outbox_message(session, site, data={"n": n, "at": datetime.now(UTC)})
            ids.append(message.webhook_id)
    return ids


@contextmanager
def dispatcher(settings: Settings) -> Iterator[None]:
    """The worker's webhook dispatcher in a thread, polling fast, until the block ends."""
    fast = settings.model_copy(
        update={
            "worker_interval_seconds": 0.2,
            "webhook_timeout_seconds": 1.0,
            "webhook_retry_base_seconds": 0.05,
            "webhook_retry_max_seconds": 0.2,
        }
    )
    stop = threading.Event()
    thread = threading.Thread(target=run_dispatcher, args=(fast, stop), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive(), "the dispatcher did not stop"


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s: {what}")
        time.sleep(0.05)
