"""Who may see which events: the worklist's visibility rule, applied per event by site."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from worklist.doubleread import repository as double_reads
from worklist.enums import Role
from worklist.events import repository
from worklist.events.stream import Access, Audience
from worklist.models import User
from worklist.studies.visibility import require_worklist_access


def audience_of(user: User) -> Audience:
    """The sites whose events ``user`` may see (as ``visible_study_condition`` for studies).

    Raises Forbidden for roles without a worklist (alert clients).
    """
    require_worklist_access(user)
    if user.role is Role.ADMIN:
        return Audience(site_ids=None)
    if user.role in (Role.RADIOLOGIST, Role.MANAGER):
        return Audience(site_ids=frozenset(site.id for site in user.sites))
    return Audience(site_ids=frozenset())


async def load_access(session: AsyncSession, user: User) -> Access:
    """``user``'s audience, the site codes events are labelled with, and (radiologists)
    the studies they are blinded to."""
    audience = audience_of(user)
    codes = await repository.site_codes(session)
    if user.role is not Role.RADIOLOGIST:
        return Access(audience=audience, site_codes=codes)
    blinded = await double_reads.blinded_study_uids(session, user=user)
    return Access(audience=audience, site_codes=codes, blinded=blinded, blindable=True)
