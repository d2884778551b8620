"""Token endpoint payloads."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

# Usernames are stored in 64 characters; a longer one cannot log in.
MAX_USERNAME_LENGTH = 64
# Far above any passphrase, far below what would make hashing a denial of service.
MAX_PASSWORD_LENGTH = 1024
# OAuth2's optional form fields (unused, accepted for clients that send them).
MAX_OAUTH_FIELD_LENGTH = 256


class LoginForm(BaseModel):
    """The OAuth2 password grant's form (``application/x-www-form-urlencoded``), bounded."""

    grant_type: Annotated[str | None, Field(pattern="^password$")] = None
    username: Annotated[str, Field(min_length=1, max_length=MAX_USERNAME_LENGTH)]
    password: Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
    scope: Annotated[str, Field(max_length=MAX_OAUTH_FIELD_LENGTH)] = ""
    client_id: Annotated[str | None, Field(max_length=MAX_OAUTH_FIELD_LENGTH)] = None
    client_secret: Annotated[str | None, Field(max_length=MAX_OAUTH_FIELD_LENGTH)] = None


class TokenResponse(BaseModel):
    """An OAuth2 bearer token response."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class StreamTicketResponse(BaseModel):
    """A stream ticket: pass it as ``?ticket=`` to the SSE endpoints within ``expires_in`` s."""

    ticket: str
    expires_in: int
