"""Login throttling per (user, address), with a higher user-wide limit across addresses:
nobody can lock a user out from somewhere else, and spreading guesses over many
addresses is still bounded."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, PASSWORD, add_user, sites
from tests.claims.conftest import SERVER_START_TIMEOUT_SECONDS, wait_for
from worklist.app import create_app
from worklist.config import Settings
from worklist.enums import Role

__all__ = ["sites"]

TOKEN_URL = "/api/v1/auth/token"
USER = "rad"
# Real peers: the server listens on loopback and each client connects from its own
# 127.0.0.0/8 source address, which is what the app sees as the caller's address.
HOME = "127.0.0.5"  # the radiologist's own workstation
ATTACKER = "127.0.0.66"
WRONG = "wrong-password"

From = Callable[[str], httpx.Client]


def spread(n: int) -> str:
    """The n-th of many addresses an attacker spreads guesses over."""
    return f"127.0.1.{n + 1}"


@pytest.fixture
def radiologist(db: sessionmaker[Session], sites: object) -> str:
    """A radiologist at NORTH."""
    with db() as session, session.begin():
        add_user(session, USER, Role.RADIOLOGIST, NORTH)
    return USER


def serve(settings: Settings, **limits: Any) -> Iterator[From]:
    """The app (with these limits) on uvicorn; a function giving a client from an address."""
    app = create_app(settings.model_copy(update=limits))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=SERVER_START_TIMEOUT_SECONDS, what="uvicorn")
    made: dict[str, httpx.Client] = {}

    def client_from(address: str) -> httpx.Client:
        if address not in made:
            transport = httpx.HTTPTransport(local_address=address)
            made[address] = httpx.Client(base_url=base_url, transport=transport)
        return made[address]

    try:
        yield client_from
    finally:
        for client in made.values():
            client.close()
        server.should_exit = True
        thread.join(timeout=SERVER_START_TIMEOUT_SECONDS)
        sock.close()


@pytest.fixture
def pair_limited(settings: Settings, db: sessionmaker[Session]) -> Iterator[From]:
    """Three failures lock a (user, address) pair; the user-wide limit is far away."""
    yield from serve(settings, login_max_failures=3, login_max_failures_per_user=1000)


@pytest.fixture
def user_limited(settings: Settings, db: sessionmaker[Session]) -> Iterator[From]:
    """Four failures across all addresses close the user to addresses it never used."""
    yield from serve(settings, login_max_failures=100, login_max_failures_per_user=4)


def login(client: httpx.Client, password: str, username: str = USER) -> int:
    """The status of one login attempt."""
    return client.post(TOKEN_URL, data={"username": username, "password": password}).status_code


def test_failures_from_another_address_do_not_lock_the_user_out_at_theirs(
    pair_limited: From, radiologist: str
) -> None:
    attacker = pair_limited(ATTACKER)
    for _ in range(3):
        assert login(attacker, WRONG) == 401

    assert login(attacker, PASSWORD) == 429
    assert login(pair_limited(HOME), PASSWORD) == 200


def test_failures_lock_the_pair_even_with_the_right_password(
    pair_limited: From, radiologist: str
) -> None:
    home = pair_limited(HOME)
    for _ in range(3):
        assert login(home, WRONG) == 401

    response = home.post(TOKEN_URL, data={"username": USER, "password": PASSWORD})

    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0


def test_guesses_spread_over_many_addresses_are_stopped_by_the_user_wide_limit(
    user_limited: From, radiologist: str
) -> None:
    for n in range(4):
        assert login(user_limited(spread(n)), WRONG) == 401

    fresh_address = user_limited(spread(200))

    assert login(fresh_address, PASSWORD) == 429
    assert login(fresh_address, WRONG) == 429


def test_the_user_wide_limit_spares_addresses_the_user_logged_in_from(
    user_limited: From, radiologist: str
) -> None:
    home = user_limited(HOME)
    assert login(home, PASSWORD) == 200
    for n in range(6):
        login(user_limited(spread(n)), WRONG)

    assert login(user_limited(spread(200)), PASSWORD) == 429
    assert login(home, PASSWORD) == 200


def test_a_real_login_does_not_reset_the_user_wide_count(
    user_limited: From, radiologist: str
) -> None:
    home = user_limited(HOME)
    assert login(home, PASSWORD) == 200
    for n in range(4):
        login(user_limited(spread(n)), WRONG)

    assert login(home, PASSWORD) == 200

    assert login(user_limited(spread(200)), WRONG) == 429


def test_during_a_distributed_attack_an_address_never_used_before_is_refused_too(
    user_limited: From, radiologist: str
) -> None:
    for n in range(4):
        login(user_limited(spread(n)), WRONG)

    assert login(user_limited(HOME), PASSWORD) == 429


def test_an_unknown_username_is_throttled_like_a_known_one(
    pair_limited: From, radiologist: str
) -> None:
    attacker = pair_limited(ATTACKER)
    statuses = {
        name: [login(attacker, WRONG, username=name) for _ in range(4)] for name in (USER, "ghost")
    }

    assert statuses[USER] == statuses["ghost"] == [401, 401, 401, 429]
