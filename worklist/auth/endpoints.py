"""``POST /api/v1/auth/token``: OAuth2 password grant; ``POST .../stream-ticket``: SSE tickets."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Response

from worklist.api.deps import (
    ClientAddress,
    RedisDep,
    SessionDep,
    SessionMakerDep,
    SettingsDep,
    SigningKey,
    oauth2_scheme,
)
from worklist.api.limits import SMALL_BODY_BYTES, body_limited_route
from worklist.auth import service
from worklist.auth.passwords import PasswordCost
from worklist.auth.ratelimit import LoginRateLimiter
from worklist.auth.schemas import LoginForm, StreamTicketResponse, TokenResponse

router = APIRouter(
    prefix="/api/v1/auth", tags=["auth"], route_class=body_limited_route(SMALL_BODY_BYTES)
)


@router.post(
    "/token",
    response_model=TokenResponse,
    responses={401: {"description": "Bad credentials"}, 429: {"description": "Too many attempts"}},
)
async def issue_token(
    form: Annotated[LoginForm, Form()],
    response: Response,
    session: SessionDep,
    sessionmaker: SessionMakerDep,
    redis: RedisDep,
    settings: SettingsDep,
    signing_key: SigningKey,
    address: ClientAddress,
) -> TokenResponse:
    """Exchange a username and password for a bearer token."""
    issued = await service.login(
        session=session,
        sessionmaker=sessionmaker,
        limiter=LoginRateLimiter(redis, settings=settings),
        password_cost=PasswordCost.from_settings(settings),
        signing_key=signing_key,
        token_lifetime=timedelta(minutes=settings.access_token_minutes),
        username=form.username,
        password=form.password,
        address=address,
    )
    response.headers["Cache-Control"] = "no-store"
    return TokenResponse(access_token=issued.access_token, expires_in=issued.expires_in)


@router.post(
    "/stream-ticket",
    response_model=StreamTicketResponse,
    responses={401: {"description": "Missing, invalid or expired bearer token"}},
)
async def issue_stream_ticket(
    response: Response,
    session: SessionDep,
    signing_key: SigningKey,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> StreamTicketResponse:
    """Exchange the bearer token for a short-lived ticket that opens the SSE streams only.

    For clients that cannot send an Authorization header (a browser's EventSource):
    ``GET /api/v1/events?ticket=...``, ``GET /api/v1/alerts/stream?ticket=...``.
    """
    issued = await service.issue_ticket(session=session, signing_key=signing_key, token=token)
    response.headers["Cache-Control"] = "no-store"
    return StreamTicketResponse(ticket=issued.access_token, expires_in=issued.expires_in)
