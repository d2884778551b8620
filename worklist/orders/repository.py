"""Reading orders (``service.apply_order`` is the one writer)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.models import Order


async def order_exists(session: AsyncSession, *, site_id: int, accession_number: str) -> bool:
    """Whether the site has an order for this accession number."""
    stmt = select(Order.id).where(
        Order.site_id == site_id, Order.accession_number == accession_number
    )
    return (await session.scalar(stmt)) is not None


async def get_order(session: AsyncSession, *, order_id: int, site_id: int) -> Order | None:
    """The site's order with this id, if there is one."""
    stmt = select(Order).where(Order.id == order_id, Order.site_id == site_id)
    return (await session.scalars(stmt)).one_or_none()
