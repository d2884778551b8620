"""``POST /api/v1/studies/{study_uid}/second-opinions`` and ``/api/v1/second-opinions``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response, status

from worklist.api.deps import ClientAddress, CurrentUser, SessionDep, current_user
from worklist.api.guard import MAX_DB_INT, UidPath
from worklist.api.limits import body_limited_route, json_body_bytes
from worklist.api.permissions import require_roles, study_access
from worklist.enums import Role
from worklist.opinions import service
from worklist.opinions.schemas import (
    MAX_ANSWER_LENGTH,
    MAX_QUESTION_LENGTH,
    AnswerIn,
    OpinionStatus,
    SecondOpinionIn,
    SecondOpinionList,
    SecondOpinionOut,
)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

router = APIRouter(
    prefix="/api/v1",
    tags=["second opinions"],
    dependencies=[Depends(current_user)],
    route_class=body_limited_route(json_body_bytes(max(MAX_QUESTION_LENGTH, MAX_ANSWER_LENGTH))),
)

OpinionId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="The second opinion's id")]

NOT_VISIBLE: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such second opinion, or not visible to the caller"}
}
TAKEN: dict[int | str, dict[str, Any]] = {
    409: {"description": "Taken by someone else (``claimed_by``), or ended (``status``)"}
}


async def opinion_access(opinion_id: OpinionId, session: SessionDep, user: CurrentUser) -> None:
    """Guard (before the body is validated): the caller may see the second opinion."""
    await service.visible_opinion(session, user, opinion_id)


@router.post(
    "/studies/{study_uid:uid}/second-opinions",
    response_model=SecondOpinionOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        403: {"description": "Neither the study's claim holder nor its report's author"},
        404: {"description": "No such study, or not visible to the caller"},
        422: {"description": "Unknown subspecialty or radiologist, or an invalid body"},
    },
    dependencies=[study_access()],
)
async def request_second_opinion(
    study_uid: UidPath,
    body: SecondOpinionIn,
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
) -> SecondOpinionOut:
    """Ask for a second opinion on a study, of a subspecialty, a named radiologist or anyone."""
    return await service.request_opinion(
        session=session, user=user, study_uid=study_uid, body=body, address=address
    )


@router.get(
    "/second-opinions",
    response_model=SecondOpinionList,
    responses={403: {"description": "The account has no worklist (alert and order clients)"}},
)
async def list_second_opinions(
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
    status_filter: Annotated[
        list[OpinionStatus] | None,
        Query(alias="status", description="Repeatable; default every status"),
    ] = None,
    mine: Annotated[
        bool, Query(description="Only the requests the caller asked for or holds")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> SecondOpinionList:
    """The caller's queue: open requests they may take, and those they asked or hold
    (managers: their site's; admins: all). Urgent first, then oldest."""
    return await service.list_queue(
        session=session,
        user=user,
        statuses=list(dict.fromkeys(status_filter or ())),
        mine=mine,
        limit=limit,
        cursor=cursor,
        address=address,
    )


@router.post(
    "/second-opinions/next",
    response_model=SecondOpinionOut,
    responses={
        204: {"description": "No open second opinion the caller may take"},
        403: {"description": "Only radiologists take second opinions"},
    },
    dependencies=[require_roles(Role.RADIOLOGIST, detail=service.ONLY_RADIOLOGISTS)],
)
async def next_second_opinion(
    session: SessionDep, user: CurrentUser, address: ClientAddress
) -> SecondOpinionOut | Response:
    """Take the most urgent, then oldest, open second opinion the caller may take."""
    taken = await service.next_opinion(session=session, user=user, address=address)
    if taken is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return taken


@router.get(
    "/second-opinions/{opinion_id:int}", response_model=SecondOpinionOut, responses=NOT_VISIBLE
)
async def get_second_opinion(
    opinion_id: OpinionId, session: SessionDep, user: CurrentUser, address: ClientAddress
) -> SecondOpinionOut:
    """One second opinion: its question, who holds it and its answer."""
    return await service.get_opinion(
        session=session, user=user, opinion_id=opinion_id, address=address
    )


@router.post(
    "/second-opinions/{opinion_id:int}/claim",
    response_model=SecondOpinionOut,
    responses={
        **NOT_VISIBLE,
        **TAKEN,
        403: {"description": "The caller's own request, or one addressed to someone else"},
    },
)
async def claim_second_opinion(
    opinion_id: OpinionId, session: SessionDep, user: CurrentUser, address: ClientAddress
) -> SecondOpinionOut:
    """Take an open second opinion: the caller may read its study until it ends."""
    return await service.claim_opinion(
        session=session, user=user, opinion_id=opinion_id, address=address
    )


@router.post(
    "/second-opinions/{opinion_id:int}/answer",
    response_model=SecondOpinionOut,
    responses={
        **NOT_VISIBLE,
        409: {"description": "Not taken yet, or ended"},
        403: {"description": "The caller does not hold the second opinion"},
    },
    dependencies=[Depends(opinion_access)],
)
async def answer_second_opinion(
    opinion_id: OpinionId,
    body: AnswerIn,
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
) -> SecondOpinionOut:
    """Answer a second opinion the caller holds; a major discrepancy flags a signed study."""
    return await service.answer_opinion(
        session=session, user=user, opinion_id=opinion_id, body=body, address=address
    )


@router.post(
    "/second-opinions/{opinion_id:int}/withdraw",
    response_model=SecondOpinionOut,
    responses={
        **NOT_VISIBLE,
        409: {"description": "Already answered or withdrawn"},
        403: {"description": "Neither the requester, a manager of the site, nor an admin"},
    },
)
async def withdraw_second_opinion(
    opinion_id: OpinionId, session: SessionDep, user: CurrentUser, address: ClientAddress
) -> SecondOpinionOut:
    """Withdraw a second opinion that is still open or taken; the holder's access ends."""
    return await service.withdraw_opinion(
        session=session, user=user, opinion_id=opinion_id, address=address
    )
