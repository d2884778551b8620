"""``/api/v1/alerts`` and ``/api/v1/studies/{study_uid}/alerts``: critical-result alerts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response, status
from fastapi.responses import StreamingResponse

from worklist.alerts import repository, service
from worklist.alerts.repository import AlertFilters
from worklist.alerts.schemas import (
    MAX_FINDING_LENGTH,
    MAX_NAME_LENGTH,
    MAX_NOTE_LENGTH,
    MAX_RECIPIENT_LENGTH,
    AcknowledgeIn,
    AlertIn,
    AlertOut,
    AlertPage,
)
from worklist.alerts.stream import InvalidEventId, StreamAccess, alert_stream, parse_event_id
from worklist.alerts.visibility import require_acknowledger, stream_sites
from worklist.api.deps import (
    ClientAddress,
    CurrentUser,
    SessionDep,
    SessionMakerDep,
    SettingsDep,
    SigningKey,
    StreamCredentialDep,
    StreamUser,
    current_user,
    stream_user,
)
from worklist.api.guard import UidPath, UidQuery
from worklist.api.limits import body_limited_route, json_body_bytes
from worklist.api.permissions import study_access
from worklist.auth import service as auth_service
from worklist.enums import AlertCategory, AlertStatus, Role
from worklist.errors import AuthenticationFailed, Forbidden, InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
EVENT_STREAM = "text/event-stream"
INVALID_EVENT_ID = "Last-Event-ID must be the id of an alert event (a positive integer)"

# The longest alert (finding and recipient) or acknowledgement, however its JSON spells it.
ALERT_BODY_BYTES = json_body_bytes(
    max(MAX_FINDING_LENGTH + MAX_RECIPIENT_LENGTH, MAX_NAME_LENGTH + MAX_NOTE_LENGTH)
)

alerts_router = APIRouter(
    prefix="/api/v1",
    tags=["alerts"],
    dependencies=[Depends(current_user)],
    route_class=body_limited_route(ALERT_BODY_BYTES),
)
# The stream takes a bearer token or a ``?ticket=`` (a browser's EventSource sends no headers).
stream_router = APIRouter(prefix="/api/v1", tags=["alerts"], dependencies=[Depends(stream_user)])


async def acknowledger_access(alert_id: str, session: SessionDep, user: CurrentUser) -> None:
    """Guard (before the body is validated): the caller sees the alert and receives its trust's."""
    view = await service.visible_alert(session, user, alert_id)
    require_acknowledger(user, view.alert)


ALERT_NOT_VISIBLE: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such alert, or not visible to the caller"}
}


@alerts_router.post(
    "/studies/{study_uid:uid}/alerts",
    response_model=AlertOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        403: {"description": "The caller sees the study but neither holds it nor wrote its report"},
        404: {"description": "No such study, or not visible to the caller"},
    },
    dependencies=[study_access(roles=(Role.RADIOLOGIST,), detail=service.NOT_HOLDER_OR_AUTHOR)],
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
    response.headers["Location"] = f"{alerts_router.prefix}/alerts/{alert.id}"
    return alert


@alerts_router.get("/alerts", response_model=AlertPage)
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


@stream_router.get(
    "/alerts/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {EVENT_STREAM: {}},
            "description": "SSE: `id:` event id, `event:` alert.raised | alert.escalated | "
            "alert.acknowledged, `data:` the alert JSON; `: keep-alive` comments every 15 s",
        },
        401: {"description": "Missing or invalid bearer token or stream ticket"},
        403: {"description": "Only alert clients, managers and admins stream alerts"},
        422: {"description": "Last-Event-ID is not an alert event id"},
    },
)
async def stream_alerts(
    session: SessionDep,
    user: StreamUser,
    settings: SettingsDep,
    sessionmaker: SessionMakerDep,
    signing_key: SigningKey,
    credential: StreamCredentialDep,
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
                again = await auth_service.user_from_stream_credential(
                    session=check, signing_key=signing_key, credential=credential
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


@alerts_router.get("/alerts/{alert_id}", response_model=AlertOut, responses=ALERT_NOT_VISIBLE)
async def get_alert(
    alert_id: str, session: SessionDep, user: CurrentUser, address: ClientAddress
) -> AlertOut:
    """One alert with its deliveries (reading the finding is audited)."""
    return await service.get_alert(session=session, user=user, alert_id=alert_id, address=address)


@alerts_router.post(
    "/alerts/{alert_id}/acknowledge",
    response_model=AlertOut,
    responses={
        **ALERT_NOT_VISIBLE,
        403: {"description": "The caller may see the alert but does not receive its trust's"},
    },
    dependencies=[Depends(acknowledger_access)],
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


router = APIRouter()
# The stream first: ``/alerts/stream`` must not be taken for ``/alerts/{alert_id}``.
router.include_router(stream_router)
router.include_router(alerts_router)
