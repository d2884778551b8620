"""One handler maps every domain error to ``{"detail": ...}`` with its status code."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from worklist.errors import AuthenticationFailed, DomainError, TooManyAttempts


async def domain_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Render a DomainError as JSON, with the headers its kind calls for."""
    if not isinstance(exc, DomainError):  # pragma: no cover - registered for DomainError only
        raise exc
    headers: dict[str, str] = {}
    if isinstance(exc, TooManyAttempts):
        headers["Retry-After"] = str(max(1, exc.retry_after))
    if isinstance(exc, AuthenticationFailed):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the domain error handler (validation errors keep FastAPI's 422)."""
    app.add_exception_handler(DomainError, domain_error_handler)
