"""``/api/v1/alerts`` and ``/api/v1/studies/{study_uid}/alerts``: critical-result alerts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.sse import EventSourceResponse

from worklist.alerts import service
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
from worklist.alerts.stream import AlertReplay, load_access
from worklist.alerts.visibility import require_acknowledger
from worklist.api.deps import (
    ClientAddress,
    CurrentUser,
    SessionDep,
    SessionMakerDep,
    SettingsDep,
    current_user,
    reserved_pool,
    stream_user,
)
from worklist.api.guard import UidPath, UidQuery
from worklist.api.limits import body_limited_route, json_body_bytes
from worklist.api.permissions import study_access
from worklist.enums import AlertCategory, AlertStatus, Role
from worklist.reports.fhir import FHIR_JSON
from worklist.sse import (
    EVENT_STREAM,
    LastEventIdDep,
    StreamTimingDep,
    SubscriberDep,
    open_stream,
)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

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
@reserved_pool
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
    response_class=StreamingResponse,  # not EventSourceResponse: see worklist.sse
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
    subscriber: SubscriberDep,
    settings: SettingsDep,
    sessionmaker: SessionMakerDep,
    timing: StreamTimingDep,
    last_event_id: LastEventIdDep,
) -> EventSourceResponse:
    """The caller's trust's alert events, live; with ``Last-Event-ID`` the missed ones first."""
    access = await load_access(session, subscriber.user)
    replay = AlertReplay(
        factory=sessionmaker,
        redis_url=settings.redis_url,
        poll_seconds=settings.alert_stream_poll_seconds,
    )
    return await open_stream(
        replay,
        last_event_id=last_event_id,
        access=access,
        refresh=subscriber.refresh(load_access),
        timing=timing,
    )


@alerts_router.get("/alerts/{alert_id}", response_model=AlertOut, responses=ALERT_NOT_VISIBLE)
async def get_alert(
    alert_id: str, session: SessionDep, user: CurrentUser, address: ClientAddress
) -> AlertOut:
    """One alert with its deliveries (reading the finding is audited)."""
    return await service.get_alert(session=session, user=user, alert_id=alert_id, address=address)


@alerts_router.get(
    "/alerts/{alert_id}/fhir",
    response_class=JSONResponse,
    responses={
        200: {
            "content": {FHIR_JSON: {"schema": {"type": "object"}}},
            "description": "The alert as a FHIR R4 Communication (recipient: the referrer "
            "and the trust)",
        },
        **ALERT_NOT_VISIBLE,
    },
)
async def get_alert_fhir(
    alert_id: str, session: SessionDep, user: CurrentUser, address: ClientAddress
) -> JSONResponse:
    """The alert as a FHIR R4 ``Communication`` (reading the finding is audited)."""
    resource = await service.get_alert_fhir(
        session=session, user=user, alert_id=alert_id, address=address
    )
    return JSONResponse(resource, media_type=FHIR_JSON)


@alerts_router.post(
    "/alerts/{alert_id}/acknowledge",
    response_model=AlertOut,
    responses={
        **ALERT_NOT_VISIBLE,
        403: {"description": "The caller may see the alert but does not receive its trust's"},
    },
    dependencies=[Depends(acknowledger_access)],
)
@reserved_pool
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
