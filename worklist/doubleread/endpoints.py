"""Double reading: a site's rules (``/sites/{code}/double-reading``), the read queue
(``/double-reads``) and the peer-review figures (``/stats/peer-review``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Response, status

from worklist.api.deps import ClientAddress, CurrentUser, SessionDep, current_user
from worklist.api.guard import IsoDate, SiteCodePath
from worklist.api.limits import body_limited_route, json_body_bytes
from worklist.doubleread import rules, service, stats
from worklist.doubleread.schemas import (
    MAX_READ_TEXT,
    MAX_RULES,
    DoubleReadingRuleIn,
    DoubleReadingRuleOut,
    DoubleReadOut,
    PeerReviewStats,
    ReadStatus,
    SubmitIn,
)

router = APIRouter(
    prefix="/api/v1",
    tags=["double reading"],
    dependencies=[Depends(current_user)],
    route_class=body_limited_route(json_body_bytes(MAX_READ_TEXT)),
)

SITE_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Only managers and admins set double reading"},
    404: {"description": "No such site, or not the caller's site"},
}
READ_NOT_VISIBLE: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such read, or not one the caller may see"}
}
ReadId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get(
    "/sites/{code:site}/double-reading",
    response_model=list[DoubleReadingRuleOut],
    responses=SITE_ERRORS,
)
async def get_double_reading(
    code: SiteCodePath, session: SessionDep, user: CurrentUser
) -> list[DoubleReadingRuleOut]:
    """The site's double-reading rules, in order (first match wins)."""
    return await rules.get_rules(session=session, user=user, code=code)


@router.put(
    "/sites/{code:site}/double-reading",
    response_model=list[DoubleReadingRuleOut],
    responses={
        **SITE_ERRORS,
        422: {
            "description": "A share out of (0, 1], an unknown field "
            "or subspecialty, or too many rules"
        },
    },
)
async def put_double_reading(
    code: SiteCodePath,
    body: Annotated[list[DoubleReadingRuleIn], Body(max_length=MAX_RULES)],
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
) -> list[DoubleReadingRuleOut]:
    """Replace the site's rules with this ordered list (an empty list: no double reading)."""
    return await rules.put_rules(session=session, user=user, code=code, rules=body, address=address)


@router.get("/double-reads", response_model=list[DoubleReadOut])
async def list_double_reads(
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
    status_filter: Annotated[
        list[ReadStatus], Query(alias="status", description="Only reads in these states")
    ] = [],  # noqa: B006 -- FastAPI copies a Query default per request
) -> list[DoubleReadOut]:
    """Reads the caller may see, oldest first: a radiologist the open ones they may take
    and their own; a manager their sites'; an admin all."""
    return await service.list_reads(
        session=session, user=user, statuses=status_filter, address=address
    )


@router.post(
    "/double-reads/next",
    response_model=DoubleReadOut,
    responses={
        204: {"description": "No open read the caller may take"},
        403: {"description": "Only radiologists take reads"},
    },
)
async def next_double_read(
    session: SessionDep, user: CurrentUser, address: ClientAddress, response: Response
) -> DoubleReadOut | Response:
    """Take the oldest open read the caller may take."""
    read = await service.next_read(session=session, user=user, address=address)
    if read is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return read


@router.get("/double-reads/{read_id:int}", response_model=DoubleReadOut, responses=READ_NOT_VISIBLE)
async def get_double_read(
    read_id: ReadId, session: SessionDep, user: CurrentUser, address: ClientAddress
) -> DoubleReadOut:
    """One read."""
    return await service.get_read(session=session, user=user, read_id=read_id, address=address)


@router.post(
    "/double-reads/{read_id:int}/claim",
    response_model=DoubleReadOut,
    responses={
        **READ_NOT_VISIBLE,
        403: {"description": "Only radiologists take reads"},
        409: {"description": "Another radiologist took it first"},
    },
)
async def claim_double_read(
    read_id: ReadId, session: SessionDep, user: CurrentUser, address: ClientAddress
) -> DoubleReadOut:
    """Take this read (a reader without privileges at the study's site is granted reads of it)."""
    return await service.claim(session=session, user=user, read_id=read_id, address=address)


@router.post(
    "/double-reads/{read_id:int}/submit",
    response_model=DoubleReadOut,
    responses={
        **READ_NOT_VISIBLE,
        403: {"description": "The caller does not hold this read"},
        409: {"description": "Already submitted"},
        422: {"description": "Not a score of the scale, or a discordant score without text"},
    },
)
async def submit_double_read(
    read_id: ReadId,
    body: SubmitIn,
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
) -> DoubleReadOut:
    """Submit the score and text; a discordant score (2b, 3a, 3b) opens an arbitration."""
    return await service.submit(
        session=session, user=user, read_id=read_id, body=body, address=address
    )


@router.get(
    "/stats/peer-review",
    response_model=PeerReviewStats,
    responses={403: {"description": "Radiologists and clients do not see peer-review figures"}},
)
async def get_peer_review_stats(
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
    since: Annotated[
        IsoDate | None, Query(description="Reads created on or after this day")
    ] = None,
    until: Annotated[
        IsoDate | None, Query(description="Reads created on or before this day")
    ] = None,
) -> PeerReviewStats:
    """Second reads' scores and discrepancy rates per first reader and per site."""
    return await stats.peer_review(
        session=session, user=user, since=since, until=until, address=address
    )
