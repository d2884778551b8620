"""``GET /api/v1/worklist``, ``GET|PATCH /api/v1/studies/{study_uid}``.

``router`` (what the app mounts) also carries the claim routes of ``worklist.claims``,
which are part of the worklist: ``/studies/{study_uid}/claim`` and ``/worklist/next``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from worklist import jsonbody
from worklist.api.deps import (
    ClientAddress,
    CurrentUser,
    DriverCaller,
    DriverCallerDep,
    SessionDep,
    SettingsDep,
    current_user,
)
from worklist.api.guard import UidPath
from worklist.api.limits import SMALL_BODY_BYTES, body_limited_route
from worklist.api.permissions import study_access
from worklist.claims.endpoints import next_router
from worklist.claims.endpoints import router as claims_router
from worklist.enums import Role
from worklist.errors import Forbidden
from worklist.studies import service, triage
from worklist.studies.filters import WorklistFiltersDep, worklist_filters
from worklist.studies.schemas import (
    PriorLinks,
    StudyDetail,
    TriageRequest,
    WorklistItem,
    WorklistPage,
)
from worklist.studies.visibility import NO_WORKLIST_ACCESS

__all__ = ["WorklistFiltersDep", "router", "worklist_filters"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

worklist_router = APIRouter(
    prefix="/api/v1",
    tags=["worklist"],
    dependencies=[Depends(current_user)],
    route_class=body_limited_route(SMALL_BODY_BYTES),
)
WORKLIST_ROLES = (Role.RADIOLOGIST, Role.MANAGER, Role.ADMIN)


# The page is the hot read: its own router, without the ORM account the others load
# (``DriverCaller``: the account and a driver connection, one dependency).
page_router = APIRouter(
    prefix="/api/v1", tags=["worklist"], route_class=body_limited_route(SMALL_BODY_BYTES)
)


async def worklist_reader(caller: DriverCallerDep) -> DriverCaller:
    """The caller, refused (403) unless their role has a worklist: before the query is
    validated, as the other routes' guards answer (``worklist.api.permissions``)."""
    if caller.account.role not in WORKLIST_ROLES:
        raise Forbidden(NO_WORKLIST_ACCESS)
    return caller


@page_router.get(
    "/worklist",
    response_model=WorklistPage,
    responses={
        401: {"description": "No valid bearer token"},
        403: {"description": "The account has no worklist (alert clients)"},
    },
)
async def get_worklist(
    reader: Annotated[DriverCaller, Depends(worklist_reader)],
    filters: WorklistFiltersDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """The studies awaiting report that the caller may see, earliest deadline first."""
    page = await service.list_worklist(
        connection=reader.connection,
        account=reader.account,
        filters=filters,
        limit=limit,
        cursor=cursor,
        address=reader.address,
    )
    # Rows of our own database: written as the model writes them, not validated again.
    return jsonbody.response(page)


@worklist_router.get(
    "/studies/{study_uid:uid}",
    response_model=StudyDetail,
    responses={404: {"description": "No such study, or not visible to the caller"}},
)
async def get_study(
    study_uid: UidPath,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
) -> StudyDetail:
    """A study with its series, the patient's priors and where to fetch its images."""
    detail = await service.get_study_detail(
        session=session, user=user, study_uid=study_uid, address=address
    )
    base_url = str(request.base_url).rstrip("/")
    detail.dicomweb_url = f"{base_url}/dicomweb/studies/{detail.study_uid}"
    for prior in detail.priors:
        prior.links = PriorLinks.build(
            base_url=base_url, study_uid=detail.study_uid, prior_uid=prior.study_uid
        )
    return detail


@worklist_router.patch(
    "/studies/{study_uid:uid}",
    response_model=WorklistItem,
    responses={
        403: {"description": "Only a manager of the study's site or an admin triages"},
        404: {"description": "No such study, or not visible to the caller"},
    },
    dependencies=[study_access(roles=triage.TRIAGE_ROLES, detail=triage.ONLY_MANAGERS_TRIAGE)],
)
async def triage_study(
    study_uid: UidPath,
    body: TriageRequest,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    address: ClientAddress,
) -> WorklistItem:
    """Set a study's priority (its due time is recomputed from its arrival) and/or its
    subspecialty (``null``: routed by the rules again)."""
    return await triage.triage_study(
        session=session,
        user=user,
        study_uid=study_uid,
        change=body,
        turnaround_targets=settings.turnaround_targets,
        address=address,
    )


router = APIRouter()
router.include_router(page_router)
router.include_router(worklist_router)
router.include_router(claims_router)
router.include_router(next_router)
