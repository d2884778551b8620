"""Domain errors. Services raise these; one handler in the API maps them to HTTP."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every expected, user-facing failure; it says the response it maps to."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def body(self) -> dict[str, Any]:
        """The JSON body of the response: ``{"detail": ...}`` plus what the kind adds."""
        return {"detail": self.detail}

    def headers(self) -> dict[str, str]:
        """Headers the response carries (Retry-After, WWW-Authenticate, ETag, ...)."""
        return {}


class NotFound(DomainError):
    """The thing does not exist, or the caller may not know it does."""

    status_code = 404


class Forbidden(DomainError):
    """The caller may not do this (used only where existence is not secret)."""

    status_code = 403


class Conflict(DomainError):
    """The request clashes with the current state."""

    status_code = 409


class InvalidInput(DomainError):
    """The request is well-formed but its values are not acceptable."""

    status_code = 422


class AuthenticationFailed(DomainError):
    """Bad credentials or token."""

    status_code = 401

    def headers(self) -> dict[str, str]:
        """Bearer tokens are what the API takes."""
        return {"WWW-Authenticate": "Bearer"}


class TooManyAttempts(DomainError):
    """Rate limit reached."""

    status_code = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        """When to try again."""
        return {"Retry-After": str(max(1, self.retry_after))}
