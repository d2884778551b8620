"""One handler maps every domain error to ``{"detail": ...}`` with its status code."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from worklist.errors import DomainError


async def domain_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Render a DomainError as the response it says it maps to (status, body, headers)."""
    if not isinstance(exc, DomainError):  # pragma: no cover - registered for DomainError only
        raise exc
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers())


def install_error_handlers(app: FastAPI) -> None:
    """Register the domain error handler (validation errors keep FastAPI's 422)."""
    app.add_exception_handler(DomainError, domain_error_handler)
