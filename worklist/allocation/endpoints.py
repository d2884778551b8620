"""``GET|PATCH /api/v1/sites/{code}/allocation``: how ``worklist/next`` serves a site."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from worklist.allocation import service
from worklist.allocation.schemas import AllocationOut, AllocationPatch
from worklist.api.deps import ClientAddress, CurrentUser, SessionDep, current_user
from worklist.api.guard import SiteCodePath
from worklist.api.limits import SMALL_BODY_BYTES, body_limited_route
from worklist.sites.service import Actor

router = APIRouter(
    prefix="/api/v1/sites/{code:site}/allocation",
    tags=["sites"],
    dependencies=[Depends(current_user)],
    route_class=body_limited_route(SMALL_BODY_BYTES),
)

NOT_VISIBLE: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such site, or not one the caller reports for or manages"},
}


@router.get("", response_model=AllocationOut, responses=NOT_VISIBLE)
async def get_allocation(
    code: SiteCodePath, session: SessionDep, user: CurrentUser
) -> AllocationOut:
    """The site's cap, next-only rule and general-reader rule."""
    return await service.get_allocation(session=session, code=code, user=user)


@router.patch(
    "",
    response_model=AllocationOut,
    responses={
        **NOT_VISIBLE,
        403: {"description": "A radiologist of the site (they may read, not change)"},
        422: {"description": "cap not an integer >= 0, share outside [0, 1], unknown rule"},
    },
)
async def patch_allocation(
    code: SiteCodePath,
    body: AllocationPatch,
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
) -> AllocationOut:
    """Change some of the site's settings (its managers and admins); audited."""
    return await service.change_allocation(
        session=session, code=code, change=body, actor=Actor.for_user(user, address)
    )
