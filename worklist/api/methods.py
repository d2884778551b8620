"""405 answers whose ``Allow`` lists every method of the path, not only the first route's.

Starlette answers 405 from the first route whose path matched; when several routes
share a path (``GET`` and ``PATCH /studies/{uid}``) its ``Allow`` names one of them.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

METHOD_NOT_ALLOWED = 405
METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app fully matches at the request's path, sorted.

    Each method is tried against the router (included routers answer for their routes),
    so the answer does not depend on how routes are nested.
    """
    routes = request.app.router.routes
    return [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


async def method_aware_http_exception_handler(request: Request, exc: Exception) -> Response:
    """FastAPI's HTTPException rendering, with a complete ``Allow`` on a 405."""
    if not isinstance(exc, HTTPException):  # pragma: no cover - registered for HTTPException
        raise exc
    if exc.status_code == METHOD_NOT_ALLOWED:
        headers = {**(exc.headers or {}), "Allow": ", ".join(allowed_methods(request))}
        exc = HTTPException(exc.status_code, detail=exc.detail, headers=headers)
    return await http_exception_handler(request, exc)


def install_method_handler(app: FastAPI) -> None:
    """Render HTTPExceptions (404, 405 ...) as FastAPI does, with a true ``Allow``."""
    app.add_exception_handler(HTTPException, method_aware_http_exception_handler)
