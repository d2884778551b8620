"""SQL the event stream needs."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.models import Site


async def site_codes(session: AsyncSession) -> dict[int, str]:
    """Every site's code by id (a network has tens of trusts, not thousands)."""
    rows = await session.execute(select(Site.id, Site.code))
    return dict(rows.all())
