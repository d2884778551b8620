"""Request bodies are bounded: 413 above the API's or the route's limit, declared or streamed."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, add_patient, add_study, add_user, bearer
from tests.api.live import connect, read_response, serve
from worklist.api.limits import SMALL_BODY_BYTES
from worklist.app import create_app
from worklist.config import Settings
from worklist.enums import Role
from worklist.models import Site
from worklist.reports.endpoints import REPORT_BODY_BYTES
from worklist.reports.schemas import MAX_TEXT_LENGTH

# Small enough that a test sends it quickly; the default (1 MiB) behaves the same way.
API_LIMIT = 64 * 1024
CHUNK = 8 * 1024
REPORT_PATH = "/api/v1/studies/1.2.3/report"


def limited(settings: Settings, max_bytes: int = API_LIMIT) -> Settings:
    """The test settings with a smaller API-wide body limit."""
    return settings.model_copy(update={"max_body_bytes": max_bytes})


def test_a_declared_length_over_the_limit_is_refused_before_any_body_is_sent(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    with serve(create_app(limited(settings))) as address, connect(address) as conn:
        conn.sendall(
            f"PUT {REPORT_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: 500000000\r\n\r\n".encode()
        )
        status, body = read_response(conn)

    assert status == 413
    assert json.loads(body) == {
        "detail": f"request body too large: at most {API_LIMIT} bytes are accepted here"
    }


def test_a_chunked_body_is_refused_as_soon_as_it_grows_past_the_limit(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    chunk = b"".join([f"{CHUNK:x}\r\n".encode(), b"a" * CHUNK, b"\r\n"])
    with serve(create_app(limited(settings))) as address, connect(address) as conn:
        conn.sendall(
            f"PUT {REPORT_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        # One chunk past the limit and no final chunk: a server waiting for the whole body
        # would never answer (the socket timeout fails the test).
        for _ in range(API_LIMIT // CHUNK + 1):
            conn.sendall(chunk)
        status, body = read_response(conn)

    assert status == 413
    assert json.loads(body)["detail"].endswith(f"at most {API_LIMIT} bytes are accepted here")


def test_a_small_body_route_has_its_own_lower_limit_also_when_streamed(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    chunk = b"".join([f"{CHUNK:x}\r\n".encode(), b"a" * CHUNK, b"\r\n"])
    with serve(create_app(settings)) as address, connect(address) as conn:
        conn.sendall(
            b"POST /api/v1/auth/token HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(SMALL_BODY_BYTES // CHUNK + 1):
            conn.sendall(chunk)
        status, body = read_response(conn)

    assert status == 413
    assert str(SMALL_BODY_BYTES) in json.loads(body)["detail"]


def test_a_report_body_over_the_report_routes_limit_is_413_even_under_the_api_limit(
    client: TestClient, settings: Settings
) -> None:
    assert settings.max_body_bytes > REPORT_BODY_BYTES
    body = json.dumps({"text": "x" * (REPORT_BODY_BYTES + 1)})

    response = client.put(REPORT_PATH, content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert response.json() == {
        "detail": f"request body too large: at most {REPORT_BODY_BYTES} bytes are accepted here"
    }


def test_a_body_over_the_configured_api_limit_is_413_on_any_route(
    settings: Settings, db: sessionmaker[Session]
) -> None:
    with TestClient(create_app(limited(settings, 1000))) as small:
        report = small.put(REPORT_PATH, json={"text": "x" * 2000})
        login = small.post("/api/v1/auth/token", data={"username": "u", "password": "p" * 2000})
        listing = small.request("GET", "/api/v1/worklist", content=b"x" * 2000)

    assert [report.status_code, login.status_code, listing.status_code] == [413, 413, 413]
    assert "at most 1000 bytes" in report.json()["detail"]


def test_small_body_routes_refuse_more_than_their_limit(
    client: TestClient, settings: Settings, db: sessionmaker[Session], sites: dict[str, Site]
) -> None:
    with db() as session, session.begin():
        admin = add_user(session, "admin", Role.ADMIN)
    headers = bearer(settings, admin)
    oversized = "x" * (SMALL_BODY_BYTES + 1)

    webhook = client.put(
        f"/api/v1/sites/{NORTH}/webhook",
        json={"url": "https://a.example/" + oversized},
        headers=headers,
    )
    login = client.post("/api/v1/auth/token", data={"username": "admin", "password": oversized})
    triage = client.patch(
        "/api/v1/studies/1.2.3", json={"priority": "stat", "x": oversized}, headers=headers
    )

    assert [webhook.status_code, login.status_code, triage.status_code] == [413, 413, 413]


def test_a_field_over_its_bound_within_the_body_limit_is_422_without_the_text(
    client: TestClient, settings: Settings, db: sessionmaker[Session], sites: dict[str, Site]
) -> None:
    with db() as session, session.begin():
        rad = add_user(session, "rad", Role.RADIOLOGIST, NORTH)
        uid = add_study(session, add_patient(session, sites[NORTH])).study_uid
    marker = "MARKER" * (MAX_TEXT_LENGTH // 6 + 1)

    response = client.put(
        f"/api/v1/studies/{uid}/report", json={"text": marker}, headers=bearer(settings, rad)
    )

    assert response.status_code == 422
    assert "MARKER" not in response.text
    assert len(response.content) < 1000
    [error] = response.json()["detail"]
    assert error == {
        "loc": ["body", "text"],
        "msg": f"String should have at most {MAX_TEXT_LENGTH} characters",
        "type": "string_too_long",
    }


def test_login_form_fields_are_bounded(client: TestClient, db: sessionmaker[Session]) -> None:
    response = client.post("/api/v1/auth/token", data={"username": "u" * 65, "password": "p"})

    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "username"]]
