"""/metrics: a bearer token when WORKLIST_METRICS_TOKEN is set; otherwise loopback clients only."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import LOOPBACK_CLIENT
from tests.api.live import serve
from worklist.app import create_app
from worklist.config import Settings
from worklist.ops.endpoints import is_loopback

TOKEN = "metrics-token-for-tests-0123456789abcdef"
REMOTE_CLIENT = ("10.20.30.40", 50000)


def _scrape(settings: Settings, client: tuple[str, int], **headers: str) -> httpx.Response:
    with TestClient(create_app(settings), client=client) as test_client:
        return test_client.get("/metrics", headers=headers)


def test_without_a_token_loopback_clients_get_the_metrics(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    response = _scrape(settings, LOOPBACK_CLIENT)

    assert response.status_code == 200
    assert "worklist_api_request_seconds" in response.text


def test_without_a_token_other_clients_are_refused(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    response = _scrape(settings, REMOTE_CLIENT)

    assert response.status_code == 403
    assert "WORKLIST_METRICS_TOKEN" in response.json()["detail"]
    assert "worklist_" not in response.text


def test_a_real_server_serves_its_metrics_to_a_loopback_scraper(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    with serve(create_app(settings)) as (host, port):
        response = httpx.get(f"http://{host}:{port}/metrics")

    assert response.status_code == 200


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x"]
)
def test_with_a_token_a_scraper_without_it_is_401_even_on_loopback(
    settings: Settings, db: sessionmaker[Session], authorization: str | None
) -> None:
    with_token = settings.model_copy(update={"metrics_token": TOKEN})
    headers = {"Authorization": authorization} if authorization else {}

    response = _scrape(with_token, LOOPBACK_CLIENT, **headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_with_a_token_the_holder_gets_the_metrics_from_anywhere(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    with_token = settings.model_copy(update={"metrics_token": TOKEN})

    response = _scrape(with_token, REMOTE_CLIENT, Authorization=f"Bearer {TOKEN}")

    assert response.status_code == 200
    assert "worklist_api_request_seconds" in response.text


def test_an_empty_token_setting_means_no_token(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    empty = settings.model_copy(update={"metrics_token": ""})

    assert _scrape(empty, LOOPBACK_CLIENT).status_code == 200
    assert _scrape(empty, REMOTE_CLIENT).status_code == 403


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("localhost", False),
        ("testclient", False),
        ("", False),
        (None, False),
    ],
)
def test_only_loopback_addresses_count_as_loopback(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback
