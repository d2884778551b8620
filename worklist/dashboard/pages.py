"""``/dashboard``: a static page and its scripts, all served by this installation.

The page signs in with the API's own token endpoint and draws the ``/api/v1/stats``
figures in the browser. Hospital networks are often offline, so nothing comes from a CDN:
Chart.js is vendored under ``static/vendor``, and the Content-Security-Policy refuses any
other origin as well as inline scripts and styles.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DASHBOARD_URL = "/dashboard"
STATIC_URL = "/dashboard/static"
ASSETS = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def install_dashboard(app: FastAPI) -> None:
    """Serve ``/dashboard`` and its assets under ``/dashboard/static``."""
    page = (ASSETS / "index.html").read_text(encoding="utf-8")
    app.mount(STATIC_URL, StaticFiles(directory=ASSETS), name="dashboard-static")

    @app.get(DASHBOARD_URL, include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)
