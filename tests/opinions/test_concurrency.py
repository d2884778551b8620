"""Twenty readers race for one second opinion, over real sockets and real transactions.

Each reader is a thread with its own HTTP client against an in-process uvicorn server
(``tests/claims/test_concurrency.py`` has the machinery). Gated, the test holds
``second_opinions`` in EXCLUSIVE mode until PostgreSQL shows every request blocked
behind it, so all twenty are provably in the database at once; ungated, the threads are
just released together.
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, add_patient, add_study, bearer, sites
from tests.claims.conftest import live_api
from tests.claims.test_concurrency import IN_DATABASE_AT_ONCE, run, settings
from tests.opinions.conftest import QUESTION, add_people, add_subspecialties
from worklist.config import Settings
from worklist.enums import AuditAction, Role
from worklist.models import AuditEvent, SecondOpinion, Site, StudyGrant

__all__ = ["live_api", "settings", "sites"]

READERS = 20
GATE = "LOCK TABLE second_opinions IN EXCLUSIVE MODE"
assert READERS <= IN_DATABASE_AT_ONCE


def _one_request_and_readers(
    db: sessionmaker[Session], sites: dict[str, Site], settings: Settings
) -> tuple[int, list[dict[str, str]]]:
    """A NORTH study's request for ``neuro``, and twenty neuroradiologists of both trusts."""
    people = {
        f"neuro{n:02d}": (Role.RADIOLOGIST, (SOUTH if n % 2 else NORTH,), ("neuro",))
        for n in range(READERS)
    }
    with db() as session, session.begin():
        add_subspecialties(session, "neuro")
        asker = add_people(session, {"asker": (Role.RADIOLOGIST, (NORTH,), ())})["asker"]
        readers = add_people(session, people)
        study = add_study(session, add_patient(session, sites[NORTH]))
        opinion = SecondOpinion(
            study_id=study.id,
            question=QUESTION,
            subspecialty="neuro",
            urgency="urgent",
            requested_by_id=asker.id,
        )
        session.add(opinion)
        session.flush()
    return opinion.id, [bearer(settings, user) for user in readers.values()]


def _one_holder(db: sessionmaker[Session], opinion_id: int) -> tuple[str, int, int]:
    with db() as session:
        opinion = session.get_one(SecondOpinion, opinion_id)
        grants = session.scalar(select(func.count()).select_from(StudyGrant))
        audited = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == AuditAction.SECOND_OPINION_CLAIMED)
        )
        assert opinion.claimed_by_id is not None
        return opinion.status, grants or 0, audited or 0


@pytest.mark.parametrize("gated", [True, False], ids=["gated", "ungated"])
def test_twenty_readers_claiming_one_second_opinion_have_exactly_one_winner(
    live_api: str,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    settings: Settings,
    gated: bool,
) -> None:
    opinion_id, readers = _one_request_and_readers(db, sites, settings)
    calls = [(f"/api/v1/second-opinions/{opinion_id}/claim", headers) for headers in readers]

    responses = run(db, live_api, calls, lock_sql=GATE if gated else None)

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 409: READERS - 1}, [r.text for r in responses]
    [winner] = [r.json()["claimed_by"] for r in responses if r.status_code == 200]
    assert {r.json()["claimed_by"] for r in responses if r.status_code == 409} == {winner}
    assert _one_holder(db, opinion_id) == ("claimed", 1, 1)


@pytest.mark.parametrize("gated", [True, False], ids=["gated", "ungated"])
def test_twenty_readers_calling_next_for_one_second_opinion_hand_it_out_once(
    live_api: str,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    settings: Settings,
    gated: bool,
) -> None:
    opinion_id, readers = _one_request_and_readers(db, sites, settings)
    calls = [("/api/v1/second-opinions/next", headers) for headers in readers]

    responses = run(db, live_api, calls, lock_sql=GATE if gated else None)

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 204: READERS - 1}, [r.text for r in responses]
    assert [r.json()["id"] for r in responses if r.status_code == 200] == [opinion_id]
    assert all(r.content == b"" for r in responses if r.status_code == 204)
    assert _one_holder(db, opinion_id) == ("claimed", 1, 1)
