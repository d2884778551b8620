"""Concurrent writers of one report: exactly one wins, the others are told; no lost update."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
from sqlalchemy import Engine, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from tests.reports.conftest import HOLDER, Ward, report_url, run_async, versions_of
from worklist.config import Settings
from worklist.models import Report, Study
from worklist.reports import repository

API_APPLICATION_NAME = "worklist-api"
Request = Callable[[], httpx.Response]


@contextmanager
def study_locked(engine: Engine, study_uid: str) -> Iterator[None]:
    """Hold the study's row lock, as a slow writer would, until the block ends."""
    with engine.connect() as conn, conn.begin():
        conn.execute(
            text("SELECT id FROM studies WHERE study_uid = :uid FOR UPDATE"), {"uid": study_uid}
        )
        yield


def wait_for_lock_waiters(engine: Engine, count: int) -> None:
    """Wait until ``count`` API transactions are blocked on a row lock."""
    deadline = time.monotonic() + 15
    while True:
        with engine.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = :app AND wait_event_type = 'Lock'"
                ),
                {"app": API_APPLICATION_NAME},
            ).scalar_one()
        if waiting >= count:
            return
        assert time.monotonic() < deadline, f"only {waiting} of {count} requests reached the lock"
        time.sleep(0.02)


def race(engine: Engine, study_uid: str, requests: list[Request]) -> list[httpx.Response]:
    """Send every request while the study is locked, so all are in flight at once; release."""
    with ThreadPoolExecutor(len(requests)) as pool:
        with study_locked(engine, study_uid):
            futures = [pool.submit(request) for request in requests]
            wait_for_lock_waiters(engine, len(requests))
        return [future.result(timeout=30) for future in futures]


def put_draft(base_url: str, ward: Ward, text_: str, if_match: str | None) -> Request:
    """A PUT of the draft as HOLDER over real HTTP."""
    headers = dict(ward.headers[HOLDER])
    if if_match is not None:
        headers["If-Match"] = if_match

    def send() -> httpx.Response:
        url = base_url + report_url(ward.study_uid)
        return httpx.put(url, json={"text": text_}, headers=headers, timeout=30)

    return send


def post_finalise(base_url: str, ward: Ward, version: int) -> Request:
    """A POST of finalise as HOLDER over real HTTP."""

    def send() -> httpx.Response:
        url = base_url + report_url(ward.study_uid, "/finalise")
        return httpx.post(url, json={"version": version}, headers=ward.headers[HOLDER], timeout=30)

    return send


def test_two_saves_of_the_same_version_one_200_one_412(ward: Ward) -> None:
    ward.save(HOLDER, "v1")

    first = ward.save(HOLDER, "edit A", if_match='"1"')
    second = ward.save(HOLDER, "edit B", if_match='"1"')

    assert (first.status_code, second.status_code) == (200, 412)
    assert second.json()["version"] == 2
    assert ward.get(HOLDER).json()["text"] == "edit A"


def test_concurrent_saves_of_the_same_version_exactly_one_succeeds(
    ward: Ward, live_url: str, engine: Engine, db: sessionmaker[Session]
) -> None:
    ward.save(HOLDER, "v1")

    responses = race(
        engine,
        ward.study_uid,
        [put_draft(live_url, ward, "edit A", '"1"'), put_draft(live_url, ward, "edit B", '"1"')],
    )

    assert sorted(r.status_code for r in responses) == [200, 412]
    [winner] = [r for r in responses if r.status_code == 200]
    [loser] = [r for r in responses if r.status_code == 412]
    assert loser.json()["version"] == winner.json()["version"] == 2
    assert ward.get(HOLDER).json()["text"] == winner.json()["text"]
    assert [v.text for v in versions_of(db, ward.study_uid)] == ["v1", winner.json()["text"]]


def test_unsynchronised_concurrent_saves_never_both_succeed(ward: Ward, live_url: str) -> None:
    ward.save(HOLDER, "v1")

    for version in range(1, 6):
        start = threading.Barrier(2)
        requests = [put_draft(live_url, ward, f"{name} {version}", f'"{version}"') for name in "AB"]

        def at_once(request: Request, start: threading.Barrier = start) -> httpx.Response:
            start.wait(timeout=10)
            return request()

        with ThreadPoolExecutor(2) as pool:
            responses = list(pool.map(at_once, requests))

        assert sorted(r.status_code for r in responses) == [200, 412], version


def test_concurrent_first_saves_create_one_report(
    ward: Ward, live_url: str, engine: Engine, db: sessionmaker[Session]
) -> None:
    responses = race(
        engine,
        ward.study_uid,
        [put_draft(live_url, ward, "A", None), put_draft(live_url, ward, "B", None)],
    )

    assert sorted(r.status_code for r in responses) == [200, 428]
    assert len(versions_of(db, ward.study_uid)) == 1


def test_a_save_racing_finalise_never_changes_signed_text(
    ward: Ward, live_url: str, engine: Engine, db: sessionmaker[Session]
) -> None:
    ward.save(HOLDER, "signed text")

    save, finalise = race(
        engine,
        ward.study_uid,
        [put_draft(live_url, ward, "late edit", '"1"'), post_finalise(live_url, ward, 1)],
    )

    report = ward.get(HOLDER).json()
    if finalise.status_code == 200:
        assert save.status_code == 409
        assert report["text"] == "signed text"
    else:
        assert (save.status_code, finalise.status_code) == (200, 412)
        assert report["status"] == "draft"
        assert report["text"] == "late edit"
    assert len(versions_of(db, ward.study_uid)) == 2


def test_the_version_guard_holds_even_without_the_study_lock(
    ward: Ward, settings: Settings, db: sessionmaker[Session]
) -> None:
    ward.save(HOLDER, "v1")
    ward.save(HOLDER, "v2", if_match=1)
    with db() as session:
        report = session.scalars(
            select(Report).join(Study).where(Study.study_uid == ward.study_uid)
        ).one()
    assert settings.database_url is not None

    async def stale_update(session: AsyncSession) -> Report | None:
        return await repository.update_draft(
            session,
            report_id=report.id,
            expected_version=1,
            text="lost update",
            author_id=report.author_id,
        )

    assert run_async(settings.database_url, stale_update) is None
