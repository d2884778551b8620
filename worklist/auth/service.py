"""Login and token checks: one answer for every bad credential, every attempt audited."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from worklist.audit import repository as audit
from worklist.auth.passwords import verify_password
from worklist.auth.ratelimit import LoginRateLimiter
from worklist.auth.tokens import (
    INVALID_TOKEN,
    IssuedToken,
    decode_access_token,
    issue_access_token,
)
from worklist.enums import AuditAction
from worklist.errors import AuthenticationFailed, TooManyAttempts
from worklist.models import User
from worklist.users import repository as users

log = logging.getLogger(__name__)

BAD_CREDENTIALS = "Incorrect username or password"
NOT_AUTHENTICATED = "Not authenticated"


async def login(
    *,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    limiter: LoginRateLimiter,
    signing_key: str,
    token_lifetime: timedelta,
    username: str,
    password: str,
    address: str | None,
) -> IssuedToken:
    """Check the credentials (throttled) and issue an access token."""
    try:
        await limiter.check_attempt(username=username, address=address)
    except TooManyAttempts:
        await _audit_failure(sessionmaker, username=username, address=address, reason="throttled")
        raise
    user = await session.run_sync(users.get_user, username)
    # Argon2 is deliberately slow: keep it off the event loop. Unknown users cost the same.
    matches = await asyncio.to_thread(
        verify_password, user.password_hash if user else None, password
    )
    if user is None or not matches or not user.active:
        await limiter.record_failure(username=username, address=address)
        reason = "inactive" if user is not None and matches else "bad_credentials"
        await _audit_failure(sessionmaker, username=username, address=address, reason=reason)
        raise AuthenticationFailed(BAD_CREDENTIALS)
    await limiter.record_success(username=username, address=address)
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.LOGIN,
        address=address,
    )
    log.info("login", extra={"username": user.username, "address": address})
    return issue_access_token(
        signing_key=signing_key,
        username=user.username,
        role=user.role,
        lifetime=token_lifetime,
        version=user.token_version,
    )


async def _audit_failure(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    username: str,
    address: str | None,
    reason: str,
) -> None:
    # Its own transaction: the request's rolls back with the 401/429, this row must stay.
    async with sessionmaker.begin() as session:
        audit.record(
            session,
            actor=username,
            actor_kind=audit.ActorKind.USER,
            action=AuditAction.LOGIN_FAILED,
            address=address,
            detail={"reason": reason},
        )
    log.warning(
        "login failed", extra={"username": username[:64], "address": address, "reason": reason}
    )


async def user_from_token(*, session: AsyncSession, signing_key: str, token: str | None) -> User:
    """The active user a bearer token names, loaded afresh for every request.

    A disabled account, a changed role or a bumped token version (password reset,
    account disabled) refuses the token at once; privileges are read from this load.
    """
    if not token:
        raise AuthenticationFailed(NOT_AUTHENTICATED)
    claims = decode_access_token(signing_key=signing_key, token=token)
    user = await session.run_sync(users.get_user, claims.username)
    if (
        user is None
        or not user.active
        or user.role is not claims.role
        or user.token_version != claims.version
    ):
        raise AuthenticationFailed(INVALID_TOKEN)
    return user
