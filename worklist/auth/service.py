"""Login and token checks: one answer for every bad credential, every attempt audited."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from worklist.audit import repository as audit
from worklist.auth.passwords import PasswordCost, verify_password
from worklist.auth.ratelimit import LoginRateLimiter
from worklist.auth.tickets import (
    INVALID_TICKET,
    TicketClaims,
    decode_stream_ticket,
    issue_stream_ticket,
)
from worklist.auth.tokens import (
    INVALID_TOKEN,
    IssuedToken,
    decode_access_token,
    issue_access_token,
)
from worklist.enums import AuditAction, Role
from worklist.errors import AuthenticationFailed, TooManyAttempts
from worklist.models import User
from worklist.users import repository as users
from worklist.users.repository import Account

log = logging.getLogger(__name__)

BAD_CREDENTIALS = "Incorrect username or password"
NOT_AUTHENTICATED = "Not authenticated"


async def login(
    *,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    limiter: LoginRateLimiter,
    password_cost: PasswordCost,
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
    user = await users.get_user(session, username)
    # Argon2 is deliberately slow: keep it off the event loop. Unknown users cost the same.
    matches = await asyncio.to_thread(
        verify_password, user.password_hash if user else None, password, cost=password_cost
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
    return await _account(
        session,
        username=claims.username,
        role=claims.role,
        version=claims.version,
        denied=INVALID_TOKEN,
    )


def _still_valid(found: User | Account | None, *, role: Role, version: int) -> bool:
    # The check every credential passes: the user exists, is active, keeps the role, and
    # the credential was issued since the last disable, password reset or role change.
    return (
        found is not None and found.active and found.role is role and found.token_version == version
    )


async def _account(
    session: AsyncSession, *, username: str, role: Role, version: int, denied: str
) -> User:
    user = await users.load_account(session, username)
    if not _still_valid(user, role=role, version=version):
        raise AuthenticationFailed(denied)
    assert user is not None
    return user


async def account_from_token(
    connection: psycopg.AsyncConnection[Any], *, signing_key: str, token: str | None
) -> Account:
    """``user_from_token`` for the hot read routes (the worklist page, ``next``): the same
    check, the account read by one statement on the driver (``users.read_account``)
    rather than loaded as ORM objects with its sites."""
    if not token:
        raise AuthenticationFailed(NOT_AUTHENTICATED)
    claims = decode_access_token(signing_key=signing_key, token=token)
    account = await users.read_account(connection, claims.username)
    if not _still_valid(account, role=claims.role, version=claims.version):
        raise AuthenticationFailed(INVALID_TOKEN)
    assert account is not None
    return account


@dataclass(frozen=True)
class StreamCredential:
    """How an SSE caller authenticated: a bearer token, or a verified stream ticket."""

    token: str | None = None
    ticket: TicketClaims | None = None


def stream_credential(
    *, signing_key: str, token: str | None, ticket: str | None
) -> StreamCredential:
    """The credential a stream request presents; a ``?ticket=`` must be valid when given."""
    if ticket is not None:
        return StreamCredential(ticket=decode_stream_ticket(signing_key=signing_key, ticket=ticket))
    return StreamCredential(token=token)


async def user_from_stream_credential(
    *,
    session: AsyncSession,
    signing_key: str,
    credential: StreamCredential,
    now: datetime | None = None,
) -> User:
    """The active user behind a stream's credential, checked on open and again while open.

    A ticket only opens a stream; once open, the stream lasts as long as the access token
    the ticket was issued for, like a stream opened with that token itself.
    """
    claims = credential.ticket
    if claims is None:
        return await user_from_token(
            session=session, signing_key=signing_key, token=credential.token
        )
    if (now or datetime.now(UTC)) >= claims.session_expires_at:
        raise AuthenticationFailed(INVALID_TICKET)
    return await _account(
        session,
        username=claims.username,
        role=claims.role,
        version=claims.version,
        denied=INVALID_TICKET,
    )


async def issue_ticket(
    *, session: AsyncSession, signing_key: str, token: str | None, now: datetime | None = None
) -> IssuedToken:
    """A stream ticket for the bearer of ``token`` (an active account), ending with it."""
    if not token:
        raise AuthenticationFailed(NOT_AUTHENTICATED)
    claims = decode_access_token(signing_key=signing_key, token=token)
    user = await _account(
        session,
        username=claims.username,
        role=claims.role,
        version=claims.version,
        denied=INVALID_TOKEN,
    )
    return issue_stream_ticket(
        signing_key=signing_key,
        username=user.username,
        role=user.role,
        version=user.token_version,
        session_expires_at=claims.expires_at or (now or datetime.now(UTC)),
        now=now,
    )
