"""Request latency by route template (never the raw path: that would explode label cardinality)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worklist.metrics import API_LATENCY

UNMATCHED_ROUTE = "<unmatched>"


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
            # The router writes the matched route into the (shared) scope dict; the template
            # without convertors ("{study_uid}", not "{study_uid:uid}"), as OpenAPI names it.
            matched = scope.get("route")
            route = (
                getattr(matched, "path_format", None)
                or getattr(matched, "path", None)
                or UNMATCHED_ROUTE
            )
            API_LATENCY.labels(
                method=scope["method"], route=route, status=f"{status // 100}xx"
            ).observe(time.perf_counter() - started)
