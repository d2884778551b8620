"""Request body limits: one for the whole API (``WORKLIST_MAX_BODY_BYTES``), lower ones per router.

The middleware refuses a declared ``Content-Length`` above the limit before reading a byte,
and counts a chunked or streamed body as it arrives, so no more than the limit (plus the
chunk that crossed it) is ever held. Routers whose bodies are small by nature lower the
limit for their routes with ``route_class=body_limited_route(...)``; a body above the
route's limit is refused the same way (413 ``{"detail": ...}``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUDGET_SCOPE_KEY = "worklist.body_budget"
# A JSON string may spell each character as a six-byte \uXXXX escape.
JSON_BYTES_PER_CHAR = 6
# Room for the field names, the other small fields and the braces around them.
ENVELOPE_BYTES = 4096
# Forms and JSON bodies of a few short fields: logins, webhook URLs, triage, acknowledgements.
SMALL_BODY_BYTES = 16 * 1024


def json_body_bytes(text_chars: int) -> int:
    """The largest JSON body that can carry ``text_chars`` characters of valid text fields."""
    return text_chars * JSON_BYTES_PER_CHAR + ENVELOPE_BYTES


def too_large_detail(limit: int) -> str:
    """The 413 message: how much is accepted (never what was sent)."""
    return f"request body too large: at most {limit} bytes are accepted here"


class BodyTooLarge(HTTPException):
    """The body is over its limit (an HTTPException, so FastAPI renders it as JSON)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_detail(limit))
        self.limit = limit


@dataclass
class BodyBudget:
    """How much body the request may still carry; routes may only lower ``limit``."""

    limit: int
    received: int = 0

    def lower_to(self, limit: int) -> None:
        """Tighten the limit for this request; raise at once if already exceeded."""
        self.limit = min(self.limit, limit)
        if self.received > self.limit:
            raise BodyTooLarge(self.limit)


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``, if it has a usable one."""
    value = Headers(scope=scope).get("content-length")
    if value is None or not value.isdigit():
        return None
    return int(value)


def _too_large_response(limit: int) -> JSONResponse:
    # The client may still be sending: the server closes the connection after this.
    return JSONResponse({"detail": too_large_detail(limit)}, status_code=413)


class BodyLimitMiddleware:
    """413 for a body above ``max_bytes``, declared or streamed; nothing above it is buffered."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse an oversized declared body outright; count every other one as it arrives."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _too_large_response(self.max_bytes)(scope, receive, send)
            return
        budget = BodyBudget(limit=self.max_bytes)
        scope[BUDGET_SCOPE_KEY] = budget
        started = False

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                budget.received += len(message.get("body", b""))
                if budget.received > budget.limit:
                    raise BodyTooLarge(budget.limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as exc:
            # Normally FastAPI answers it; this catches bodies read outside a route handler.
            if started:
                raise
            await _too_large_response(exc.limit)(scope, receive, send)


def lower_body_limit(scope: Scope, max_bytes: int) -> None:
    """Apply a route's own (lower) limit before its body is read."""
    declared = declared_length(scope)
    if declared is not None and declared > max_bytes:
        raise BodyTooLarge(max_bytes)
    budget: BodyBudget | None = scope.get(BUDGET_SCOPE_KEY)
    if budget is not None:
        budget.lower_to(max_bytes)


def body_limited_route(max_bytes: int) -> type[APIRoute]:
    """An ``APIRoute`` class whose requests carry at most ``max_bytes`` of body (413 above)."""

    class BodyLimitedRoute(APIRoute):
        """A route with its own body limit, below the API's."""

        max_body_bytes = max_bytes

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            """The usual handler, after the route's limit is applied to the request."""
            handler = super().get_route_handler()

            async def limited(request: Request) -> Response:
                lower_body_limit(request.scope, max_bytes)
                return await handler(request)

            return limited

    BodyLimitedRoute.__name__ = BodyLimitedRoute.__qualname__ = f"BodyLimitedRoute{max_bytes}"
    return BodyLimitedRoute
