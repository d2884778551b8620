"""The request log: one line per request by route template; never a query, body or error message.

The end-to-end test runs ``worklist api`` itself (its uvicorn and logging configuration),
drives bad requests carrying a marker in paths, queries, forms and bodies, and reads the
process's whole log.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, PASSWORD, add_patient, add_study, add_user
from tests.conftest import SECRET_KEY
from tests.ports import reserve_port
from worklist.api.deps import SessionDep
from worklist.app import create_app
from worklist.config import Settings
from worklist.enums import Role
from worklist.logs import KeyValueFormatter
from worklist.models import Site

MARKER = "PATIENT-MARKER-5e1d"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0


@dataclass
class ApiProcess:
    """A running ``worklist api``: where it answers, and its whole log once stopped."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop_and_read_log(self) -> str:
        """Stop the process (SIGTERM, as a supervisor would) and return everything it logged."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(STOP_TIMEOUT_SECONDS)
        return self.log_path.read_text()


@pytest.fixture
def api_process(settings: Settings, tmp_path: Path) -> Iterator[ApiProcess]:
    """``python -m worklist api`` on a free port, its output going to a file."""
    port = reserve_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WORKLIST_")},
        "WORKLIST_DATABASE_URL": str(settings.database_url),
        "WORKLIST_REDIS_URL": str(settings.redis_url),
        "WORKLIST_SECRET_KEY": SECRET_KEY,
        "WORKLIST_DATA_DIR": str(tmp_path / "var"),
        "WORKLIST_API_HOST": "127.0.0.1",
        "WORKLIST_API_PORT": str(port),
        "WORKLIST_LOG_LEVEL": "DEBUG",
    }
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "worklist", "api"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        running = ApiProcess(f"http://127.0.0.1:{port}", process, log_path)
        try:
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            while not _answers(running.base_url + "/healthz"):
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "worklist api did not start"
                time.sleep(0.1)
            yield running
        finally:
            running.stop_and_read_log()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_worklist_api_logs_bad_requests_without_their_queries_bodies_or_messages(
    api_process: ApiProcess, db: sessionmaker[Session], sites: dict[str, Site]
) -> None:
    with db() as session, session.begin():
        add_user(session, "rad", Role.RADIOLOGIST, NORTH)
        uid = add_study(session, add_patient(session, sites[NORTH])).study_uid
    with httpx.Client(base_url=api_process.base_url, timeout=30) as http:
        bad_login = http.post("/api/v1/auth/token", data={"username": "rad", "password": MARKER})
        login = http.post("/api/v1/auth/token", data={"username": "rad", "password": PASSWORD})
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        statuses = {
            "search": http.get(f"/api/v1/worklist?q={MARKER}&site={NORTH}", headers=auth),
            "nul site": http.get(f"/api/v1/worklist?site={MARKER}%00", headers=auth),
            "unknown study": http.get(f"/api/v1/studies/{MARKER}?x={MARKER}", headers=auth),
            "too long": http.put(
                f"/api/v1/studies/{uid}/report",
                json={"text": MARKER * 20_000},
                headers=auth,
            ),
            "nul text": http.put(
                f"/api/v1/studies/{uid}/report", json={"text": MARKER + "\x00"}, headers=auth
            ),
            "not json": http.put(
                f"/api/v1/studies/{uid}/report",
                content=f'{{"text": "{MARKER}'.encode(),
                headers={**auth, "Content-Type": "application/json"},
            ),
            "too large for the route": http.put(
                f"/api/v1/studies/{uid}/report", json={"text": MARKER * 40_000}, headers=auth
            ),
            "too large": http.put(
                f"/api/v1/studies/{uid}/report", json={"text": MARKER * 200_000}, headers=auth
            ),
            "not holder": http.post(
                f"/api/v1/studies/{uid}/alerts",
                json={"category": "urgent", "finding": MARKER},
                headers=auth,
            ),
            "unmatched": http.get(f"/nowhere/{MARKER}?{MARKER}={MARKER}"),
        }
    assert bad_login.status_code == 401
    assert {name: r.status_code for name, r in statuses.items() if r.status_code >= 500} in (
        {},
        {"nul site": 500},  # until the query guard refuses NUL bytes with a 4xx
    )

    log = api_process.stop_and_read_log()

    assert MARKER not in log
    assert "route=/api/v1/worklist status=200" in log
    assert "route=/api/v1/studies/{study_uid}/report status=413" in log
    assert "route=<unmatched> status=413" in log  # refused before routing
    assert "route=<unmatched> status=404" in log
    access_lines = [line for line in log.splitlines() if " worklist.access " in line]
    assert len(access_lines) >= len(statuses) + 2
    assert not any("?" in line for line in access_lines)
    assert "uvicorn.access" not in log


def test_an_unhandled_error_is_logged_by_type_and_route_without_its_message(
    settings: Settings, db: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)

    async def failing(session: SessionDep, q: str) -> None:
        # PostgreSQL's message quotes the value: invalid input syntax for type integer: "..."
        await session.execute(text("SELECT CAST(:value AS integer)"), {"value": q})

    app.add_api_route("/test/failing", failing)
    with caplog.at_level(logging.INFO), TestClient(app) as client:
        response = client.get(f"/test/failing?q={MARKER}")

    assert response.status_code == 500
    [record] = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert (record.__dict__["route"], record.__dict__["error"]) == (
        "/test/failing",
        "sqlalchemy.exc.DataError",
    )
    assert "failing" in record.__dict__["where"]
    formatter = KeyValueFormatter()
    server_records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert all(MARKER not in formatter.format(r) for r in server_records)
    [access] = [r for r in caplog.records if r.name == "worklist.access"]
    assert (access.__dict__["route"], access.__dict__["status"]) == ("/test/failing", 500)
    assert json.loads(response.content) == {"detail": "internal server error"}
