"""``/docs`` and ``/redoc`` render in a real browser with every request to our own origin."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from tests.dicomweb.conftest import LiveApi, live_api

__all__ = ["live_api"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
RENDER_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium (Playwright cannot download its own here)."""
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: .ci/run installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Offline:
    """A page whose requests to any other origin are recorded and refused."""

    def __init__(self, browser: Browser, origin: str) -> None:
        self.origin = origin
        self.ours: list[str] = []
        self.foreign: list[str] = []
        self.page: Page = browser.new_page()
        self.page.route("**/*", self._route)

    def _route(self, route: Route) -> None:
        url = route.request.url
        if url == self.origin or url.startswith(self.origin + "/"):
            self.ours.append(url)
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()


def _operation_ids(api: LiveApi) -> set[str]:
    document = httpx.get(f"{api.base_url}/openapi.json").json()
    return {
        operation["operationId"]
        for item in document["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }


def test_swagger_ui_renders_every_operation_from_our_own_origin(
    live_api: LiveApi, browser: Browser
) -> None:
    offline = Offline(browser, live_api.base_url)
    offline.page.goto(f"{live_api.base_url}/docs")
    offline.page.wait_for_selector(".opblock", timeout=RENDER_TIMEOUT_MS)
    rendered = offline.page.locator(".opblock").count()
    assert rendered == len(_operation_ids(live_api))
    assert offline.page.get_by_text("/api/v1/worklist", exact=True).count() >= 1
    assert offline.foreign == []
    assert any(url.endswith("/openapi.json") for url in offline.ours)
    assert any(url.endswith("swagger-ui-bundle.js") for url in offline.ours)


def test_redoc_renders_every_operation_from_our_own_origin(
    live_api: LiveApi, browser: Browser
) -> None:
    offline = Offline(browser, live_api.base_url)
    offline.page.goto(f"{live_api.base_url}/redoc")
    operations = offline.page.locator("[data-section-id*='/operation/']")
    operations.first.wait_for(timeout=RENDER_TIMEOUT_MS)
    section_ids = {
        operations.nth(i).get_attribute("data-section-id") for i in range(operations.count())
    }
    rendered = {str(section).rsplit("/operation/", 1)[1] for section in section_ids}
    assert rendered == _operation_ids(live_api)
    assert offline.foreign == []
    assert any(url.endswith("redoc.standalone.js") for url in offline.ours)
