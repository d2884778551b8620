"""``/api/v1/users``: account management for network admins and site managers.

Admins manage every account; managers the accounts of their site (see
``worklist.users.accounts`` for exactly what); other roles get 403. An account outside
a manager's site answers 404, as an unknown username does. Password hashes never leave.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from worklist.api.deps import ClientAddress, CurrentUser, SessionDep, SettingsDep, current_user
from worklist.auth.passwords import PasswordCost, hash_password
from worklist.enums import Role
from worklist.sites.service import Actor
from worklist.users import accounts
from worklist.users.schemas import PasswordIn, UserList, UserOut, UserPatch
from worklist.users.service import check_password

router = APIRouter(prefix="/api/v1/users", tags=["users"], dependencies=[Depends(current_user)])

Username = Annotated[str, Path(min_length=1, max_length=64)]

ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Only managers and admins manage accounts, or not this change"},
    404: {"description": "No such user, or not one of the manager's site"},
}


@router.get("", response_model=UserList, responses={403: ERRORS[403]})
async def list_users(
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
    role: Annotated[Role | None, Query(description="Only this role")] = None,
    site: Annotated[
        str | None, Query(max_length=32, description="Only holders of a privilege at this site")
    ] = None,
    disabled: Annotated[bool | None, Query(description="Only disabled (or enabled) ones")] = None,
) -> UserList:
    """The accounts the caller manages, by username (managers: their site's)."""
    actor = Actor.for_user(user, address)
    found = await accounts.list_accounts(
        session=session, actor=actor, role=role, site_code=site, disabled=disabled
    )
    return UserList(users=[UserOut.of(account) for account in found])


@router.get("/{username}", response_model=UserOut, responses=ERRORS)
async def get_user(
    username: Username, session: SessionDep, user: CurrentUser, address: ClientAddress
) -> UserOut:
    """One account: role, state, privileges, profile."""
    actor = Actor.for_user(user, address)
    account = await accounts.get_account(session=session, actor=actor, username=username)
    return UserOut.of(account)


@router.patch(
    "/{username}",
    response_model=UserOut,
    responses={
        **ERRORS,
        409: {"description": "You cannot disable your own account or change its role"},
        422: {"description": "Invalid values, or a role/site combination that is not allowed"},
    },
)
async def patch_user(
    username: Username,
    body: UserPatch,
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
) -> UserOut:
    """Disable or re-enable, change role, privileges or profile; in effect on the next request."""
    actor = Actor.for_user(user, address)
    account = await accounts.update_account(
        session=session, actor=actor, username=username, patch=body
    )
    return UserOut.of(account)


@router.post(
    "/{username}/password",
    status_code=204,
    responses={**ERRORS, 422: {"description": "Password too short"}},
)
async def reset_password(
    username: Username,
    body: PasswordIn,
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
    settings: SettingsDep,
) -> Response:
    """Set a new password; the old one and every token issued before stop working."""
    actor = Actor.for_user(user, address)
    check_password(body.password)
    await accounts.authorise_password_reset(session=session, actor=actor, username=username)
    # Argon2 is deliberately slow: hash off the event loop, once the caller may do this.
    cost = PasswordCost.from_settings(settings)
    password_hash = await asyncio.to_thread(hash_password, body.password, cost=cost)
    await accounts.reset_password(
        session=session, actor=actor, username=username, password_hash=password_hash
    )
    return Response(status_code=204)
