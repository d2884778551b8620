"""Stats test helpers: three trusts and a cast of every role, studies examined and reported
at given times, and the figures' services called as a user with a fixed ``now``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, selectinload, sessionmaker

from tests.api.conftest import NORTH, SOUTH, add_patient, add_site, add_study, bearer, client
from tests.claims.conftest import NO_PASSWORD
from tests.conftest import run_committed
from tests.factories import new_user
from worklist.config import Settings
from worklist.enums import Priority, ReportStatus, Role, StudyStatus
from worklist.models import Report, Site, Study, User

__all__ = ["client"]

T = TypeVar("T")

EAST = "EAST"
# The clock the service-level tests measure ages against (a Friday).
NOW = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
# When the turnaround, flows and workload studies were examined (a Monday).
T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)

RAD_NORTH = "dr.north"  # privileges at NORTH, employed by NORTH
RAD_SOUTH = "dr.south"  # privileges at SOUTH, employed by SOUTH
VISITOR = "dr.visitor"  # privileges at NORTH and SOUTH, employed by SOUTH
LOCUM = "dr.locum"  # privileges at EAST, employed by no trust
MANAGER = "north.manager"
SOUTH_MANAGER = "south.manager"
ADMIN = "net.admin"
ALERTS = "north.alerts"
ORDERS = "north.orders"

PEOPLE: dict[str, tuple[Role, tuple[str, ...], str | None]] = {
    RAD_NORTH: (Role.RADIOLOGIST, (NORTH,), NORTH),
    RAD_SOUTH: (Role.RADIOLOGIST, (SOUTH,), SOUTH),
    VISITOR: (Role.RADIOLOGIST, (NORTH, SOUTH), SOUTH),
    LOCUM: (Role.RADIOLOGIST, (EAST,), None),
    MANAGER: (Role.MANAGER, (NORTH,), None),
    SOUTH_MANAGER: (Role.MANAGER, (SOUTH,), None),
    ADMIN: (Role.ADMIN, (), None),
    ALERTS: (Role.ALERT_CLIENT, (NORTH,), None),
    ORDERS: (Role.ORDER_CLIENT, (NORTH,), None),
}


@dataclass
class Network:
    """NORTH, SOUTH and EAST with the cast of ``PEOPLE``; bearer headers for each."""

    db: sessionmaker[Session]
    database_url: str
    sites: dict[str, Site]
    users: dict[str, User]
    headers: dict[str, dict[str, str]]

    def as_user(self, username: str, call: Callable[[AsyncSession, User], Awaitable[T]]) -> T:
        """Run ``call`` in one committed transaction as ``username`` (sites loaded)."""

        async def work(session: AsyncSession) -> T:
            stmt = select(User).options(selectinload(User.sites)).where(User.username == username)
            user = (await session.scalars(stmt)).one()
            return await call(session, user)

        return run_committed(self.database_url, work)


@pytest.fixture
def network(db: sessionmaker[Session], settings: Settings) -> Network:
    """Three trusts and the cast."""
    with db() as session, session.begin():
        sites = {code: add_site(session, code) for code in (NORTH, SOUTH, EAST)}
        users = {
            name: new_user(
                session,
                name,
                role,
                *codes,
                password_hash=NO_PASSWORD,
                home_site=sites[home] if home else None,
            )
            for name, (role, codes, home) in PEOPLE.items()
        }
        session.expunge_all()
    headers = {name: bearer(settings, user) for name, user in users.items()}
    return Network(db, settings.require_database_url(), sites, users, headers)


def add_examination(
    session: Session,
    site: Site,
    *,
    at: datetime | None,
    received_at: datetime | None = None,
    priority: Priority = Priority.ROUTINE,
    modality: str = "CT",
    status: StudyStatus = StudyStatus.READY,
    due_at: datetime | None = None,
    **fields: Any,
) -> Study:
    """A study of ``site`` examined ``at`` (None: no study date, so its arrival counts)."""
    patient = add_patient(session, site)
    return add_study(
        session,
        patient,
        status=status,
        priority=priority,
        received_at=received_at or at or T0,
        due_at=due_at,
        study_datetime=at,
        modalities=[modality],
        **fields,
    )


def add_final_report(session: Session, study: Study, by: User, at: datetime) -> Report:
    """``study``'s report, signed by ``by`` at ``at`` (the study becomes reported)."""
    report = Report(
        study_id=study.id,
        status=ReportStatus.FINAL,
        text="No acute findings.",
        version=2,
        author_id=by.id,
        finalised_at=at,
        finalised_by_id=by.id,
    )
    study.status = StudyStatus.REPORTED
    session.add(report)
    session.flush()
    return report


def reported_after(
    session: Session, site: Site, by: User, hours: float, *, at: datetime = T0, **fields: Any
) -> Study:
    """A study of ``site`` examined ``at`` and reported by ``by`` ``hours`` later."""
    study = add_examination(session, site, at=at, **fields)
    add_final_report(session, study, by, at + timedelta(hours=hours))
    return study
