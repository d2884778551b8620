"""Stream tickets: short-lived signed tokens that open the SSE streams and nothing else.

A browser's EventSource cannot send an Authorization header, so a client exchanges its
bearer token for a ticket (``POST /api/v1/auth/stream-ticket``) and opens the stream with
``?ticket=``. A ticket is signed with a key derived from the signing key for this use
alone and names its own audience, so it never verifies as an access token, nor an
access token as a ticket. It never outlives the access token it was issued for.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from worklist.auth.tokens import ALGORITHM, IssuedToken
from worklist.enums import Role
from worklist.errors import AuthenticationFailed

STREAM_TICKET_AUDIENCE = "worklist:stream"
STREAM_TICKET_LIFETIME = timedelta(seconds=30)
MAX_STREAM_TICKET_LIFETIME = timedelta(seconds=60)
INVALID_TICKET = "Invalid or expired stream ticket"
_KEY_PURPOSE = b"worklist stream ticket v1"
_NONCE_BYTES = 12


@dataclass(frozen=True)
class TicketClaims:
    """What a verified ticket says: who, in which role, until when their session runs."""

    username: str
    role: Role
    session_expires_at: datetime
    version: int = 0


def _ticket_key(signing_key: str) -> bytes:
    return hmac.new(signing_key.encode(), _KEY_PURPOSE, hashlib.sha256).digest()


def issue_stream_ticket(
    *,
    signing_key: str,
    username: str,
    role: Role,
    session_expires_at: datetime,
    version: int = 0,
    lifetime: timedelta = STREAM_TICKET_LIFETIME,
    now: datetime | None = None,
) -> IssuedToken:
    """Sign a ticket for ``username``, valid for ``lifetime`` (≤ 60 s) from ``now``."""
    if not timedelta(0) < lifetime <= MAX_STREAM_TICKET_LIFETIME:
        raise ValueError("a stream ticket lives at most 60 seconds")
    issued_at = now or datetime.now(UTC)
    expires_at = min(issued_at + lifetime, session_expires_at)
    claims = {
        "sub": username,
        "role": role.value,
        "aud": STREAM_TICKET_AUDIENCE,
        "iat": issued_at,
        "exp": expires_at,
        "ses": int(session_expires_at.timestamp()),
        "ver": version,
        "jti": secrets.token_urlsafe(_NONCE_BYTES),
    }
    ticket = jwt.encode(claims, _ticket_key(signing_key), algorithm=ALGORITHM)
    seconds = max(int((expires_at - issued_at).total_seconds()), 0)
    return IssuedToken(access_token=ticket, expires_in=seconds)


def decode_stream_ticket(*, signing_key: str, ticket: str) -> TicketClaims:
    """Verify a ticket's signature, audience and expiry; AuthenticationFailed otherwise."""
    try:
        claims = jwt.decode(
            ticket,
            _ticket_key(signing_key),
            algorithms=[ALGORITHM],
            audience=STREAM_TICKET_AUDIENCE,
            options={"require": ["sub", "role", "aud", "exp", "ses"]},
        )
        version = claims.get("ver", 0)
        if type(version) is not int:
            raise ValueError("ticket version is not an integer")
        return TicketClaims(
            username=str(claims["sub"]),
            role=Role(claims["role"]),
            session_expires_at=datetime.fromtimestamp(int(claims["ses"]), UTC),
            version=version,
        )
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError) as exc:
        raise AuthenticationFailed(INVALID_TICKET) from exc
