"""The real OHIF viewer (the prebuilt ``@ohif/app``) in headless Chromium, on our DICOMweb.

Needs Debian's ``chromium`` (``.ci/run`` installs it) and OHIF's dist, which the test
fetches from npm into the user's cache once (or takes from WORKLIST_TEST_OHIF_DIST). The
viewer runs its stock configuration with only the server URLs put in; the browser sends
the bearer token.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import audit_rows, bearer
from tests.dicomweb.conftest import DR_A, LiveApi, Pushed
from worklist.config import Settings
from worklist.enums import AuditAction
from worklist.models import User

OHIF_VERSION = "3.13.2"
STOCK_DICOMWEB_ROOT = "https://d14fa38qiwhyfd.cloudfront.net/dicomweb"
PAGE_TIMEOUT_MS = 60_000


@dataclass
class OhifSite:
    """OHIF's dist served over HTTP; app-config.js is the stock one, pointed at us."""

    origin: str
    dicomweb_root: str = ""


def _dist() -> Path:
    configured = os.environ.get("WORKLIST_TEST_OHIF_DIST")
    if configured:
        assert (Path(configured) / "index.html").is_file(), f"no OHIF dist at {configured}"
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "imaging-worklist"
    home = cache / f"ohif-app-{OHIF_VERSION}"
    dist = home / "package" / "dist"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "ohif.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers fetch it once between them
        if not (dist / "index.html").is_file():
            _fetch_ohif(home)
    return dist


def _fetch_ohif(home: Path) -> None:
    npm = shutil.which("npm")
    assert npm, "npm is missing: `apt-get install npm` (.ci/run does)"
    staging = Path(tempfile.mkdtemp(dir=home.parent))
    try:
        subprocess.run(
            [npm, "pack", "--silent", f"@ohif/app@{OHIF_VERSION}"],
            cwd=staging,
            check=True,
            capture_output=True,
            timeout=600,
        )
        [archive] = staging.glob("*.tgz")
        with tarfile.open(archive) as packed:
            packed.extractall(staging / "unpacked", filter="data")
        shutil.rmtree(home, ignore_errors=True)
        (staging / "unpacked").rename(home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _chromium() -> str:
    path = os.environ.get("WORKLIST_TEST_CHROMIUM") or shutil.which("chromium")
    assert path, "chromium is missing: `apt-get install chromium` (.ci/run does)"
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
