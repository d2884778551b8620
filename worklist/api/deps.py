"""Request-scoped dependencies: the unit of work, Redis, settings and the current user."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import psycopg
from fastapi import Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer
from redis.asyncio import Redis
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from worklist.auth import service as auth_service
from worklist.config import Settings
from worklist.db import driver_connection, driver_of
from worklist.events.bus import publish_staged
from worklist.models import User
from worklist.users.repository import Account

TOKEN_URL = "/api/v1/auth/token"
# A ticket is a compact JWS of a few hundred bytes; anything far longer is not one of ours.
MAX_TICKET_LENGTH = 2048

# auto_error=False: a missing token goes through our own 401 (one message, one handler).
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


# A clinical write waits this long for a reserved connection rather than being shed.
RESERVED_POOL_TIMEOUT_SECONDS = 10.0
_RESERVED = "_worklist_reserved_pool"

_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


def reserved_pool(endpoint: _Endpoint) -> _Endpoint:
    """Mark an endpoint whose requests use the reserved pool (raising, acknowledging
    alerts): worklist load, however heavy, does not shed them (docs/performance.md)."""
    setattr(endpoint, _RESERVED, True)
    return endpoint


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One unit of work per request: commit when the endpoint succeeds, roll back if it raises.

    Events the request staged (``worklist.events.stage``) are published only after the
    commit, best effort; a rolled-back request announces nothing. Every dependency of a
    request shares this one session, from the reserved pool for ``reserved_pool`` endpoints.
    """
    state = request.app.state
    reserved = getattr(request.scope.get("endpoint"), _RESERVED, False)
    factory: async_sessionmaker[AsyncSession] = (
        state.reserved_sessionmaker if reserved else state.sessionmaker
    )
    async with factory() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()
        await publish_staged(request.app.state.redis, session)


async def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    """The session factory, for work that must outlive the request's transaction."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return factory


async def get_redis(request: Request) -> Redis:
    """The shared Redis client (may be unreachable: callers must tolerate that)."""
    client: Redis = request.app.state.redis
    return client


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_signing_key(request: Request) -> str:
    """The token signing key resolved at start-up."""
    key: str = request.app.state.signing_key
    return key


async def client_address(request: Request) -> str | None:
    """The caller's network address, as recorded in audit rows and rate limits."""
    return request.client.host if request.client else None


# scope="function": the commit happens before the response is sent, so a failed commit
# is a 500 rather than a success the client was already told about.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SessionMakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
RedisDep = Annotated[Redis, Depends(get_redis)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SigningKey = Annotated[str, Depends(get_signing_key)]
ClientAddress = Annotated[str | None, Depends(client_address)]


async def current_user(
    session: SessionDep,
    signing_key: SigningKey,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    """The active user the bearer token names, re-loaded from the database."""
    return await auth_service.user_from_token(session=session, signing_key=signing_key, token=token)


CurrentUser = Annotated[User, Depends(current_user)]


async def stream_credential(
    signing_key: SigningKey,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    ticket: Annotated[
        str | None,
        Query(
            max_length=MAX_TICKET_LENGTH,
            description="A stream ticket (``POST /api/v1/auth/stream-ticket``) in place of "
            "the Authorization header, for clients such as a browser's EventSource",
        ),
    ] = None,
) -> auth_service.StreamCredential:
    """The bearer token or ``?ticket=`` an SSE request presents (a ticket must be valid)."""
    return auth_service.stream_credential(signing_key=signing_key, token=token, ticket=ticket)


@dataclass(frozen=True)
class DriverCaller:
    """The caller of a hot read route and the driver connection it reads on."""

    account: Account
    connection: psycopg.AsyncConnection[Any]
    address: str | None


async def driver_caller(
    request: Request,
    signing_key: SigningKey,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    address: ClientAddress,
) -> AsyncIterator[DriverCaller]:
    """For the hot read routes (the worklist page): the bearer's account, read on a pooled
    connection that the route then uses as psycopg's, in autocommit (each statement its
    own transaction: a read and its audit row are one statement there). The same
    ``user_from_token`` check; the same pool, so past capacity the request is shed alike."""
    engine: AsyncEngine = request.app.state.engine
    async with engine.connect() as connection:
        driver = await driver_of(connection)
        await driver.set_autocommit(True)
        try:
            account = await auth_service.account_from_token(
                driver, signing_key=signing_key, token=token
            )
            yield DriverCaller(account=account, connection=driver, address=address)
        except DBAPIError:
            if driver.broken or driver.closed:
                # Let SQLAlchemy meet the lost connection too: it then discards the pool's
                # connections older than the failure, as after one of its own statements.
                with contextlib.suppress(DBAPIError):
                    await connection.exec_driver_sql("SELECT 1")
            raise
        finally:
            if not (driver.broken or driver.closed):
                await driver.set_autocommit(False)


DriverCallerDep = Annotated[DriverCaller, Depends(driver_caller, scope="function")]


async def session_account(
    session: SessionDep,
    signing_key: SigningKey,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> Account:
    """For the hot write (``worklist/next``): the bearer's account, read by one statement
    on the request's session (``auth.service.account_from_token``), no ORM objects."""
    return await auth_service.account_from_token(
        await driver_connection(session), signing_key=signing_key, token=token
    )


SessionAccount = Annotated[Account, Depends(session_account)]

StreamCredentialDep = Annotated[auth_service.StreamCredential, Depends(stream_credential)]


async def stream_user(
    session: SessionDep, signing_key: SigningKey, credential: StreamCredentialDep
) -> User:
    """The active user an SSE request's token or ticket names, re-loaded from the database."""
    return await auth_service.user_from_stream_credential(
        session=session, signing_key=signing_key, credential=credential
    )


StreamUser = Annotated[User, Depends(stream_user)]
