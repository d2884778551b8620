"""``GET /api/v1/worklist`` and ``GET /api/v1/studies/{study_uid}``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from worklist.api.deps import ClientAddress, CurrentUser, SessionDep, current_user
from worklist.enums import DEFAULT_STATUS_FILTER, Priority, StudyStatus
from worklist.studies import service
from worklist.studies.schemas import StudyDetail, WorklistFilters, WorklistPage

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

router = APIRouter(prefix="/api/v1", tags=["worklist"], dependencies=[Depends(current_user)])


def worklist_filters(
    status: Annotated[
        list[StudyStatus] | None,
        Query(description="Repeatable; default ready and in_progress"),
    ] = None,
    site: Annotated[list[str] | None, Query(description="Site code; repeatable")] = None,
    modality: Annotated[list[str] | None, Query(description="e.g. CT; repeatable")] = None,
    priority: Annotated[list[Priority] | None, Query(description="Repeatable")] = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description="Patient name, accession, NHS number or description"),
    ] = None,
    mine: Annotated[bool, Query(description="Only studies the caller has claimed")] = False,
) -> WorklistFilters:
    """The worklist filters from the query string (shared with ``worklist/next``)."""
    return WorklistFilters(
        statuses=tuple(dict.fromkeys(status)) if status else DEFAULT_STATUS_FILTER,
        sites=tuple(dict.fromkeys(site or ())),
        modalities=tuple(dict.fromkeys(m.strip().upper() for m in modality or ())),
        priorities=tuple(dict.fromkeys(priority or ())),
        q=(q.strip() or None) if q else None,
        mine=mine,
    )


WorklistFiltersDep = Annotated[WorklistFilters, Depends(worklist_filters)]


@router.get(
    "/worklist",
    response_model=WorklistPage,
    responses={403: {"description": "The account has no worklist (alert clients)"}},
)
async def get_worklist(
    session: SessionDep,
    user: CurrentUser,
    filters: WorklistFiltersDep,
    address: ClientAddress,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> WorklistPage:
    """The studies awaiting report that the caller may see, earliest deadline first."""
    return await service.list_worklist(
        session=session, user=user, filters=filters, limit=limit, cursor=cursor, address=address
    )


@router.get(
    "/studies/{study_uid}",
    response_model=StudyDetail,
    responses={404: {"description": "No such study, or not visible to the caller"}},
)
async def get_study(
    study_uid: str, session: SessionDep, user: CurrentUser, address: ClientAddress
) -> StudyDetail:
    """A study with its series and the patient's priors across the network."""
    return await service.get_study_detail(
        session=session, user=user, study_uid=study_uid, address=address
    )
