"""``/api/v1/subspecialties``: the vocabulary, listed for every worklist user and
managed by admins (other roles 403: the vocabulary is no secret)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from worklist.api.deps import ClientAddress, CurrentUser, SessionDep, current_user
from worklist.api.limits import SMALL_BODY_BYTES, body_limited_route
from worklist.api.permissions import require_roles
from worklist.enums import Role
from worklist.sites.service import Actor
from worklist.studies.visibility import NO_WORKLIST_ACCESS
from worklist.subspecialties import service
from worklist.subspecialties.schemas import (
    CODE_PATTERN,
    SubspecialtyIn,
    SubspecialtyList,
    SubspecialtyOut,
    SubspecialtyPatch,
)

router = APIRouter(
    prefix="/api/v1/subspecialties",
    tags=["subspecialties"],
    dependencies=[Depends(current_user)],
    route_class=body_limited_route(SMALL_BODY_BYTES),
)
ADMIN_ONLY = require_roles(Role.ADMIN, detail=service.ONLY_ADMINS)
CodePath = Annotated[str, Path(pattern=CODE_PATTERN)]

ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Only admins manage the vocabulary"},
    422: {"description": "Not a code (lowercase letters, digits, _; at most 32) or a name"},
}


@router.get(
    "",
    response_model=SubspecialtyList,
    responses={403: {"description": "The account has no worklist (alert clients)"}},
    dependencies=[
        require_roles(Role.RADIOLOGIST, Role.MANAGER, Role.ADMIN, detail=NO_WORKLIST_ACCESS)
    ],
)
async def list_subspecialties(session: SessionDep, user: CurrentUser) -> SubspecialtyList:
    """The vocabulary by code; admins also see retired (inactive) codes."""
    rows = await service.list_vocabulary(session, user=user)
    return SubspecialtyList(subspecialties=[SubspecialtyOut.of(row) for row in rows])


@router.post(
    "",
    status_code=201,
    response_model=SubspecialtyOut,
    responses={**ERRORS, 409: {"description": "The code exists already"}},
    dependencies=[ADMIN_ONLY],
)
async def add_subspecialty(
    body: SubspecialtyIn, session: SessionDep, user: CurrentUser, address: ClientAddress
) -> SubspecialtyOut:
    """Add a code to the vocabulary."""
    row = await service.add(
        session, actor=Actor.for_user(user, address), code=body.code, name=body.name
    )
    return SubspecialtyOut.of(row)


@router.patch(
    "/{code}",
    response_model=SubspecialtyOut,
    responses={
        **ERRORS,
        404: {"description": "No such code"},
        409: {"description": "A routing rule still gives the code being retired"},
    },
    dependencies=[ADMIN_ONLY],
)
async def patch_subspecialty(
    code: CodePath,
    body: SubspecialtyPatch,
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
) -> SubspecialtyOut:
    """Rename a code, retire it (``active: false``: no longer given) or revive it."""
    row = await service.change(session, actor=Actor.for_user(user, address), code=code, patch=body)
    return SubspecialtyOut.of(row)
