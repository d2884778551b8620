"""Token endpoint payloads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class TokenResponse(BaseModel):
    """An OAuth2 bearer token response."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class StreamTicketResponse(BaseModel):
    """A stream ticket: pass it as ``?ticket=`` to the SSE endpoints within ``expires_in`` s."""

    ticket: str
    expires_in: int
