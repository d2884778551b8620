"""Access tokens: HS256 JWTs naming the user, their role and their token version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from worklist.enums import Role
from worklist.errors import AuthenticationFailed

ALGORITHM = "HS256"
INVALID_TOKEN = "Invalid or expired access token"


@dataclass(frozen=True)
class IssuedToken:
    """A signed token and how many seconds it lives."""

    access_token: str
    expires_in: int


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says about its bearer."""

    username: str
    role: Role
    version: int
    expires_at: datetime | None = None


def issue_access_token(
    *,
    signing_key: str,
    username: str,
    role: Role,
    lifetime: timedelta,
    now: datetime | None = None,
    version: int = 0,
) -> IssuedToken:
    """Sign a token for ``username`` that expires after ``lifetime``.

    ``version`` is the user's token version: bumping it in the database (password reset,
    account disabled) makes the token useless before it expires.
    """
    issued_at = now or datetime.now(UTC)
    claims = {
        "sub": username,
        "role": role.value,
        "ver": version,
        "iat": issued_at,
        "exp": issued_at + lifetime,
    }
    token = jwt.encode(claims, signing_key, algorithm=ALGORITHM)
    return IssuedToken(access_token=token, expires_in=int(lifetime.total_seconds()))


def decode_access_token(*, signing_key: str, token: str) -> TokenClaims:
    """Verify signature and expiry; raise AuthenticationFailed for anything wrong."""
    try:
        claims = jwt.decode(
            token, signing_key, algorithms=[ALGORITHM], options={"require": ["sub", "exp", "role"]}
        )
        version = claims.get("ver", 0)
        if type(version) is not int:
            raise ValueError("token version is not an integer")
        return TokenClaims(
            username=str(claims["sub"]),
            role=Role(claims["role"]),
            version=version,
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
    except (jwt.PyJWTError, ValueError) as exc:
        raise AuthenticationFailed(INVALID_TOKEN) from exc
