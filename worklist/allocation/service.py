"""Rules for a site's allocation settings: who may read and change them, and the audit.

Radiologists with privileges at the site read them (they are what ``next`` does with
them); the site's managers and admins change them; everyone else is told the site does
not exist (404), as for studies. The CLI changes them as an operator (``actor.user``
None), network-wide.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from worklist.allocation.schemas import AllocationOut, AllocationPatch
from worklist.audit import repository as audit
from worklist.enums import AuditAction, GeneralReader, Role
from worklist.errors import Forbidden, NotFound
from worklist.models import Site, User
from worklist.sites import repository as sites_repository
from worklist.sites.service import SITE_NOT_FOUND, Actor

NOT_ALLOCATION_MANAGER = "only the site's managers and network admins change its allocation"
READING_ROLES = (Role.RADIOLOGIST, Role.MANAGER)


def _check_sees_site(user: User, code: str) -> None:
    if user.role is Role.ADMIN:
        return
    if user.role not in READING_ROLES or code not in {site.code for site in user.sites}:
        raise NotFound(SITE_NOT_FOUND)


def allocation_out(site: Site) -> AllocationOut:
    """The site's settings as the API shows them."""
    return AllocationOut(
        site=site.code,
        cap=site.allocation_cap,
        next_only_routine=site.next_only_routine,
        general_reader=GeneralReader(site.general_reader),
        general_after_share=site.general_after_share,
    )


async def _site(session: AsyncSession, code: str, *, lock: bool) -> Site:
    site = await sites_repository.get_site_by_code(session, code, lock=lock)
    if site is None:
        raise NotFound(SITE_NOT_FOUND)
    return site


async def get_allocation(*, session: AsyncSession, code: str, user: User) -> AllocationOut:
    """The site's allocation settings (its radiologists, managers and admins)."""
    _check_sees_site(user, code)
    return allocation_out(await _site(session, code, lock=False))


async def change_allocation(
    *, session: AsyncSession, code: str, change: AllocationPatch, actor: Actor
) -> AllocationOut:
    """Apply ``change`` to the site's settings; audited with the values before and after."""
    if actor.user is not None:
        _check_sees_site(actor.user, code)
        if actor.user.role not in (Role.MANAGER, Role.ADMIN):
            raise Forbidden(NOT_ALLOCATION_MANAGER)
    site = await _site(session, code, lock=True)
    before = allocation_out(site)
    values = change.model_dump(exclude_none=True)
    if "cap" in values:
        site.allocation_cap = values["cap"]
    if "next_only_routine" in values:
        site.next_only_routine = values["next_only_routine"]
    if "general_reader" in values:
        site.general_reader = str(values["general_reader"])
    if "general_after_share" in values:
        site.general_after_share = float(values["general_after_share"])
    after = allocation_out(site)
    if after != before:
        await session.flush()
        audit.record(
            session,
            actor=actor.name,
            actor_kind=actor.kind,
            action=AuditAction.ALLOCATION_CHANGED,
            site_id=site.id,
            address=actor.address,
            detail={
                "code": site.code,
                "before": before.model_dump(mode="json", exclude={"site"}),
                "after": after.model_dump(mode="json", exclude={"site"}),
            },
        )
    return after
