"""The real OHIF viewer (the prebuilt ``@ohif/app``) in headless Chromium, on our DICOMweb.

Needs Debian's ``chromium`` and OHIF's dist (``.ci/run`` fetches both and exports
WORKLIST_TEST_OHIF_DIST); skipped where either is missing. The viewer runs its stock
configuration with only the server URLs put in; the browser sends the bearer token.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import audit_rows, bearer
from tests.dicomweb.conftest import DR_A, LiveApi, Pushed
from worklist.config import Settings
from worklist.enums import AuditAction
from worklist.models import User

STOCK_DICOMWEB_ROOT = "https://d14fa38qiwhyfd.cloudfront.net/dicomweb"
PAGE_TIMEOUT_MS = 60_000


@dataclass
class OhifSite:
    """OHIF's dist served over HTTP; app-config.js is the stock one, pointed at us."""

    origin: str
    dicomweb_root: str = ""


def _dist() -> Path:
    configured = os.environ.get("WORKLIST_TEST_OHIF_DIST")
    if not configured or not (Path(configured) / "index.html").is_file():
        pytest.skip("WORKLIST_TEST_OHIF_DIST (an unpacked @ohif/app dist) is not set")
    return Path(configured)


def _chromium() -> str:
    path = os.environ.get("WORKLIST_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.skip("no chromium")
    return path


def app_config(dist: Path, site: OhifSite) -> bytes:
    """The dist's own app-config.js with our DICOMweb root in place of its demo server's."""
    stock = (dist / "app-config.js").read_text()
    assert stock.count(STOCK_DICOMWEB_ROOT) == 3, "the stock data source changed"
    return stock.replace(STOCK_DICOMWEB_ROOT, site.dicomweb_root).encode()


class _Handler(SimpleHTTPRequestHandler):
    """Static files of the dist; any other path is the single-page app's index.html."""

    def __init__(self, *args: Any, site: OhifSite, dist: Path, **kwargs: Any) -> None:
        self.site = site
        self.dist = dist
        super().__init__(*args, directory=str(dist), **kwargs)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/app-config.js":
            body = app_config(self.dist, self.site)
            self.send_response(200)
            self.send_header("Content-Type", "application/javascript")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if not (self.dist / path.lstrip("/")).is_file():
            self.path = "/index.html"
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def ohif_site() -> Iterator[OhifSite]:
    """OHIF served on a free loopback port."""
    dist = _dist()
    site = OhifSite(origin="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, site=site, dist=dist))
    host, port = server.server_address[:2]
    site.origin = f"http://{host!s}:{port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def settings(settings: Settings, ohif_site: OhifSite) -> Settings:
    """The API lets the viewer's origin call it (WORKLIST_CORS_ORIGINS)."""
    return settings.model_copy(update={"cors_origins": [ohif_site.origin]})


def test_ohifs_study_list_shows_our_study_with_its_series_thumbnails(
    ohif_site: OhifSite,
    live_api: LiveApi,
    head_ct: Pushed,
    users: dict[str, User],
    db: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = _chromium()
    ohif_site.dicomweb_root = f"{live_api.base_url}/dicomweb"

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--use-gl=swiftshader", "--enable-unsafe-swiftshader"],
        )
        try:
            # OHIF takes its token from a login (OIDC); the browser sends it here instead.
            page = browser.new_page(
                viewport={"width": 1400, "height": 900},
                extra_http_headers=bearer(live_api.settings, users[DR_A]),
            )
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(f"{ohif_site.origin}/")
            # The study list shows our study; selecting it shows one thumbnail per series,
            # each an image our thumbnail resource rendered.
            page.get_by_text(head_ct.spec.accession_number).first.click()
            page.wait_for_function(
                """count => [...document.querySelectorAll('img[src^="blob:"]')]
                    .filter(img => img.complete && img.naturalWidth > 0).length >= count""",
                arg=len(head_ct.spec.series),
            )
            page.get_by_text(head_ct.spec.series[0].description).first.wait_for()
            page.screenshot(path=str(tmp_path / "study-list.png"))
        finally:
            browser.close()

    rows = audit_rows(db, AuditAction.STUDY_RETRIEVED)
    thumbnails = [r for r in rows if r.detail["resource"] == "thumbnail"]
    series = {s.series_uid for s in head_ct.spec.series}
    assert {r.detail["series_uid"] for r in thumbnails} >= series
    assert {r.actor for r in thumbnails} == {DR_A}
