"""Error responses: domain errors with their status, validation errors that never echo input,
and a bare 500 for anything unexpected (the request log records its type, not its message)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from worklist.errors import DomainError

# A 422 lists at most this many problems: a body of a million bad items gets a short answer.
MAX_REPORTED_ERRORS = 20
# Location parts can be client-chosen (an unexpected key): clip them.
MAX_LOC_PART_CHARS = 64
MAX_MESSAGE_CHARS = 200
INTERNAL_ERROR = "internal server error"
AT_CAPACITY = "the service is at capacity; retry shortly"
DATABASE_UNAVAILABLE = "the database could not answer; retry shortly"
# Seconds a shed request is asked to wait before it retries.
RETRY_AFTER_AT_CAPACITY = 1
RETRY_AFTER_DATABASE_DOWN = 5
ELLIPSIS = "…"


async def domain_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Render a DomainError as the response it says it maps to (status, body, headers)."""
    if not isinstance(exc, DomainError):  # pragma: no cover - registered for DomainError only
        raise exc
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def safe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """FastAPI's ``[{"loc", "msg", "type"}]`` without ``input``/``ctx`` (they echo the request)."""
    return [
        {
            "loc": [
                part if isinstance(part, int) else _clip(str(part), MAX_LOC_PART_CHARS)
                for part in error.get("loc", ())
            ],
            "msg": _clip(str(error.get("msg", "")), MAX_MESSAGE_CHARS),
            "type": _clip(str(error.get("type", "")), MAX_LOC_PART_CHARS),
        }
        for error in list(errors)[:MAX_REPORTED_ERRORS]
    ]


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """422 with FastAPI's documented shape, minus the echoed values."""
    if not isinstance(exc, RequestValidationError):  # pragma: no cover - registered for it only
        raise exc
    return JSONResponse({"detail": safe_validation_errors(exc.errors())}, status_code=422)


async def internal_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A bare 500: the exception's message may carry patient data, so it is never sent."""
    return JSONResponse({"detail": INTERNAL_ERROR}, status_code=500)


async def pool_timeout_handler(request: Request, exc: Exception) -> JSONResponse:
    """503 + Retry-After when no database connection came free in time (load shedding)."""
    return JSONResponse(
        {"detail": AT_CAPACITY},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_AT_CAPACITY)},
    )


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """503 when the database cannot be reached or dropped the connection; 500 otherwise."""
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, OperationalError)
    ):
        return JSONResponse(
            {"detail": DATABASE_UNAVAILABLE},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_DATABASE_DOWN)},
        )
    raise exc  # anything else is a bug: logged by type and answered 500 as unhandled


def install_error_handlers(app: FastAPI) -> None:
    """Register the domain, validation, capacity and last-resort error handlers."""
    app.add_exception_handler(DomainError, domain_error_handler)
    app.add_exception_handler(PoolTimeoutError, pool_timeout_handler)
    app.add_exception_handler(DBAPIError, database_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(Exception, internal_error_handler)
