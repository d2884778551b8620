"""Allocation as a table: privileges x subspecialty x general-reader rule x cap x next-only
x priority, and what ``worklist/next`` and a direct claim answer in each cell.

Each cell: site NORTH with cap 1 and the cell's next-only and general-reader settings; one
study there of the cell's priority and subspecialty; a radiologist holding ``msk`` (and
``neuro`` where the study's subspecialty is their own) with privileges at NORTH, or at
SOUTH only; at the cap, they already hold a routine study of NORTH. The expected answers
are DESIGN's rules, written out once below (``expected_next``, ``expected_claim``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.allocation.conftest import ensure_subspecialties, set_allocation, timing
from tests.api.conftest import NORTH, SOUTH, add_patient, add_site, add_study, bearer
from tests.claims.conftest import add_account, add_claim
from worklist.app import create_app
from worklist.config import Settings
from worklist.enums import Priority, Role

NEXT = "/api/v1/worklist/next"
EXEMPT = (Priority.STAT, Priority.URGENT)

# (the study's subspecialty relative to the reader, the site's general-reader rule)
SUBSPECIALTY_RULES = [
    ("none", "never"),
    ("general", "never"),
    ("own", "never"),
    ("other", "never"),
    ("other", "after_share:before"),
    ("other", "after_share:after"),
    ("other", "always"),
]
STUDY_SUBSPECIALTY = {"none": None, "general": "general", "own": "neuro", "other": "neuro"}


@dataclass(frozen=True)
class Cell:
    """One row of the table."""

    privileges: bool
    subspecialty: str
    rule: str
    cap_reached: bool
    next_only: bool
    priority: Priority

    @property
    def id(self) -> str:
        return "-".join(
            (
                "priv" if self.privileges else "nopriv",
                self.subspecialty,
                self.rule,
                "atcap" if self.cap_reached else "undercap",
                "nextonly" if self.next_only else "open",
                self.priority.value,
            )
        )


# Without privileges nothing else matters (404 / 204): the cap's axis is left out there.
CELLS = [
    Cell(privileges, subspecialty, rule, cap_reached, next_only, priority)
    for privileges in (True, False)
    for subspecialty, rule in SUBSPECIALTY_RULES
    for cap_reached in ((False, True) if privileges else (False,))
    for next_only in (False, True)
    for priority in (Priority.ROUTINE, Priority.INPATIENT, Priority.URGENT, Priority.STAT)
]


def by_subspecialty(cell: Cell) -> bool:
    """May ``next`` hand the study to this reader, as far as subspecialty goes?"""
    if cell.subspecialty in ("none", "general", "own"):
        return True
    return cell.rule in ("always", "after_share:after")


def expected_next(cell: Cell) -> int:
    """200 (the study is handed out), 204 (nothing eligible) or 409 (refused by the cap)."""
    if not cell.privileges or not by_subspecialty(cell):
        return 204
    if cell.cap_reached and cell.priority not in EXEMPT:
        return 409
    return 200


def expected_claim(cell: Cell) -> tuple[int, str | None]:
    """A direct claim's status and 409 reason (subspecialty does not limit direct claims)."""
    if not cell.privileges:
        return 404, None
    if cell.next_only and cell.priority is Priority.ROUTINE:
        return 409, "next_only"
    if cell.cap_reached and cell.priority not in EXEMPT:
        return 409, "cap"
    return 200, None


@pytest.fixture(scope="module")
def app_settings(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    from tests.conftest import COMMON_SETTINGS, SECRET_KEY

    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path_factory.mktemp("allocation"),
        secret_key=SECRET_KEY,
        **COMMON_SETTINGS,
    )


@pytest.fixture(scope="module")
def client(app_settings: Settings) -> Iterator[TestClient]:
    """One running app for every cell (each cell gets a clean database)."""
    with TestClient(create_app(app_settings)) as test_client:
        yield test_client


@dataclass(frozen=True)
class World:
    """The cell's reader and study."""

    headers: dict[str, str]
    study_uid: str


def build(db: sessionmaker[Session], settings: Settings, cell: Cell) -> World:
    """The cell's state, committed."""
    now = datetime.now(UTC)
    with db() as session, session.begin():
        ensure_subspecialties(session, "neuro", "msk", "general")
        north, south = add_site(session, NORTH), add_site(session, SOUTH)
        general_reader, _, when = cell.rule.partition(":")
        set_allocation(
            session,
            north,
            allocation_cap=1,
            next_only_routine=cell.next_only,
            general_reader=general_reader,
            general_after_share=0.5,
        )
        reader = add_account(
            session, "reader", Role.RADIOLOGIST, north.code if cell.privileges else south.code
        )
        reader.subspecialties = ["msk", "neuro"] if cell.subspecialty == "own" else ["msk"]
        if cell.cap_reached:
            received_at, due_at = timing(0.1)
            held = add_study(
                session, add_patient(session, north), received_at=received_at, due_at=due_at
            )
            add_claim(session, held, reader.id, claimed_at=now, expires_at=now + timedelta(hours=1))
        received_at, due_at = timing(0.75 if when == "after" else 0.25)
        study = add_study(
            session,
            add_patient(session, north),
            priority=cell.priority,
            received_at=received_at,
            due_at=due_at,
            subspecialty=STUDY_SUBSPECIALTY[cell.subspecialty],
        )
    return World(headers=bearer(settings, reader), study_uid=study.study_uid)


@pytest.mark.parametrize("cell", CELLS, ids=[cell.id for cell in CELLS])
def test_allocation_table(
    client: TestClient, db: sessionmaker[Session], app_settings: Settings, cell: Cell
) -> None:
    world = build(db, app_settings, cell)

    handed = client.post(NEXT, headers=world.headers)
    if handed.status_code == 200:
        assert handed.json()["study"]["study_uid"] == world.study_uid
        released = client.delete(f"/api/v1/studies/{world.study_uid}/claim", headers=world.headers)
        assert released.status_code == 204, released.text
    claimed = client.post(f"/api/v1/studies/{world.study_uid}/claim", headers=world.headers)

    assert handed.status_code == expected_next(cell), handed.text
    if handed.status_code == 409:
        assert handed.json()["reason"] == "cap"
    status, reason = expected_claim(cell)
    assert claimed.status_code == status, claimed.text
    if reason is not None:
        assert claimed.json()["reason"] == reason
