"""``get_visible_study``: the one fetch of a study by UID under the caller's visibility.

Every endpoint that names a study goes through it (detail, triage, claims, reports,
results, alerts, priors, DICOMweb, the route guards), so these hold for all of them:
a study outside the rule is absent whatever is loaded or locked, and a lock is
``FOR NO KEY UPDATE`` on the study row, read afresh.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, add_patient, add_study, sites
from tests.claims.conftest import add_account
from tests.conftest import run_with_async_sessions
from worklist.enums import Priority, Role
from worklist.models import Claim, Site, Study, User
from worklist.studies.repository import StudyLoad, WorklistRow, get_visible_study
from worklist.studies.visibility import result_visible_condition, visible_study_condition

__all__ = ["sites"]

LOCK_NOT_AVAILABLE = "55P03"


@pytest.fixture
def world(db: sessionmaker[Session], sites: dict[str, Site]) -> tuple[str, dict[str, User]]:
    """A NORTH study, and one user of every role (the site roles at NORTH or SOUTH)."""
    with db() as session, session.begin():
        uid = add_study(session, add_patient(session, sites[NORTH])).study_uid
        users = {
            "rad_north": add_account(session, "rad_north", Role.RADIOLOGIST, NORTH),
            "rad_south": add_account(session, "rad_south", Role.RADIOLOGIST, SOUTH),
            "manager_north": add_account(session, "manager_north", Role.MANAGER, NORTH),
            "manager_south": add_account(session, "manager_south", Role.MANAGER, SOUTH),
            "admin": add_account(session, "admin", Role.ADMIN),
            "alert_north": add_account(session, "alert_north", Role.ALERT_CLIENT, NORTH),
        }
    return uid, users


def test_only_the_callers_sites_are_found_whatever_is_loaded_or_locked(
    world: tuple[str, dict[str, User]], database_url: str
) -> None:
    uid, users = world

    async def scenario(sessions: async_sessionmaker[AsyncSession]) -> dict[str, set[bool]]:
        found: dict[str, set[bool]] = {}
        for name, user in users.items():
            for load in StudyLoad:
                for lock in (False, True):
                    for study_uid in (uid, "1.2.3.999"):
                        async with sessions() as session, session.begin():
                            study = await get_visible_study(
                                session,
                                study_uid=study_uid,
                                visible=visible_study_condition(user),
                                load=load,
                                lock=lock,
                            )
                        if study_uid == uid:
                            found.setdefault(name, set()).add(study is not None)
                        else:
                            assert study is None
        return found

    assert run_with_async_sessions(database_url, scenario) == {
        "rad_north": {True},
        "rad_south": {False},
        "manager_north": {True},
        "manager_south": {False},
        "admin": {True},
        "alert_north": {False},
    }


def test_each_load_brings_what_it_names(
    world: tuple[str, dict[str, User]], database_url: str
) -> None:
    uid, users = world
    visible = visible_study_condition(users["rad_north"])

    async def fetch(sessions: async_sessionmaker[AsyncSession]) -> None:
        async with sessions() as session, session.begin():
            alone = await get_visible_study(session, study_uid=uid, visible=visible)
            assert isinstance(alone, Study)
        async with sessions() as session, session.begin():
            loaded = await get_visible_study(
                session, study_uid=uid, visible=visible, load=StudyLoad.SITE_AND_PATIENT
            )
            assert loaded is not None
            assert (loaded.site.code, loaded.patient.site_id) == (NORTH, loaded.site_id)
        async with sessions() as session, session.begin():
            row = await get_visible_study(
                session, study_uid=uid, visible=visible, load=StudyLoad.WORKLIST_ROW
            )
            assert isinstance(row, WorklistRow)
            assert (row.study.site.code, row.claimed_by, row.report_status) == (NORTH, None, None)

    run_with_async_sessions(database_url, fetch)


def test_an_alert_client_reaches_its_sites_results_but_not_its_worklist(
    world: tuple[str, dict[str, User]], database_url: str
) -> None:
    uid, users = world

    async def fetch(sessions: async_sessionmaker[AsyncSession]) -> list[bool]:
        found = []
        for name in ("alert_north", "rad_south"):
            async with sessions() as session:
                study = await get_visible_study(
                    session, study_uid=uid, visible=result_visible_condition(users[name])
                )
                found.append(study is not None)
        return found

    assert run_with_async_sessions(database_url, fetch) == [True, False]


def test_a_lock_holds_the_study_row_but_not_rows_that_reference_it(
    world: tuple[str, dict[str, User]], database_url: str
) -> None:
    uid, users = world
    visible = visible_study_condition(users["admin"])
    now = datetime.now(UTC)

    async def scenario(sessions: async_sessionmaker[AsyncSession]) -> None:
        async with sessions() as holder, holder.begin():
            study = await get_visible_study(holder, study_uid=uid, visible=visible, lock=True)
            assert study is not None
            async with sessions() as other:
                # A second writer of the study is refused at once ...
                with pytest.raises(DBAPIError) as refused:
                    await other.execute(
                        select(Study.id)
                        .where(Study.id == study.id)
                        .with_for_update(key_share=True, nowait=True)
                    )
                assert getattr(refused.value.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE
                await other.rollback()
                # ... while an insert that only references it (KEY SHARE) goes ahead.
                await other.execute(text("SET LOCAL lock_timeout = '5s'"))
                other.add(
                    Claim(
                        study_id=study.id,
                        user_id=users["rad_north"].id,
                        claimed_at=now,
                        expires_at=now + timedelta(minutes=5),
                    )
                )
                await other.flush()
                await other.rollback()

    run_with_async_sessions(database_url, scenario)


def test_a_locked_study_is_read_afresh_not_from_the_sessions_earlier_copy(
    world: tuple[str, dict[str, User]], database_url: str
) -> None:
    uid, users = world
    visible = visible_study_condition(users["admin"])

    async def scenario(sessions: async_sessionmaker[AsyncSession]) -> Priority:
        async with sessions() as session, session.begin():
            before = await get_visible_study(session, study_uid=uid, visible=visible)
            assert before is not None
            assert before.priority is Priority.ROUTINE
            async with sessions() as other, other.begin():
                await other.execute(
                    update(Study).where(Study.id == before.id).values(priority=Priority.STAT)
                )
            locked = await get_visible_study(session, study_uid=uid, visible=visible, lock=True)
            assert locked is before
            return locked.priority

    assert run_with_async_sessions(database_url, scenario) is Priority.STAT
