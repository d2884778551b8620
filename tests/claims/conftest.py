"""Claim test helpers: a network with users of every role, claim/report rows, a live server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, bearer, client, sites
from tests.factories import new_user
from worklist.app import create_app
from worklist.config import Settings
from worklist.enums import ReportStatus, Role, StudyStatus
from worklist.models import Claim, Report, Site, Study, User

# Fixtures of the API tests this package uses too.
__all__ = ["client", "sites"]

SERVER_START_TIMEOUT_SECONDS = 10.0


# Not a hash any password matches: these accounts use bearer tokens only (no slow Argon2).
NO_PASSWORD = "!"


def add_account(session: Session, username: str, role: Role, *site_codes: str) -> User:
    """A user with privileges at ``site_codes`` who cannot log in with a password."""
    return new_user(session, username, role, *site_codes, password_hash=NO_PASSWORD)


@dataclass
class Staff:
    """Bearer headers by username, and the users' ids."""

    headers: dict[str, dict[str, str]]
    ids: dict[str, int]

    def __getitem__(self, username: str) -> dict[str, str]:
        return self.headers[username]


@pytest.fixture
def staff(db: sessionmaker[Session], sites: dict[str, Site], settings: Settings) -> Staff:
    """rad_north, rad_north2 (NORTH), rad_south (SOUTH), rad_both, manager_north,
    manager_south, admin and alert_north."""
    people = {
        "rad_north": (Role.RADIOLOGIST, (NORTH,)),
        "rad_north2": (Role.RADIOLOGIST, (NORTH,)),
        "rad_south": (Role.RADIOLOGIST, (SOUTH,)),
        "rad_both": (Role.RADIOLOGIST, (NORTH, SOUTH)),
        "manager_north": (Role.MANAGER, (NORTH,)),
        "manager_south": (Role.MANAGER, (SOUTH,)),
        "admin": (Role.ADMIN, ()),
        "alert_north": (Role.ALERT_CLIENT, (NORTH,)),
    }
    with db() as session, session.begin():
        users = {
            name: add_account(session, name, role, *codes) for name, (role, codes) in people.items()
        }
    return Staff(
        headers={name: bearer(settings, user) for name, user in users.items()},
        ids={name: user.id for name, user in users.items()},
    )


def add_claim(
    session: Session, study: Study, user_id: int, *, expires_at: datetime, claimed_at: datetime
) -> Claim:
    """Insert a claim row as if ``user_id`` had claimed the study (study set in progress)."""
    claim = Claim(study_id=study.id, user_id=user_id, claimed_at=claimed_at, expires_at=expires_at)
    session.add(claim)
    study.status = StudyStatus.IN_PROGRESS
    session.flush()
    return claim


def add_expired_claim(session: Session, study: Study, user_id: int) -> Claim:
    """A claim whose lease ran out an hour ago."""
    now = datetime.now(UTC)
    return add_claim(
        session,
        study,
        user_id,
        claimed_at=now - timedelta(hours=2),
        expires_at=now - timedelta(hours=1),
    )


def add_report(session: Session, study: Study, author_id: int, status: ReportStatus) -> Report:
    """Insert the study's report in ``status``."""
    report = Report(
        study_id=study.id, status=status, text="No acute findings.", version=1, author_id=author_id
    )
    session.add(report)
    session.flush()
    return report


def claim_row(db: sessionmaker[Session], study_uid: str) -> tuple[Claim, str] | None:
    """The committed claim on a study and its holder's username."""
    with db() as session:
        row = session.execute(
            select(Claim, User.username)
            .join(User, User.id == Claim.user_id)
            .join(Study, Study.id == Claim.study_id)
            .where(Study.study_uid == study_uid)
        ).one_or_none()
        return (row[0], row[1]) if row else None


def study_status(db: sessionmaker[Session], study_uid: str) -> StudyStatus:
    """The committed status of a study."""
    with db() as session:
        return session.scalars(select(Study.status).where(Study.study_uid == study_uid)).one()


def wait_for(predicate: Callable[[], bool], *, timeout: float = 15.0, what: str) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def waiting_on_locks(session: Session) -> int:
    """How many backends of this test database are waiting for a lock.

    (Not ``pg_blocking_pids`` of the holder: queued row-lock waiters wait on the first
    waiter's tuple lock, not on the holder.)
    """
    # pg_stat_activity is read once per transaction unless the snapshot is dropped.
    session.execute(text("SELECT pg_stat_clear_snapshot()"))
    return int(
        session.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    )


@pytest.fixture
def live_api(settings: Settings, db: sessionmaker[Session]) -> Iterator[str]:
    """The app served by uvicorn in this process on a free port; its base URL.

    Requests from several threads reach it over real sockets and run as concurrent
    transactions on the app's own connection pool.
    """
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=SERVER_START_TIMEOUT_SECONDS, what="uvicorn")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=SERVER_START_TIMEOUT_SECONDS)
        sock.close()
