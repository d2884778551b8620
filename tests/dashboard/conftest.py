"""Dashboard fixtures: a small committed network, the API on a socket, a watched browser page."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Route, sync_playwright
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import PASSWORD, add_patient, add_site, add_study, add_user
from tests.api.live import serve
from worklist.app import create_app
from worklist.config import Settings
from worklist.enums import AlertCategory, AlertStatus, Priority, ReportStatus, Role, StudyStatus
from worklist.models import Alert, Report, Study

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
RENDER_TIMEOUT_MS = 60_000
SCREENSHOTS = Path(__file__).resolve().parents[2] / "bench" / "out"

NORTH = "NORTH"
SOUTH = "SOUTH"
MANAGER = "mgr.north"
RADIOLOGIST = "dr.south"  # reports for NORTH, home trust SOUTH
ADMIN = "admin"
STATS = ("backlog", "turnaround", "demand", "flows", "alerts", "breaches")
STATS_URL = re.compile(r"/api/v1/stats/(?P<name>[a-z]+)$")


@dataclass(frozen=True)
class Network:
    """What the committed rows hold, for the assertions and the stand-in figures."""

    breached_uid: str
    breached_accession: str
    now: datetime


@dataclass
class LiveApi:
    """The API under uvicorn, and which stats endpoints it has."""

    app: FastAPI
    base_url: str

    def has_stats(self, name: str) -> bool:
        """Whether the API documents ``GET /api/v1/stats/{name}`` (its routes are lazy)."""
        document = httpx.get(f"{self.base_url}/openapi.json").json()
        return "get" in document["paths"].get(f"/api/v1/stats/{name}", {})

    def token(self, username: str) -> str:
        """A bearer token from the real login endpoint."""
        response = httpx.post(
            f"{self.base_url}/api/v1/auth/token",
            data={"username": username, "password": PASSWORD},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def study(self, username: str, study_uid: str) -> dict[str, Any]:
        """``GET /api/v1/studies/{uid}`` as ``username``: a real WorklistItem."""
        headers = {"Authorization": f"Bearer {self.token(username)}"}
        response = httpx.get(f"{self.base_url}/api/v1/studies/{study_uid}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium (Playwright cannot download its own here).

    Module-scoped as in ``tests/api/test_docs.py``: one sync Playwright at a time per process.
    """
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: .ci/run installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def live_api(settings: Settings, db: sessionmaker[Session]) -> Iterator[LiveApi]:
    """create_app(settings) under uvicorn on a free loopback port."""
    app = create_app(settings)
    with serve(app) as (host, port):
        yield LiveApi(app=app, base_url=f"http://{host}:{port}")


@pytest.fixture
def network(db: sessionmaker[Session]) -> Network:
    """NORTH's manager, an admin, a radiologist of SOUTH reporting for NORTH, NORTH's studies.

    Unreported: a STAT study 2 hours old and a routine one 40 days old (a 28-day breach).
    Reported by dr.south: a CT examined 3 days ago (final 2 days ago) and an MR examined
    5 days ago (final 4 days ago). One critical alert on the CT, acknowledged in 10 of its
    15 minutes.
    """
    now = datetime.now(UTC).replace(microsecond=0)
    with db() as session, session.begin():
        north = add_site(session, NORTH)
        south = add_site(session, SOUTH)
        add_user(session, MANAGER, Role.MANAGER, NORTH)
        add_user(session, ADMIN, Role.ADMIN)
        reader = add_user(session, RADIOLOGIST, Role.RADIOLOGIST, NORTH, SOUTH)
        reader.home_site_id = south.id
        patient = add_patient(session, north, name="NORTH^PATIENT")
        add_study(session, patient, priority=Priority.STAT, received_at=now - timedelta(hours=2))
        breached = add_study(
            session,
            patient,
            received_at=now - timedelta(days=40),
            description="MR KNEE",
            modalities=["MR"],
        )
        ct = _reported(
            session, patient, reader.id, now - timedelta(days=3), now - timedelta(days=2)
        )
        _reported(
            session, patient, reader.id, now - timedelta(days=5), now - timedelta(days=4), "MR"
        )
        raised = now - timedelta(days=2)
        session.add(
            Alert(
                study_id=ct.id,
                site_id=north.id,
                category=AlertCategory.CRITICAL,
                finding="Large pneumothorax",
                raised_by_id=reader.id,
                raised_at=raised,
                ack_due_at=raised + timedelta(minutes=15),  # critical: 15 minutes
                status=AlertStatus.ACKNOWLEDGED,
                acknowledged_by="ward sister",
                acknowledged_at=raised + timedelta(minutes=10),
            )
        )
        return Network(
            breached_uid=breached.study_uid,
            breached_accession=str(breached.accession_number),
            now=now,
        )


def _reported(
    session: Session,
    patient: Any,
    author_id: int,
    examined: datetime,
    finalised: datetime,
    modality: str = "CT",
) -> Study:
    study = add_study(
        session,
        patient,
        status=StudyStatus.REPORTED,
        received_at=examined + timedelta(minutes=30),
        study_datetime=examined,
        modalities=[modality],
        description=f"{modality} CHEST",
    )
    report = Report(
        study_id=study.id,
        status=ReportStatus.FINAL,
        text="No acute findings.",
        version=1,
        author_id=author_id,
        finalised_at=finalised,
        finalised_by_id=author_id,
    )
    session.add(report)
    session.flush()
    return study


@dataclass
class Watched:
    """A page whose requests to any other origin are refused, with its console errors."""

    page: Page
    origin: str
    foreign: list[str] = field(default_factory=list)
    ours: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stats_status: dict[str, int] = field(default_factory=dict)
    stats_queries: dict[str, list[dict[str, list[str]]]] = field(default_factory=dict)

    def stand_in(self, figures: dict[str, Callable[[], Any]]) -> None:
        """Answer these stats endpoints with fixed JSON of DESIGN's shape."""

        def fulfil(route: Route) -> None:
            name = STATS_URL.search(urlsplit(route.request.url).path)
            assert name is not None
            route.fulfill(
                status=200,
                content_type="application/json",
                body=json.dumps(figures[name.group("name")]()),
            )

        for name in figures:
            self.page.route(re.compile(rf"/api/v1/stats/{name}(\?.*)?$"), fulfil)

    def sign_in(self, username: str) -> None:
        """Open /dashboard and sign in with the shared test password."""
        self.page.goto(f"{self.origin}/dashboard")
        self.page.fill("#username", username)
        self.page.fill("#password", PASSWORD)
        self.page.click("#sign-in-form button[type=submit]")

    def wait_loaded(self) -> None:
        """Until every panel has drawn (the page marks the body when all have answered)."""
        self.page.wait_for_selector("body[data-loaded=true]", timeout=RENDER_TIMEOUT_MS)

    def screenshot(self, name: str) -> None:
        """Keep the whole page as ``bench/out/<name>`` (a CI artefact)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / name), full_page=True)

    def chart(self, canvas_id: str) -> dict[str, Any]:
        """A Chart.js chart's labels, datasets, legend and the canvas's painted pixels."""
        summary: dict[str, Any] = self.page.evaluate(
            """(id) => {
                const canvas = document.getElementById(id);
                const chart = Chart.getChart(canvas);
                const pixels = canvas.getContext("2d")
                    .getImageData(0, 0, canvas.width, canvas.height).data;
                let painted = 0;
                for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] !== 0) painted++; }
                return {
                    labels: chart.data.labels,
                    datasets: chart.data.datasets.map((d) => ({label: d.label, data: d.data})),
                    legend: chart.legend.legendItems.map((item) => item.text),
                    painted,
                    width: canvas.width,
                };
            }""",
            canvas_id,
        )
        return summary

    def heatmap(self) -> dict[tuple[str, str], int]:
        """The flows heat map's cells: (origin, reporting trust) -> the number shown."""
        cells = self.page.eval_on_selector_all(
            "#chart-flows svg g.cell",
            """(cells) => cells.map((g) => [
                g.dataset.origin, g.dataset.reporting, g.querySelector("text.value").textContent,
            ])""",
        )
        return {(origin, reporting): int(value) for origin, reporting, value in cells}


@pytest.fixture
def watched(browser: Browser, live_api: LiveApi) -> Iterator[Watched]:
    """A fresh page on the live API, offline for every other origin."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    watch = Watched(page=page, origin=live_api.base_url)

    def route(route: Route) -> None:
        url = route.request.url
        if url == watch.origin or url.startswith(watch.origin + "/"):
            watch.ours.append(url)
            route.continue_()
        else:
            watch.foreign.append(url)
            route.abort()

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watch.errors.append(message.text)

    def finished(request: Request) -> None:
        response = request.response()
        matched = STATS_URL.search(urlsplit(request.url).path)
        if matched and response is not None:
            watch.stats_status[matched.group("name")] = response.status
            queries = watch.stats_queries.setdefault(matched.group("name"), [])
            queries.append(parse_qs(urlsplit(request.url).query))

    page.route("**/*", route)
    page.on("console", console)
    page.on("pageerror", lambda error: watch.errors.append(f"page error: {error}"))
    page.on("requestfinished", finished)
    yield watch
    context.close()


def missing_stats(live_api: LiveApi) -> list[str]:
    """The stats endpoints this build of the API does not have yet."""
    return [name for name in STATS if not live_api.has_stats(name)]
