"""``/dashboard`` and ``/docs`` in a stock headless Firefox: figures drawn, nothing off the host.

Playwright drives only its own patched Firefox, which cannot be downloaded here, so this
test drives Debian's ``firefox-esr`` over WebDriver BiDi with npm's ``puppeteer-core``
(which downloads no browser). ``firefox.cjs`` beside this file does the browsing and
prints what it saw as JSON; the assertions are here. ``.ci/run`` installs ``firefox-esr``
and ``npm``; puppeteer-core is installed from npm into the user's cache once, as the OHIF
test fetches its viewer. A screenshot of each page is kept under ``bench/out/``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import PASSWORD
from tests.dashboard.conftest import MANAGER, NORTH, SCREENSHOTS, SOUTH, STATS, LiveApi, Network

# The newest puppeteer-core for the machine's Node.js 20 (25.x asks for Node 22.12 or newer).
PUPPETEER_VERSION = "24.43.1"
FIREFOX = os.environ.get("WORKLIST_TEST_FIREFOX") or "/usr/bin/firefox-esr"
SCRIPT = Path(__file__).with_name("firefox.cjs")
BROWSE_TIMEOUT_SECONDS = 180
CHARTS = ("chart-backlog", "chart-turnaround", "chart-demand", "chart-alerts")
SHOTS = ("dashboard-firefox.png", "docs-firefox.png")
# A chart with axes, bars and a legend paints far more than this many pixels.
PAINTED_AT_LEAST = 5_000


def _node_modules() -> Path:
    """puppeteer-core's ``node_modules``, installed from npm into the user's cache once."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "imaging-worklist"
    home = cache / f"puppeteer-core-{PUPPETEER_VERSION}"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "puppeteer.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers install it once between them
        if not (home / "node_modules" / "puppeteer-core" / "package.json").is_file():
            _install(home)
    return home / "node_modules"


def _install(home: Path) -> None:
    npm = shutil.which("npm")
    assert npm, "npm is missing: `apt-get install npm` (.ci/run does)"
    staging = Path(tempfile.mkdtemp(dir=home.parent))
    try:
        subprocess.run(
            [
                npm,
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--prefix",
                str(staging),
                f"puppeteer-core@{PUPPETEER_VERSION}",
            ],
            check=True,
            capture_output=True,
            timeout=600,
            env={**os.environ, "PUPPETEER_SKIP_DOWNLOAD": "1"},
        )
        shutil.rmtree(home, ignore_errors=True)
        staging.rename(home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def browse(live_api: LiveApi, username: str) -> dict[str, Any]:
    """Sign in to /dashboard as ``username`` and open /docs in Firefox: what the pages showed."""
    assert os.path.exists(FIREFOX), f"{FIREFOX} is missing: .ci/run installs Debian's firefox-esr"
    node = shutil.which("node")
    assert node, "node is missing: `apt-get install npm` (.ci/run does)"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name in SHOTS:
        (SCREENSHOTS / name).unlink(missing_ok=True)
    config = {
        "firefox": FIREFOX,
        "origin": live_api.base_url,
        "username": username,
        "password": PASSWORD,
        "screenshots": str(SCREENSHOTS),
    }
    done = subprocess.run(
        [node, str(SCRIPT), json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=BROWSE_TIMEOUT_SECONDS,
        env={**os.environ, "NODE_PATH": str(_node_modules())},
    )
    assert done.returncode == 0, done.stderr
    seen: dict[str, Any] = json.loads(done.stdout)
    return seen


@pytest.fixture
def operations(live_api: LiveApi) -> int:
    """How many operations the API's OpenAPI document names."""
    document = httpx.get(f"{live_api.base_url}/openapi.json").json()
    return sum(
        1
        for item in document["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    )


def test_manager_dashboard_and_docs_in_firefox(
    live_api: LiveApi, network: Network, operations: int
) -> None:
    seen = browse(live_api, MANAGER)

    assert seen["version"].startswith("firefox/")
    page = seen["dashboard"]
    assert page["who"] == f"{MANAGER} (manager)"
    assert seen["stats"] == dict.fromkeys(STATS, 200)
    charts = page["charts"]
    for canvas in CHARTS:
        assert charts[canvas]["painted"] > PAINTED_AT_LEAST, canvas
    # The figures of conftest.network, as the Chromium test reads them.
    backlog = charts["chart-backlog"]
    north = backlog["labels"].index(NORTH)
    assert {"STAT", "Routine"} <= set(backlog["legend"])
    assert sum(d["data"][north] for d in backlog["datasets"]) == 2
    assert {"CT (1)", "MR (1)"} <= set(charts["chart-turnaround"]["labels"])
    assert sum(charts["chart-demand"]["datasets"][1]["data"]) == 2
    alerts = charts["chart-alerts"]
    critical = alerts["labels"].index("critical")
    assert alerts["datasets"][alerts["legend"].index(NORTH)]["data"][critical] == 100
    heatmap = {(origin, reporting): int(n) for origin, reporting, n in page["heatmap"]}
    assert heatmap[(NORTH, SOUTH)] == 2
    assert page["breaches"] == [[network.breached_uid, f"/api/v1/studies/{network.breached_uid}"]]
    assert page["breachesFigures"].startswith("1 unreported study past 28 days (network: 1);")
    assert page["studyAccession"] == network.breached_accession

    assert seen["docs"]["operations"] == operations
    assert any(url.endswith("/openapi.json") for url in seen["ours"])
    assert any(url.endswith("swagger-ui-bundle.js") for url in seen["ours"])
    assert any(url.endswith("/chart.umd.js") for url in seen["ours"])
    assert seen["foreign"] == []
    assert seen["errors"] == []
    for name in SHOTS:
        assert (SCREENSHOTS / name).stat().st_size > 10_000, name
