"""``/api/v1/alerts`` and ``/api/v1/studies/{study_uid}/alerts``: critical-result alerts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response, status
from fastapi.responses import StreamingResponse

from worklist.alerts import repository, service
from worklist.alerts.repository import AlertFilters
from worklist.alerts.schemas import AcknowledgeIn, AlertIn, AlertOut, AlertPage
from worklist.alerts.stream import InvalidEventId, StreamAccess, alert_stream, parse_event_id
from worklist.alerts.visibility import stream_sites
from worklist.api.deps import (
    ClientAddress,
    CurrentUser,
    SessionDep,
    SessionMakerDep,
    SettingsDep,
    SigningKey,
    current_user,
    oauth2_scheme,
)
from worklist.api.guard import UidPath, UidQuery
from worklist.auth import service as auth_service
from worklist.enums import AlertCategory, AlertStatus
from worklist.errors import AuthenticationFailed, Forbidden, InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
EVENT_STREAM = "text/event-stream"
INVALID_EVENT_ID = "Last-Event-ID must be the id of an alert event (a positive integer)"

router = APIRouter(prefix="/api/v1", tags=["alerts"], dependencies=[Depends(current_user)])

ALERT_NOT_VISIBLE: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such alert, or not visible to the caller"}
}


@router.post(
    "/studies/{study_uid:uid}/alerts",
    response_model=AlertOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        403: {"description": "The caller sees the study but neither holds it nor wrote its report"},
        404: {"description": "No such study, or not visible to the caller"},
    },
)
async def raise_alert(
    study_uid: UidPath,
    body: AlertIn,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    address: ClientAddress,
    response: Response,
) -> AlertOut:
    """Raise a critical-result alert for the study's trust (claim holder or report author)."""
    alert = await service.raise_alert(
        session=session,
        user=user,
        study_uid=study_uid,
        body=body,
        deadlines=settings.alert_ack_deadlines,
        address=address,
    )
    response.headers["Location"] = f"{router.prefix}/alerts/{alert.id}"
    return alert


@router.get("/alerts", response_model=AlertPage)
async def list_alerts(
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
    status: AlertStatus | None = None,
    category: AlertCategory | None = None,
    study_uid: UidQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> AlertPage:
    """Alerts the caller may see, newest first: a trust's alert clients and managers see
    their trust's, radiologists those they raised, admins all."""
    return await service.list_alerts(
        session=session,
        user=user,
        filters=AlertFilters(status=status, category=category, study_uid=study_uid),
        limit=limit,
        cursor=cursor,
        address=address,
    )


@router.get(
    "/alerts/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {EVENT_STREAM: {}},
            "description": "SSE: `id:` event id, `event:` alert.raised | alert.escalated | "
            "alert.acknowledged, `data:` the alert JSON; `: keep-alive` comments every 15 s",
        },
        403: {"description": "Only alert clients, managers and admins stream alerts"},
        422: {"description": "Last-Event-ID is not an alert event id"},
    },
)
async def stream_alerts(
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    sessionmaker: SessionMakerDep,
    signing_key: SigningKey,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    last_event_id_header: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=32, description="Resume after this event id"),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Query(max_length=32, description="Resume after this event id (the header wins)"),
    ] = None,
) -> StreamingResponse:
    """The caller's trust's alert events, live; with ``Last-Event-ID`` the missed ones first."""
    access = StreamAccess(site_ids=stream_sites(user))
    resume_text = last_event_id_header or last_event_id
    try:
        after = parse_event_id(resume_text) if resume_text else None
    except InvalidEventId as exc:
        raise InvalidInput(INVALID_EVENT_ID) from exc
    if after is None:
        after = await repository.newest_alert_message_id(session, access.site_ids)

    async def refresh() -> StreamAccess | None:
        # The request's session is gone by now: each check has its own.
        async with sessionmaker() as check:
            try:
                again = await auth_service.user_from_token(
                    session=check, signing_key=signing_key, token=token
                )
                return StreamAccess(site_ids=stream_sites(again))
            except (AuthenticationFailed, Forbidden):
                return None

    return StreamingResponse(
        alert_stream(
            factory=sessionmaker,
            redis_url=settings.redis_url,
            access=access,
            refresh=refresh,
            after=after,
            poll_seconds=settings.alert_stream_poll_seconds,
        ),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/alerts/{alert_id}", response_model=AlertOut, responses=ALERT_NOT_VISIBLE)
async def get_alert(
    alert_id: str, session: SessionDep, user: CurrentUser, address: ClientAddress
) -> AlertOut:
    """One alert with its deliveries (reading the finding is audited)."""
    return await service.get_alert(session=session, user=user, alert_id=alert_id, address=address)


@router.post(
    "/alerts/{alert_id}/acknowledge",
    response_model=AlertOut,
    responses={
        **ALERT_NOT_VISIBLE,
        403: {"description": "The caller may see the alert but does not receive its trust's"},
    },
)
async def acknowledge_alert(
    alert_id: str,
    body: AcknowledgeIn,
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
) -> AlertOut:
    """Acknowledge the alert for its trust; a repeat returns the first acknowledgement."""
    return await service.acknowledge(
        session=session, user=user, alert_id=alert_id, body=body, address=address
    )
