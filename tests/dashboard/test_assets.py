"""What ``/dashboard`` serves: its own assets only, a strict policy, the vendored Chart.js."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser

import httpx

from tests.dashboard.conftest import LiveApi
from worklist.dashboard.pages import ASSETS

STRICT_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class Assets(HTMLParser):
    """The page's scripts and stylesheets, and whether any script or style is inline."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Collect asset URLs; note inline handlers and style attributes."""
        named = dict(attrs)
        if tag == "script":
            self._in_script = True
            assert named.get("src"), "a script without src would be inline"
            self.urls.append(str(named["src"]))
        if tag == "link" and named.get("rel") == "stylesheet":
            self.urls.append(str(named["href"]))
        self.inline += [name for name in named if name == "style" or name.startswith("on")]
        if tag == "style":
            self.inline.append("<style>")

    def handle_endtag(self, tag: str) -> None:
        """Leave a script element."""
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        """Text inside a script element would be an inline script."""
        if self._in_script and data.strip():
            self.inline.append(data)


def test_page_has_a_strict_policy_and_no_inline_code(live_api: LiveApi) -> None:
    response = httpx.get(f"{live_api.base_url}/dashboard")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == STRICT_POLICY
    parser = Assets()
    parser.feed(response.text)
    assert parser.inline == []
    assert parser.urls == [
        "dashboard/static/dashboard.css",
        "dashboard/static/vendor/chart.umd.js",
        "dashboard/static/dashboard.js",
    ]


def test_every_asset_is_served_by_the_api_with_its_type(live_api: LiveApi) -> None:
    types = {".js": "javascript", ".css": "text/css", ".md": "text/markdown"}
    served = sorted(path for path in ASSETS.rglob("*") if path.is_file() and path.suffix != ".html")
    assert {path.name for path in served} >= {"dashboard.js", "chart.umd.js", "chart.js.LICENSE.md"}
    for path in served:
        url = f"{live_api.base_url}/dashboard/static/{path.relative_to(ASSETS).as_posix()}"
        response = httpx.get(url)
        assert response.status_code == 200, url
        assert types[path.suffix] in response.headers["content-type"], url
        assert response.content == path.read_bytes()


def test_modules_import_only_their_neighbours() -> None:
    """No module reaches for another origin, nor an inline or evaluated script."""
    for module in ASSETS.glob("*.js"):
        source = module.read_text()
        for imported in re.findall(r'from "([^"]+)"', source):
            assert imported.startswith("./"), imported
            assert (ASSETS / imported).is_file(), imported
        assert "innerHTML" not in source, module.name
        assert "eval(" not in source, module.name
        assert "http://" not in source.replace("http://www.w3.org/2000/svg", ""), module.name
        assert "https://" not in source, module.name


def test_vendored_chart_js_is_the_published_file() -> None:
    notes = (ASSETS / "vendor" / "README.md").read_text()
    recorded = re.search(r"`sha256sum chart.umd.js`: `([0-9a-f]{64})`", notes)
    assert recorded is not None
    vendored = (ASSETS / "vendor" / "chart.umd.js").read_bytes()
    assert hashlib.sha256(vendored).hexdigest() == recorded.group(1)
    assert vendored.startswith(b"/*!\n * Chart.js v4.6.1\n")
    assert "MIT License" in (ASSETS / "vendor" / "chart.js.LICENSE.md").read_text()
