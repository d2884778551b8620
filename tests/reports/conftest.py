"""Report test helpers: a claimed study at NORTH, its cast of users, claim and report rows."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import (
    NORTH,
    SOUTH,
    add_patient,
    add_study,
    add_user,
    bearer,
    client,
    sites,
)
from worklist.app import create_app
from worklist.config import Settings
from worklist.db import make_async_engine, make_async_sessionmaker
from worklist.enums import Role, StudyStatus
from worklist.models import Claim, Report, ReportVersion, Site, Study, User

__all__ = ["client", "sites"]

T = TypeVar("T")

HOLDER = "dr.holder"
COLLEAGUE = "dr.colleague"
STRANGER = "dr.south"
MANAGER = "north.manager"
ADMIN = "net.admin"
ALERTS = "north.alerts"


def report_url(study_uid: str, suffix: str = "") -> str:
    """The report resource of a study (``suffix``: ``/finalise``, ``/addenda``)."""
    return f"/api/v1/studies/{study_uid}/report{suffix}"


def add_claim(
    session: Session, study: Study, user: User, *, expires_at: datetime | None = None
) -> Claim:
    """Give ``user`` the claim on ``study`` (as the claim endpoint would) and flush."""
    now = datetime.now(UTC)
    claim = Claim(
        study_id=study.id,
        user_id=user.id,
        claimed_at=now,
        expires_at=expires_at or now + timedelta(minutes=30),
    )
    session.add(claim)
    study.status = StudyStatus.IN_PROGRESS
    session.flush()
    return claim


def claim_of(db: sessionmaker[Session], study_uid: str) -> Claim | None:
    """The committed claim on the study, if any."""
    with db() as session:
        stmt = select(Claim).join(Study, Study.id == Claim.study_id)
        return session.scalars(stmt.where(Study.study_uid == study_uid)).one_or_none()


def study_row(db: sessionmaker[Session], study_uid: str) -> Study:
    """The committed study row."""
    with db() as session:
        return session.scalars(select(Study).where(Study.study_uid == study_uid)).one()


def versions_of(db: sessionmaker[Session], study_uid: str) -> list[ReportVersion]:
    """The committed history of the study's report, oldest first."""
    with db() as session:
        stmt = (
            select(ReportVersion)
            .join(Report, Report.id == ReportVersion.report_id)
            .join(Study, Study.id == Report.study_id)
            .where(Study.study_uid == study_uid)
            .order_by(ReportVersion.version)
        )
        return list(session.scalars(stmt))


def run_async(database_url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one async session of its own (rolled back unless ``work`` commits)."""

    async def main() -> T:
        engine = make_async_engine(database_url, pool_size=1)
        try:
            async with make_async_sessionmaker(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(main())


@dataclass
class Ward:
    """A NORTH study claimed by HOLDER, and everyone who may ask about it."""

    client: TestClient
    study_uid: str
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def send(self, method: str, who: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request as ``who``."""
        headers = {**self.headers[who], **kwargs.pop("headers", {})}
        response: httpx.Response = self.client.request(method, url, headers=headers, **kwargs)
        return response

    def get(self, who: str, uid: str | None = None) -> httpx.Response:
        """GET the report as ``who``."""
        return self.send("GET", who, report_url(uid or self.study_uid))

    def save(
        self, who: str, text: str, if_match: Any = None, uid: str | None = None
    ) -> httpx.Response:
        """PUT a draft as ``who``; ``if_match`` is sent verbatim when given."""
        headers = {} if if_match is None else {"If-Match": str(if_match)}
        url = report_url(uid or self.study_uid)
        return self.send("PUT", who, url, json={"text": text}, headers=headers)

    def finalise(self, who: str, version: int, uid: str | None = None) -> httpx.Response:
        """Sign the report at ``version`` as ``who``."""
        url = report_url(uid or self.study_uid, "/finalise")
        return self.send("POST", who, url, json={"version": version})

    def addendum(self, who: str, text: str, uid: str | None = None) -> httpx.Response:
        """Add an addendum as ``who``."""
        url = report_url(uid or self.study_uid, "/addenda")
        return self.send("POST", who, url, json={"text": text})

    def signed(self, text: str = "No acute intracranial abnormality.") -> dict[str, Any]:
        """Draft and sign the report as HOLDER; the signed report."""
        saved = self.save(HOLDER, text)
        assert saved.status_code == 200, saved.text
        signed = self.finalise(HOLDER, saved.json()["version"])
        assert signed.status_code == 200, signed.text
        body: dict[str, Any] = signed.json()
        return body


@pytest.fixture
def ward(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], settings: Settings
) -> Ward:
    """HOLDER (radiologist at NORTH) holds the claim on a NORTH study."""
    with db() as session, session.begin():
        users = {
            HOLDER: add_user(session, HOLDER, Role.RADIOLOGIST, NORTH),
            COLLEAGUE: add_user(session, COLLEAGUE, Role.RADIOLOGIST, NORTH, SOUTH),
            STRANGER: add_user(session, STRANGER, Role.RADIOLOGIST, SOUTH),
            MANAGER: add_user(session, MANAGER, Role.MANAGER, NORTH),
            ADMIN: add_user(session, ADMIN, Role.ADMIN),
            ALERTS: add_user(session, ALERTS, Role.ALERT_CLIENT, NORTH),
        }
        study = add_study(session, add_patient(session, sites[NORTH]))
        add_claim(session, study, users[HOLDER])
    return Ward(
        client=client,
        study_uid=study.study_uid,
        headers={name: bearer(settings, user) for name, user in users.items()},
    )


def set_claim(
    db: sessionmaker[Session],
    study_uid: str,
    username: str | None,
    *,
    expires_at: datetime | None = None,
) -> None:
    """Replace the study's claim: ``username`` holds it now (None: nobody does)."""
    with db() as session, session.begin():
        study = session.scalars(select(Study).where(Study.study_uid == study_uid)).one()
        existing = session.get(Claim, study.id)
        if existing is not None:
            session.delete(existing)
            session.flush()
        if username is not None:
            user = session.scalars(select(User).where(User.username == username)).one()
            add_claim(session, study, user, expires_at=expires_at)


@pytest.fixture
def live_url(settings: Settings, db: sessionmaker[Session]) -> Iterator[str]:
    """The API under uvicorn in a thread on a free port: real HTTP, concurrent requests."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), log_level="warning", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    host, port = sock.getsockname()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
