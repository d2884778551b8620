"""Request latency and the request log, by route template (never the raw path or query).

The query string can carry patient data (worklist searches), and a raw path a client's
junk: neither is logged, and neither labels a metric (that would explode cardinality).
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worklist.api.errors import INTERNAL_ERROR
from worklist.metrics import API_LATENCY

UNMATCHED_ROUTE = "<unmatched>"
# An unhandled error's log line says where (the raising frame and a few of ours), never what.
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
PLUMBING = str(Path(__file__).resolve().parent)
OWN_FRAMES = 3

access_log = logging.getLogger("worklist.access")
error_log = logging.getLogger("worklist.api")


def route_template(scope: Scope) -> str:
    """The matched route's template (``/api/v1/studies/{study_uid}``), or ``<unmatched>``."""
    # The router writes the matched route into the (shared) scope dict; the template
    # without convertors ("{study_uid}", not "{study_uid:uid}"), as OpenAPI names it.
    matched = scope.get("route")
    return str(
        getattr(matched, "path_format", None) or getattr(matched, "path", None) or UNMATCHED_ROUTE
    )


def _is_ours(filename: str) -> bool:
    # The project's code, not a library's nor this package's middleware.
    return (
        filename.startswith(PROJECT_ROOT)
        and not filename.startswith(PLUMBING)
        and "site-packages" not in filename
    )


def _where(exc: BaseException) -> str:
    """Where it was raised, and the innermost frames of our own code that led there."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    ours = [f for f in frames if _is_ours(f.filename)][-OWN_FRAMES:]
    chosen = [frames[-1], *reversed([f for f in ours if f is not frames[-1]])]
    return " < ".join(f"{Path(f.filename).name}:{f.lineno}:{f.name}" for f in chosen)


class RequestLatencyMiddleware:
    """Observe ``worklist.metrics.API_LATENCY`` for every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request and label it with its method, route template and status class."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            API_LATENCY.labels(
                method=scope["method"], route=route_template(scope), status=f"{status // 100}xx"
            ).observe(time.perf_counter() - started)


class RequestLogMiddleware:
    """One access line per request, and unhandled errors logged by type and place only.

    It wraps everything (Starlette's error middleware included), so an exception never
    reaches the server, whose log would print its message: a database error's message
    can quote the row that failed, i.e. patient data.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request; log method, route template, status and duration."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except Exception as exc:  # logged without its message; the client gets a bare 500
            error_log.error(
                "unhandled error",
                extra={
                    "method": scope["method"],
                    "route": route_template(scope),
                    "error": f"{type(exc).__module__}.{type(exc).__qualname__}",
                    "where": _where(exc),
                },
            )
            if status is None:
                status = 500
                await _send_internal_error(send)
        access_log.info(
            "request",
            extra={
                "method": scope["method"],
                "route": route_template(scope),
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )


async def _send_internal_error(send: Send) -> None:
    body = b'{"detail":"' + INTERNAL_ERROR.encode() + b'"}'
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
