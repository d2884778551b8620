"""``GET /api/v1/events``: Server-Sent Events of the worklist changes the caller may see."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError

from worklist.api.deps import (
    RedisDep,
    SessionDep,
    SessionMakerDep,
    SettingsDep,
    SigningKey,
    StreamCredentialDep,
    StreamUser,
    stream_user,
)
from worklist.auth import service as auth_service
from worklist.errors import AuthenticationFailed, DomainError, Forbidden, InvalidInput
from worklist.events import service
from worklist.events.stream import (
    Access,
    InvalidEventId,
    make_reader_redis,
    parse_event_id,
    sse_stream,
    start_point,
)

EVENT_STREAM = "text/event-stream"
EVENTS_UNAVAILABLE = "the event stream is unavailable (Redis unreachable); retry shortly"
INVALID_EVENT_ID = "Last-Event-ID must be an event id of this stream (e.g. 1712345678901-0)"

# A bearer token or a ``?ticket=`` (a browser's EventSource cannot send headers).
router = APIRouter(prefix="/api/v1", tags=["events"], dependencies=[Depends(stream_user)])


class EventsUnavailable(DomainError):
    """The event stream cannot be read right now (the rest of the API still works)."""

    status_code = 503


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {EVENT_STREAM: {}},
            "description": "SSE: `id:` stream id, `event:` type, `data:` JSON "
            "`{study_uid, site, at, data}`; `: keep-alive` comments every 15 s",
        },
        401: {"description": "Missing or invalid bearer token or stream ticket"},
        403: {"description": "The account has no worklist (alert clients)"},
        422: {"description": "Last-Event-ID is not an id of this stream"},
        503: {"description": "Redis is unreachable"},
    },
)
async def get_events(
    session: SessionDep,
    user: StreamUser,
    redis: RedisDep,
    settings: SettingsDep,
    sessionmaker: SessionMakerDep,
    signing_key: SigningKey,
    credential: StreamCredentialDep,
    last_event_id_header: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=64, description="Resume after this event id"),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Resume after this event id (the Last-Event-ID header wins if both)",
        ),
    ] = None,
) -> StreamingResponse:
    """Worklist changes (``study.received``, ``study.ready``, ``study.claimed``, ...) as SSE.

    Without ``Last-Event-ID`` the stream starts now; with it, every visible event after
    that id is replayed first, in order.
    """
    access = await service.load_access(session, user)
    resume_text = last_event_id_header or last_event_id
    try:
        resume = parse_event_id(resume_text) if resume_text else None
    except InvalidEventId as exc:
        raise InvalidInput(INVALID_EVENT_ID) from exc
    try:
        start = await start_point(redis, resume)
    except (RedisError, OSError) as exc:
        raise EventsUnavailable(EVENTS_UNAVAILABLE) from exc

    async def refresh() -> Access | None:
        # The request's session is gone by now: each check has its own.
        async with sessionmaker() as check:
            try:
                again = await auth_service.user_from_stream_credential(
                    session=check, signing_key=signing_key, credential=credential
                )
                return await service.load_access(check, again)
            except (AuthenticationFailed, Forbidden):
                return None

    redis_url = settings.require_redis_url()
    return StreamingResponse(
        sse_stream(
            open_client=lambda: make_reader_redis(redis_url),
            start=start,
            access=access,
            refresh=refresh,
        ),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
