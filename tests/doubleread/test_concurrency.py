"""Readers racing for reads over real HTTP: one read goes to one reader, whatever the timing."""

from __future__ import annotations

import threading
from collections import Counter

import httpx
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, bearer
from tests.claims.conftest import add_account
from tests.doubleread.conftest import LiveApi, Network
from worklist.config import Settings
from worklist.enums import Role
from worklist.models import User

READERS = 8


def _readers(db: sessionmaker[Session], settings: Settings) -> list[dict[str, str]]:
    with db() as session, session.begin():
        users = [
            add_account(session, f"dr.racer{i}", Role.RADIOLOGIST, NORTH) for i in range(READERS)
        ]
    return [bearer(settings, user) for user in users]


def _race(
    live_api: LiveApi, headers: list[dict[str, str]], method: str, url: str
) -> list[httpx.Response]:
    barrier = threading.Barrier(len(headers))
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def run(header: dict[str, str]) -> None:
        with live_api.client() as client:
            barrier.wait()
            response = client.request(method, url, headers=header)
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=run, args=(h,)) for h in headers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(responses) == len(headers)
    return responses


def test_of_readers_claiming_one_read_at_once_exactly_one_wins(
    network: Network, live_api: LiveApi, db: sessionmaker[Session], settings: Settings
) -> None:
    network.set_rules({"share": 1})
    uid = network.add_study()
    network.report(uid)
    read_id = network.read_of(uid)
    headers = _readers(db, settings)
    responses = _race(live_api, headers, "POST", f"/api/v1/double-reads/{read_id}/claim")
    assert Counter(r.status_code for r in responses) == {200: 1, 409: READERS - 1}
    [winner] = [r.json() for r in responses if r.status_code == 200]
    [read] = network.reads(uid)
    assert read.status == "claimed"
    with db() as session:
        assert session.get_one(User, read.reader_id).username == winner["reader"]


def test_readers_calling_next_at_once_never_get_the_same_read(
    network: Network, live_api: LiveApi, db: sessionmaker[Session], settings: Settings
) -> None:
    network.set_rules({"share": 1})
    for _ in range(READERS // 2):
        network.report(network.add_study())
    headers = _readers(db, settings)
    responses = _race(live_api, headers, "POST", "/api/v1/double-reads/next")
    assert Counter(r.status_code for r in responses) == {200: READERS // 2, 204: READERS // 2}
    taken = [r.json()["id"] for r in responses if r.status_code == 200]
    assert len(set(taken)) == len(taken) == READERS // 2
    assert {read.status for read in network.reads()} == {"claimed"}
