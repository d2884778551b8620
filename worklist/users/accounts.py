"""Managing accounts: who may see and change whose account; every change audited.

Admins (and operators at the CLI) manage every account. A manager manages the
accounts of their own site:

- they see the users holding a privilege at their site or employed by it (home site),
  never admins; any other username answers 404, as an unknown one does;
- on any radiologist they see, they may grant or revoke their own site's privilege;
- on their site's own accounts (radiologists and alert clients employed by the site, or
  whose privileges are at that site alone) they may also disable and re-enable, reset
  the password, and change the name, registration and subspecialties;
- roles and home sites only admins change. Anything else answers 403.

Other roles are refused (403). Changes take effect on the account's next request:
every request re-loads its user, and disabling bumps the token version.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit import repository as audit
from worklist.auth.passwords import PasswordCost, hash_password
from worklist.enums import AuditAction, Role
from worklist.errors import Conflict, Forbidden, InvalidInput, NotFound
from worklist.models import Site, User
from worklist.sites.repository import get_site_by_code
from worklist.sites.service import Actor
from worklist.users import repository
from worklist.users.schemas import UserPatch
from worklist.users.service import (
    check_name,
    check_password,
    check_registration,
    check_role_sites,
    check_subspecialties,
    sites_by_code,
)

USER_NOT_FOUND = "user not found"
NOT_ACCOUNT_MANAGER = "only managers and network admins manage accounts"
ADMIN_ONLY = "only a network admin changes an account's {field}"
OWN_SITE_ONLY = "a manager grants and revokes only their own site's privileges"
RADIOLOGISTS_ONLY = "a manager grants and revokes privileges of radiologists only"
NOT_OWN_ACCOUNT = (
    "only an admin, or a manager of the trust that employs them, changes this account "
    "(you may revoke your site's privilege)"
)
NOT_YOURSELF = "you cannot disable your own account or change its role"
NOT_NULL_FIELDS = ("disabled", "role", "sites", "subspecialties")
PROFILE_FIELDS = ("name", "registration", "home_site", "subspecialties")
OWN_ACCOUNT_ROLES = (Role.RADIOLOGIST, Role.ALERT_CLIENT)


def manager_site(actor: Actor) -> Site | None:
    """The site a manager manages; None for admins and operators; Forbidden otherwise."""
    user = actor.user
    if user is None or user.role is Role.ADMIN:
        return None
    if user.role is Role.MANAGER and user.sites:
        return user.sites[0]
    raise Forbidden(NOT_ACCOUNT_MANAGER)


def in_scope(target: User, site: Site) -> bool:
    """True when a manager of ``site`` may see ``target``."""
    return target.role is not Role.ADMIN and (
        site.id in {s.id for s in target.sites} or target.home_site_id == site.id
    )


def own_account(target: User, site: Site) -> bool:
    """True when ``target`` is one of ``site``'s own accounts (its manager administers it)."""
    return target.role in OWN_ACCOUNT_ROLES and (
        target.home_site_id == site.id or {s.id for s in target.sites} <= {site.id}
    )


async def _load(
    session: AsyncSession, actor: Actor, username: str, *, lock: bool
) -> tuple[User, Site | None]:
    site = manager_site(actor)
    target = await repository.get_user(session, username, lock=lock)
    if target is None or (site is not None and not in_scope(target, site)):
        raise NotFound(USER_NOT_FOUND)
    return target, site


async def list_accounts(
    *,
    session: AsyncSession,
    actor: Actor,
    role: Role | None = None,
    site_code: str | None = None,
    disabled: bool | None = None,
) -> list[User]:
    """The accounts ``actor`` may see, by username, optionally filtered."""
    scope = manager_site(actor)
    site_id = None
    if site_code is not None:
        site = await get_site_by_code(session, site_code)
        if site is None:
            raise InvalidInput(f"no site with code {site_code!r}")
        site_id = site.id
    return await repository.list_users(
        session,
        scope_site_id=scope.id if scope is not None else None,
        role=role,
        site_id=site_id,
        disabled=disabled,
    )


async def get_account(*, session: AsyncSession, actor: Actor, username: str) -> User:
    """One account ``actor`` may see; NotFound otherwise."""
    return (await _load(session, actor, username, lock=False))[0]


def new_password_hash(password: str, *, cost: PasswordCost) -> str:
    """The hash of an acceptable new password (slow: callers on an event loop use a thread)."""
    return hash_password(check_password(password), cost=cost)


async def authorise_password_reset(*, session: AsyncSession, actor: Actor, username: str) -> User:
    """The account whose password ``actor`` may reset; NotFound or Forbidden otherwise."""
    return (await _password_target(session, actor, username, lock=False))[0]


async def reset_password(
    *, session: AsyncSession, actor: Actor, username: str, password_hash: str
) -> User:
    """Replace the password; every token issued before stops working."""
    target, site = await _password_target(session, actor, username, lock=True)
    target.password_hash = password_hash
    target.token_version += 1
    _audit(session, actor, target, site, AuditAction.USER_PASSWORD_RESET, {})
    await session.flush()
    return target


async def _password_target(
    session: AsyncSession, actor: Actor, username: str, *, lock: bool
) -> tuple[User, Site | None]:
    target, site = await _load(session, actor, username, lock=lock)
    if site is not None and not own_account(target, site):
        raise Forbidden(NOT_OWN_ACCOUNT)
    return target, site


async def update_account(
    *, session: AsyncSession, actor: Actor, username: str, patch: UserPatch
) -> User:
    """Apply a PATCH: checks who may change what, the resulting role/site rules, audits."""
    requested = await _requested_profile(session, patch)  # values are checked before permissions
    requested_sites = await sites_by_code(session, patch.sites) if patch.sites is not None else None
    target, site = await _load(session, actor, username, lock=True)
    role = patch.role if patch.role is not None else target.role
    old_codes = {s.code for s in target.sites}
    new_codes = {s.code for s in requested_sites} if requested_sites is not None else old_codes
    profile = _profile_changes(target, requested)
    disabled = patch.disabled if patch.disabled is not None else not target.active
    disabling = disabled != (not target.active)
    if site is not None:
        _check_manager(target, site, role=role, sites=new_codes ^ old_codes, profile=profile)
        if disabling and not own_account(target, site):
            raise Forbidden(NOT_OWN_ACCOUNT)
    if actor.user is not None and actor.user.id == target.id and (disabled or role != target.role):
        raise Conflict(NOT_YOURSELF)
    check_role_sites(role, sorted(new_codes))
    if requested_sites is not None and new_codes != old_codes:
        _change_sites(session, actor, target, site, requested_sites)
    if role != target.role:
        change = _diff(target.role, role)
        _audit(session, actor, target, site, AuditAction.USER_ROLE_CHANGED, change)
        target.role = role
        target.token_version += 1
    if profile:
        await _apply_profile(session, target, profile)
        _audit(session, actor, target, site, AuditAction.USER_PROFILE_CHANGED, {"changes": profile})
    if disabling:
        target.active = not disabled
        if disabled:
            target.token_version += 1
        action = AuditAction.USER_DISABLED if disabled else AuditAction.USER_ENABLED
        _audit(session, actor, target, site, action, {})
    await session.flush()
    return target


def _check_manager(
    target: User, site: Site, *, role: Role, sites: set[str], profile: dict[str, Any]
) -> None:
    if role != target.role:
        raise Forbidden(ADMIN_ONLY.format(field="role"))
    if "home_site" in profile:
        raise Forbidden(ADMIN_ONLY.format(field="home site"))
    if sites and sites != {site.code}:
        raise Forbidden(OWN_SITE_ONLY)
    if sites and target.role is not Role.RADIOLOGIST:
        raise Forbidden(RADIOLOGISTS_ONLY)
    if profile and not own_account(target, site):
        raise Forbidden(NOT_OWN_ACCOUNT)


async def _requested_profile(session: AsyncSession, patch: UserPatch) -> dict[str, Any]:
    """The profile values a PATCH asks for, checked and normalised (home site by code)."""
    fields = patch.model_fields_set
    for field in NOT_NULL_FIELDS:
        if field in fields and getattr(patch, field) is None:
            raise InvalidInput(f"{field} cannot be null")
    requested: dict[str, Any] = {}
    if "name" in fields:
        requested["name"] = check_name(patch.name)
    if "registration" in fields:
        requested["registration"] = check_registration(patch.registration)
    if "home_site" in fields:
        requested["home_site"] = (
            (await sites_by_code(session, [patch.home_site]))[0].code if patch.home_site else None
        )
    if patch.subspecialties is not None:
        requested["subspecialties"] = await check_subspecialties(session, patch.subspecialties)
    return requested


def _profile_changes(target: User, requested: dict[str, Any]) -> dict[str, Any]:
    """Profile fields whose value changes: {field: {"from": old, "to": new}}."""
    current = {
        "name": target.name,
        "registration": target.registration,
        "home_site": target.home_site.code if target.home_site is not None else None,
        "subspecialties": list(target.subspecialties),
    }
    return {
        field: _diff(current[field], value)
        for field, value in requested.items()
        if current[field] != value
    }


async def _apply_profile(session: AsyncSession, target: User, profile: dict[str, Any]) -> None:
    if "home_site" in profile:
        code = profile["home_site"]["to"]
        target.home_site = (await sites_by_code(session, [code]))[0] if code else None
    if "name" in profile:
        target.name = profile["name"]["to"]
    if "registration" in profile:
        target.registration = profile["registration"]["to"]
    if "subspecialties" in profile:
        target.subspecialties = profile["subspecialties"]["to"]


def _change_sites(
    session: AsyncSession, actor: Actor, target: User, site: Site | None, new_sites: list[Site]
) -> None:
    old = {s.code for s in target.sites}
    new = {s.code for s in new_sites}
    for added in (s for s in new_sites if s.code not in old):
        _audit(session, actor, target, site, AuditAction.USER_PRIVILEGE_GRANTED, {}, at=added)
    for removed in (s for s in target.sites if s.code not in new):
        _audit(session, actor, target, site, AuditAction.USER_PRIVILEGE_REVOKED, {}, at=removed)
    target.sites = new_sites


def _diff(old: Any, new: Any) -> dict[str, Any]:
    return {"from": old, "to": new}


def _audit(
    session: AsyncSession,
    actor: Actor,
    target: User,
    site: Site | None,
    action: AuditAction,
    detail: dict[str, Any],
    *,
    at: Site | None = None,
) -> None:
    # The row belongs to the site concerned, so that site's managers read it in the log:
    # the privilege's site, the acting manager's site, else the account's employing trust.
    if at is not None:
        site_id: int | None = at.id
    elif site is not None:
        site_id = site.id
    else:
        site_id = target.home_site_id or (target.sites[0].id if len(target.sites) == 1 else None)
    details = {"username": target.username, **detail}
    if at is not None:
        details["site"] = at.code
    audit.record(
        session,
        actor=actor.name,
        actor_kind=actor.kind,
        action=action,
        site_id=site_id,
        address=actor.address,
        detail=details,
    )


async def set_disabled(
    *, session: AsyncSession, actor: Actor, username: str, disabled: bool
) -> bool:
    """Disable or re-enable an account; False when it already was."""
    target = await get_account(session=session, actor=actor, username=username)
    if target.active is not disabled:
        return False
    await update_account(
        session=session, actor=actor, username=username, patch=UserPatch(disabled=disabled)
    )
    return True


async def change_privilege(
    *, session: AsyncSession, actor: Actor, username: str, site_code: str, grant: bool
) -> bool:
    """Grant or revoke the privilege at one site; False when nothing changes."""
    target = await get_account(session=session, actor=actor, username=username)
    codes = {s.code for s in target.sites}
    wanted = codes | {site_code} if grant else codes - {site_code}
    if wanted == codes:
        return False
    patch = UserPatch(sites=sorted(wanted))
    await update_account(session=session, actor=actor, username=username, patch=patch)
    return True
