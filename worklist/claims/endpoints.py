"""``POST|DELETE /api/v1/studies/{study_uid}/claim`` and ``POST /api/v1/worklist/next``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from worklist import jsonbody
from worklist.api.deps import (
    ClientAddress,
    CurrentUser,
    SessionAccount,
    SessionDep,
    SettingsDep,
    current_user,
)
from worklist.api.guard import UidPath
from worklist.api.limits import SMALL_BODY_BYTES, body_limited_route
from worklist.claims import service
from worklist.claims.schemas import ClaimConflict, ClaimOut, NextCase
from worklist.enums import Role
from worklist.errors import Forbidden
from worklist.studies.filters import WorklistFiltersDep
from worklist.users.repository import Account

router = APIRouter(
    prefix="/api/v1",
    tags=["claims"],
    dependencies=[Depends(current_user)],
    route_class=body_limited_route(SMALL_BODY_BYTES),
)

NOT_VISIBLE = {"description": "No such study, or not visible to the caller"}


@router.post(
    "/studies/{study_uid:uid}/claim",
    response_model=ClaimOut,
    responses={
        403: {"description": "The caller does not report studies (managers, admins)"},
        404: NOT_VISIBLE,
        409: {
            "model": ClaimConflict,
            "description": "Claimed by someone else (claimed_by), receiving/reported, or "
            'refused by the site\'s allocation: "reason" "next_only" (routine work comes '
            'from worklist/next) or "cap" (the caller holds the site\'s cap)',
        },
    },
)
async def claim_study(
    study_uid: UidPath,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    address: ClientAddress,
) -> ClaimOut:
    """Claim a study to report it; claiming again renews the lease."""
    return await service.claim_study(
        session=session,
        user=user,
        study_uid=study_uid,
        lease_seconds=settings.claim_lease_seconds,
        address=address,
    )


@router.delete(
    "/studies/{study_uid:uid}/claim",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        403: {"description": "Neither the holder, a manager of the site, nor an admin"},
        404: NOT_VISIBLE,
        409: {"description": "The study is not claimed"},
    },
)
async def release_claim(
    study_uid: UidPath, session: SessionDep, user: CurrentUser, address: ClientAddress
) -> None:
    """Release a claim: the study goes back to the worklist."""
    await service.release_claim(session=session, user=user, study_uid=study_uid, address=address)


# ``next`` is the hot write: its own router, the account read by one statement on the
# request's session (``SessionAccount``) instead of the ORM account the others load.
next_router = APIRouter(
    prefix="/api/v1", tags=["claims"], route_class=body_limited_route(SMALL_BODY_BYTES)
)


async def next_taker(account: SessionAccount) -> Account:
    """The caller, refused (403) unless a radiologist: before the query is validated."""
    if account.role is not Role.RADIOLOGIST:
        raise Forbidden(service.ONLY_RADIOLOGISTS)
    return account


@next_router.post(
    "/worklist/next",
    response_model=NextCase,
    responses={
        204: {"description": "No study is eligible"},
        401: {"description": "No valid bearer token"},
        403: {"description": "Only radiologists take studies from the worklist"},
        409: {
            "model": ClaimConflict,
            "description": 'At the cap ("reason": "cap"): a study would be eligible, but the '
            "caller holds as many as its site allows (stat and urgent are still handed out)",
        },
    },
)
async def next_case(
    account: Annotated[Account, Depends(next_taker)],
    session: SessionDep,
    settings: SettingsDep,
    filters: WorklistFiltersDep,
    address: ClientAddress,
) -> Response:
    """Claim the most urgent study the caller may report among those matching the filters,
    with the patient's other unreported studies (``also_claimed``)."""
    case = await service.next_case(
        session=session,
        account=account,
        filters=filters,
        lease_seconds=settings.claim_lease_seconds,
        address=address,
    )
    if case is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    # Rows of our own database: written as the model writes them, not validated again.
    return jsonbody.response(case)
