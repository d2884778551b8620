"""Concurrent claims and ``worklist/next`` over real sockets and real PostgreSQL transactions.

Each caller is a thread with its own HTTP client against an in-process uvicorn server.
In the gated runs the test itself holds a lock the requests need, waits until PostgreSQL
shows them all blocked behind it (so they are provably in the database at the same
time), then lets them go; the ungated runs just release every thread at once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, T0, add_patient, add_study, bearer
from tests.claims.conftest import add_account, wait_for, waiting_on_locks
from worklist.config import Settings
from worklist.enums import Role, StudyStatus
from worklist.models import Claim, Site, Study, User

# Requests the API can have in the database at once: its pool (no overflow,
# worklist.db.make_async_engine); every gated request holds one connection while blocked.
# The rest wait for a connection: these tests are about concurrency, not shedding, so
# they wait long enough never to be shed (the ``settings`` fixture below).
IN_DATABASE_AT_ONCE = 20
POOL_TIMEOUT_SECONDS = 50.0
HTTP_TIMEOUT_SECONDS = 60.0

Call = tuple[str, dict[str, str]]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test settings with a pool of ``IN_DATABASE_AT_ONCE`` that never sheds here."""
    return settings.model_copy(
        update={
            "api_db_pool_size": IN_DATABASE_AT_ONCE,
            "api_db_pool_timeout_seconds": POOL_TIMEOUT_SECONDS,
        }
    )


def radiologists(
    db: sessionmaker[Session], settings: Settings, count: int, *site_codes: str
) -> list[dict[str, str]]:
    """Bearer headers of ``count`` radiologists with privileges at ``site_codes``."""
    with db() as session, session.begin():
        users = [
            add_account(session, f"rad{n:02d}", Role.RADIOLOGIST, *site_codes) for n in range(count)
        ]
    return [bearer(settings, user) for user in users]


def fire(base_url: str, calls: list[Call]) -> list[Future[httpx.Response]]:
    """POST every call from its own thread and client, all released at the same instant."""
    start = threading.Barrier(len(calls))

    def post(call: Call) -> httpx.Response:
        url, headers = call
        with httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT_SECONDS) as http:
            start.wait()
            return http.post(url, headers=headers)

    pool = ThreadPoolExecutor(max_workers=len(calls))
    futures = [pool.submit(post, call) for call in calls]
    pool.shutdown(wait=False)
    return futures


@contextmanager
def gate(db: sessionmaker[Session], lock_sql: str) -> Iterator[Session]:
    """Hold the lock ``lock_sql`` takes until the block exits (the transaction then ends)."""
    with db() as session, session.begin():
        session.execute(text(lock_sql))
        yield session


def run(
    db: sessionmaker[Session], base_url: str, calls: list[Call], *, lock_sql: str | None
) -> list[httpx.Response]:
    """Fire ``calls`` concurrently; when gated, only once they all wait on ``lock_sql``."""
    if lock_sql is None:
        futures = fire(base_url, calls)
    else:
        with gate(db, lock_sql) as holder:
            futures = fire(base_url, calls)
            expected = min(len(calls), IN_DATABASE_AT_ONCE)
            wait_for(
                lambda: waiting_on_locks(holder) >= expected, what=f"{expected} blocked requests"
            )
    return [future.result(timeout=HTTP_TIMEOUT_SECONDS) for future in futures]


@pytest.mark.parametrize("gated", [True, False], ids=["gated", "ungated"])
def test_fifty_concurrent_next_callers_share_thirty_studies_without_duplicates(
    live_api: str,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    settings: Settings,
    gated: bool,
) -> None:
    with db() as session, session.begin():
        # A patient each: next hands a patient's studies out together.
        study_uids = {
            add_study(session, add_patient(session, sites[NORTH]), received_at=T0).study_uid
            for _ in range(30)
        }
    callers = radiologists(db, settings, 50, NORTH)
    calls = [("/api/v1/worklist/next", headers) for headers in callers]

    # Gated: the claims table is locked, so callers pick (and lock) distinct studies and
    # then all wait to insert their claims at the same time.
    responses = run(
        db, live_api, calls, lock_sql="LOCK TABLE claims IN EXCLUSIVE MODE" if gated else None
    )

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 30, 204: 20}, [r.text for r in responses if r.status_code >= 400]
    handed_out = [r.json()["study"]["study_uid"] for r in responses if r.status_code == 200]
    assert sorted(handed_out) == sorted(study_uids)
    assert all(r.content == b"" for r in responses if r.status_code == 204)
    with db() as session:
        holders = dict(
            session.execute(
                select(Study.study_uid, User.username)
                .join(Claim, Claim.study_id == Study.id)
                .join(User, User.id == Claim.user_id)
            ).all()
        )
        statuses_now = set(session.scalars(select(Study.status)))
    assert holders == {
        r.json()["study"]["study_uid"]: r.json()["claim"]["username"]
        for r in responses
        if r.status_code == 200
    }
    assert statuses_now == {StudyStatus.IN_PROGRESS}


@pytest.mark.parametrize("gated", [True, False], ids=["gated", "ungated"])
def test_twenty_concurrent_claims_of_one_study_have_exactly_one_winner(
    live_api: str,
    db: sessionmaker[Session],
    sites: dict[str, Site],
    settings: Settings,
    gated: bool,
) -> None:
    with db() as session, session.begin():
        study = add_study(session, add_patient(session, sites[NORTH]))
    callers = radiologists(db, settings, 20, NORTH)
    calls = [(f"/api/v1/studies/{study.study_uid}/claim", headers) for headers in callers]

    # Gated: the study row is locked, so all twenty claims queue on it together.
    lock_sql = f"SELECT id FROM studies WHERE id = {study.id} FOR UPDATE"
    responses = run(db, live_api, calls, lock_sql=lock_sql if gated else None)

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 409: 19}, [r.text for r in responses]
    [winner] = [r.json()["username"] for r in responses if r.status_code == 200]
    assert {r.json()["claimed_by"] for r in responses if r.status_code == 409} == {winner}
    with db() as session:
        holder = session.scalars(select(User.username).join(Claim, Claim.user_id == User.id)).one()
    assert holder == winner
