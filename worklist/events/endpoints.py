"""``GET /api/v1/events``: Server-Sent Events of the worklist changes the caller may see."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from fastapi.sse import EventSourceResponse

from worklist.api.deps import RedisDep, SessionDep, SettingsDep, stream_user
from worklist.events import service
from worklist.events.stream import EventReplay
from worklist.sse import (
    EVENT_STREAM,
    LastEventIdDep,
    StreamTimingDep,
    SubscriberDep,
    open_stream,
)

# A bearer token or a ``?ticket=`` (a browser's EventSource cannot send headers).
router = APIRouter(prefix="/api/v1", tags=["events"], dependencies=[Depends(stream_user)])


@router.get(
    "/events",
    response_class=StreamingResponse,  # not EventSourceResponse: see worklist.sse
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
    subscriber: SubscriberDep,
    redis: RedisDep,
    settings: SettingsDep,
    timing: StreamTimingDep,
    last_event_id: LastEventIdDep,
) -> EventSourceResponse:
    """Worklist changes (``study.received``, ``study.ready``, ``study.claimed``, ...) as SSE.

    Without ``Last-Event-ID`` the stream starts now; with it, every visible event after
    that id is replayed first, in order.
    """
    access = await service.load_access(session, subscriber.user)
    replay = EventReplay(redis=redis, redis_url=settings.require_redis_url(), timing=timing)
    return await open_stream(
        replay,
        last_event_id=last_event_id,
        access=access,
        refresh=subscriber.refresh(service.load_access),
        timing=timing,
    )
